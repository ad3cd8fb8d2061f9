// The Stable Diffusion UNet against diffusers' UNet2DConditionModel on set unet_sd_tiny: every
// config of config.json, every case of cases.safetensors, every traced block, in both namings.
// Layout: config.json {<cfg>: {diffusers_config, ...}}; weights `<cfg>_weights_*original*.safetensors`
// (original naming under model.diffusion_model.) and either `<cfg>_weights_diffusers.safetensors` or
// `<cfg>_name_map_original_to_diffusers.json` (the diffusers naming is the original renamed through
// it); cases `<cfg>.<case>.{sample,timestep,context,out}` and `<cfg>.<case>.act.<module>`.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "io/checkpoint.h"
#include "models/unet.h"
#include "ops/ops.h"
#include "test_data.h"

namespace easel {
namespace {

constexpr float kTolerance = 1e-4f;  // relative to the reference tensor's largest magnitude
constexpr std::string_view kPrefix = "model.diffusion_model.";

struct UnetSet {
  std::filesystem::path dir;
  nlohmann::json config;
  std::optional<Checkpoint> cases;
};

UnetSet open_set(const std::string& name) {
  UnetSet s;
  s.dir = testing::set_dir(name);
  std::ifstream in(s.dir / "config.json");
  EXPECT_TRUE(in) << "no config.json in " << s.dir;
  if (in) s.config = nlohmann::json::parse(in);
  auto cases = Checkpoint::open(s.dir / "cases.safetensors");
  EXPECT_TRUE(cases.ok()) << (cases.ok() ? "" : cases.error().message());
  if (cases.ok()) s.cases = std::move(*cases);
  return s;
}

std::vector<std::string> config_names(const UnetSet& s) {
  std::vector<std::string> names;
  for (const auto& [key, value] : s.config.items())
    if (value.is_object() && value.contains("diffusers_config")) names.push_back(key);
  return names;
}

// The head option diffusers' config implies: attention_head_dim (really the head count) as one
// number = a fixed head count; a list per level = a fixed head dim (channels / heads, checked equal).
UnetOptions options_from(const nlohmann::json& dc) {
  UnetOptions o;
  o.norm_groups = dc.at("norm_num_groups").get<int>();
  const auto& heads = dc.contains("num_attention_heads") && !dc.at("num_attention_heads").is_null()
                          ? dc.at("num_attention_heads")
                          : dc.at("attention_head_dim");
  if (heads.is_number()) {
    o.num_heads = heads.get<int>();
    return o;
  }
  const auto& channels = dc.at("block_out_channels");
  for (size_t i = 0; i < heads.size(); ++i) {
    const int d = channels[i].get<int>() / heads[i].get<int>();
    EXPECT_TRUE(o.head_dim == 0 || o.head_dim == d) << "head dim differs between levels";
    o.head_dim = d;
  }
  return o;
}

std::string file_with(const std::filesystem::path& dir, const std::string& prefix, const std::string& part) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with(prefix) && n.find(part) != std::string::npos && n.ends_with(".safetensors")) return n;
  }
  return {};
}

struct Namings {
  Checkpoint original_file;
  std::optional<Checkpoint> diffusers_file;
  std::vector<SourceTensor> original, diffusers;
};

Namings load_namings(const UnetSet& s, const std::string& cfg) {
  const std::string prefix = cfg.empty() ? "" : cfg + "_";
  const std::string orig = file_with(s.dir, prefix + "weights", "original");
  EXPECT_FALSE(orig.empty()) << "no " << prefix << "weights_*original*.safetensors in " << s.dir;
  Namings n{Checkpoint::open(s.dir / orig).value(), std::nullopt, {}, {}};
  n.original = tensors_under({&n.original_file}, kPrefix);
  if (std::filesystem::exists(s.dir / (prefix + "weights_diffusers.safetensors"))) {
    n.diffusers_file = Checkpoint::open(s.dir / (prefix + "weights_diffusers.safetensors")).value();
    n.diffusers = tensors_under({&*n.diffusers_file}, "");
  } else {
    std::ifstream in(s.dir / (prefix + "name_map_original_to_diffusers.json"));
    EXPECT_TRUE(in) << "no diffusers weights nor name map for " << cfg;
    const auto map = nlohmann::json::parse(in);
    for (const auto& [from, to] : map.items()) {
      const auto* item = n.original_file.find(from);
      EXPECT_TRUE(item) << from;
      if (item) n.diffusers.push_back({to.get<std::string>(), n.original_file.tensor(*item), "diffusers " + from});
    }
    EXPECT_EQ(n.diffusers.size(), n.original.size());
  }
  return n;
}

struct TraceCheck {
  const Checkpoint& cases;
  std::string key;  // "<cfg>.<case>"
  std::set<std::string> compared;
  float worst = 0;
  void operator()(std::string_view name, const Tensor& t) {
    const std::string k = key + ".act." + std::string(name);
    if (!cases.find(k)) return;
    const float err = testing::max_rel_diff(t, cases.get(k).value());
    EXPECT_LE(err, kTolerance) << k;
    worst = std::max(worst, err);
    compared.insert(k);
  }
};

TEST(Unet, MatchesDiffusersBlockByBlockInBothNamings) {
  UnetSet s = open_set("unet_sd_tiny");
  ASSERT_TRUE(s.cases);
  const auto configs = config_names(s);
  ASSERT_FALSE(configs.empty());
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  for (const std::string& cfg : configs) {
    SCOPED_TRACE(cfg);
    const UnetOptions options = options_from(s.config.at(cfg).at("diffusers_config"));
    Namings namings = load_namings(s, cfg);
    // cases and the activations each one has
    std::map<std::string, std::set<std::string>> acts;  // "<cfg>.<case>" -> act keys
    for (const std::string& k : s.cases->names()) {
      if (!k.starts_with(cfg + ".")) continue;
      if (k.ends_with(".sample")) acts[k.substr(0, k.size() - 7)];
      if (const auto p = k.find(".act."); p != std::string::npos) acts[k.substr(0, p)].insert(k);
    }
    ASSERT_FALSE(acts.empty());
    for (const auto* naming : {&namings.original, &namings.diffusers}) {
      const char* which = naming == &namings.original ? "original naming" : "diffusers naming";
      SCOPED_TRACE(which);
      auto unet = Unet::load(ctx, *naming, options);
      ASSERT_TRUE(unet.ok()) << unet.error().message();
      const auto& dc = s.config.at(cfg).at("diffusers_config");
      EXPECT_EQ(unet->config().in_channels, dc.at("in_channels").get<int>());
      EXPECT_EQ(unet->config().block_channels, dc.at("block_out_channels").get<std::vector<int>>());
      EXPECT_EQ(unet->config().layers_per_block, dc.at("layers_per_block").get<int>());
      EXPECT_EQ(unet->config().context_dim, dc.at("cross_attention_dim").get<int>());
      EXPECT_EQ(unet->config().linear_projection, dc.at("use_linear_projection").get<bool>());
      for (const auto& [key, expected_acts] : acts) {
        SCOPED_TRACE(key);
        TraceCheck check{*s.cases, key, {}, 0};
        ctx.on_trace = std::ref(check);
        const Tensor out = unet->forward(ctx, s.cases->get(key + ".sample").value(),
                                         s.cases->get(key + ".timestep").value(), s.cases->get(key + ".context").value());
        ctx.on_trace = nullptr;
        const float err = testing::max_rel_diff(out, s.cases->get(key + ".out").value());
        EXPECT_LE(err, kTolerance) << key << ".out";
        EXPECT_EQ(check.compared, expected_acts) << "every activation of the set is traced";
        std::cout << cfg << " " << which << " " << key << ": " << check.compared.size()
                  << " blocks, max rel error " << check.worst << ", out " << err << "\n";
      }
    }
  }
}

// --- errors a user hits ----------------------------------------------------------------------------

struct Sd1 {
  UnetSet set = open_set("unet_sd_tiny");
  std::string cfg = config_names(set).at(0);
  Namings namings = load_namings(set, cfg);
  UnetOptions options = options_from(set.config.at(cfg).at("diffusers_config"));
};

TEST(Unet, ReportsMissingAndMisShapedTensors) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  Sd1 s;
  std::vector<SourceTensor> tensors = s.namings.original;
  ASSERT_GT(tensors.size(), 10u);
  // drop one resnet tensor, give another a wrong shape
  std::string dropped, reshaped;
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].name.find("out_layers.3.weight") != std::string::npos) {
      dropped = tensors[i].name;
      tensors.erase(tensors.begin() + long(i));
      break;
    }
  for (auto& t : tensors)
    if (t.name.find("transformer_blocks.0.attn1.to_q.weight") != std::string::npos) {
      reshaped = t.name;
      t.tensor = t.tensor.flatten().narrow(0, 0, 4).view({2, 2});
      break;
    }
  ASSERT_FALSE(dropped.empty());
  ASSERT_FALSE(reshaped.empty());
  auto unet = Unet::load(ctx, tensors, s.options);
  ASSERT_FALSE(unet.ok());
  const std::string& m = unet.error().message();
  EXPECT_NE(m.find("missing down_blocks."), std::string::npos) << m;
  EXPECT_NE(m.find("conv2.weight"), std::string::npos) << m;
  EXPECT_NE(m.find(reshaped + " is [2, 2], expected"), std::string::npos) << m;
  std::cout << m << "\n";
}

TEST(Unet, RefusesForeignTensorsAndBadHeadOptions) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  Sd1 s;
  std::vector<SourceTensor> tensors = s.namings.original;
  tensors.push_back({"input_blocks.1.7.weight", tensors[0].tensor, "x.safetensors: input_blocks.1.7.weight"});
  auto bad = Unet::load(ctx, tensors, s.options);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("input_blocks.1.7.weight"), std::string::npos) << bad.error().message();

  UnetOptions both = s.options;
  both.num_heads = 8, both.head_dim = 64;
  auto b = Unet::load(ctx, s.namings.original, both);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("either num_heads"), std::string::npos) << b.error().message();
  UnetOptions odd = s.options;
  odd.num_heads = 0, odd.head_dim = 3;
  auto o = Unet::load(ctx, s.namings.original, odd);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message().find("do not divide"), std::string::npos) << o.error().message();
}

TEST(Unet, RefusesMisShapedInputsWithAClearMessage) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  Sd1 s;
  auto unet = Unet::load(ctx, s.namings.original, s.options).value();
  const UnetConfig& c = unet.config();
  auto run = [&](Shape x, Shape t, Shape context) {
    return catch_errors([&] {
      return unet.forward(ctx, ops::zeros(ctx, x), ops::zeros(ctx, t), ops::zeros(ctx, context));
    });
  };
  auto wrong_channels = run({1, c.in_channels + 1, 8, 8}, {1}, {1, 77, c.context_dim});
  ASSERT_FALSE(wrong_channels.ok());
  EXPECT_NE(wrong_channels.error().message().find("expected latents"), std::string::npos);
  auto wrong_context = run({1, c.in_channels, 8, 8}, {1}, {1, 77, c.context_dim + 1});
  ASSERT_FALSE(wrong_context.ok());
  EXPECT_NE(wrong_context.error().message().find("context"), std::string::npos);
  auto wrong_batch = run({2, c.in_channels, 8, 8}, {3}, {2, 77, c.context_dim});
  ASSERT_FALSE(wrong_batch.ok());
  EXPECT_NE(wrong_batch.error().message().find("timesteps"), std::string::npos);
  // Sizes that are not multiples of 2^(levels-1) run (diffusers' upsample_size path), down to 1x1.
  for (Shape size : {Shape{1, 1}, Shape{3, 5}, Shape{5, 2}}) {
    auto ok = run({1, c.in_channels, size[0], size[1]}, {1}, {1, 7, c.context_dim});
    ASSERT_TRUE(ok.ok()) << ok.error().message();
    EXPECT_EQ(ok->shape(), Shape({1, c.out_channels, size[0], size[1]}));
  }
}

}  // namespace
}  // namespace easel
