// AutoencoderKL (the SD VAE) against diffusers on set vae_kl_tiny: encoder moments, decoder output
// and every traced block, with the weights in diffusers naming and in the original ldm naming
// (under config.json's "original_prefix", as inside SD single-file checkpoints). Cases come from
// the keys of cases.safetensors: "<case>.image", "<case>.latents", "<case>.moments",
// "<case>.decoded" and per-block "<case>.act.<module path>".
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/vae_kl.h"
#include "ops/ops.h"
#include "test_data.h"

namespace easel {
namespace {

constexpr float kTolerance = 1e-4f;  // fp32, max |ours - ref| / max |ref|

struct VaeSet {
  std::filesystem::path dir;
  nlohmann::json config;
  std::optional<Checkpoint> cases, diffusers, original;
  std::set<std::string> case_names;
  std::string prefix;  // of the original naming
  VaeKlOptions options;
};

VaeSet load_set(const std::string& name) {
  VaeSet s;
  s.dir = testing::set_dir(name);
  std::ifstream in(s.dir / "config.json");
  EXPECT_TRUE(in) << "no config.json in " << s.dir;
  s.config = nlohmann::json::parse(in);
  s.prefix = s.config.at("original_prefix").get<std::string>();
  s.options.norm_groups = s.config.at("diffusers_config").at("norm_num_groups").get<int>();
  s.cases = Checkpoint::open(s.dir / "cases.safetensors").value();
  s.diffusers = Checkpoint::open(s.dir / "weights_diffusers.safetensors").value();
  s.original = Checkpoint::open(s.dir / "weights_ldm_original.safetensors").value();
  for (const auto& n : s.cases->names())
    if (n.size() > 6 && n.substr(n.size() - 6) == ".image") s.case_names.insert(n.substr(0, n.size() - 6));
  return s;
}

// Compares every traced activation with "<case>.act.<name>"; counts those the set has.
struct TraceCheck {
  const Checkpoint& cases;
  std::string case_name;
  std::set<std::string> compared;
  float worst = 0;
  void operator()(std::string_view name, const Tensor& t) {
    const std::string key = case_name + ".act." + std::string(name);
    if (!cases.find(key)) return;
    const float err = testing::max_rel_diff(t, cases.get(key).value());
    EXPECT_LE(err, kTolerance) << key;
    worst = std::max(worst, err);
    compared.insert(key);
  }
};

void check_all_cases(const VaeSet& s, const VaeKl& vae, const std::string& naming) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  for (const std::string& c : s.case_names) {
    SCOPED_TRACE(naming + " " + c);
    TraceCheck check{*s.cases, c};
    ctx.on_trace = std::ref(check);
    const Tensor moments = vae.encode_moments(ctx, s.cases->get(c + ".image").value());
    const float moments_err = testing::max_rel_diff(moments, s.cases->get(c + ".moments").value());
    EXPECT_LE(moments_err, kTolerance) << c << ".moments";
    const Tensor decoded = vae.decode(ctx, s.cases->get(c + ".latents").value());
    const float decoded_err = testing::max_rel_diff(decoded, s.cases->get(c + ".decoded").value());
    EXPECT_LE(decoded_err, kTolerance) << c << ".decoded";
    ctx.on_trace = nullptr;
    // Every activation the set recorded for this case was traced and compared.
    for (const auto& n : s.cases->names()) {
      if (n.rfind(c + ".act.", 0) == 0) {
        EXPECT_TRUE(check.compared.count(n)) << n << " was never traced";
      }
    }
    std::cout << naming << " " << c << ": " << check.compared.size() << " blocks, max rel error " << check.worst
              << "; moments " << moments_err << ", decoded " << decoded_err << "\n";
  }
}

TEST(VaeKl, ConfigFromShapes) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  const auto& dc = s.config.at("diffusers_config");
  for (const Checkpoint* ck : {&*s.diffusers, &*s.original}) {
    const std::string prefix = ck == &*s.original ? s.prefix : "";
    auto vae = VaeKl::load(ctx, tensors_under({ck}, prefix), s.options);
    ASSERT_TRUE(vae.ok()) << vae.error().message();
    EXPECT_EQ(vae->config().channels, dc.at("block_out_channels").get<std::vector<int>>());
    EXPECT_EQ(vae->config().layers_per_block, dc.at("layers_per_block").get<int>());
    EXPECT_EQ(vae->config().latent_channels, dc.at("latent_channels").get<int>());
    EXPECT_EQ(vae->config().image_channels, dc.at("in_channels").get<int>());
    EXPECT_TRUE(vae->config().quant_conv);
    EXPECT_TRUE(vae->has_encoder() && vae->has_decoder());
  }
}

TEST(VaeKl, RegistryRecognisesAVaeFileButNotAWholeCheckpoint) {
  VaeSet s = load_set("vae_kl_tiny");
  auto kind = recognize(*s.diffusers);
  ASSERT_TRUE(kind);
  EXPECT_EQ(kind->family, "vae_kl");
  EXPECT_NE(kind->detail.find("encoder + decoder"), std::string::npos) << kind->detail;
  // The original-naming file holds its VAE under a component prefix, as a whole SD checkpoint does.
  EXPECT_FALSE(recognize(*s.original) && recognize(*s.original)->family == "vae_kl");
  EXPECT_FALSE(recognize(*s.cases));
}

TEST(VaeKl, MatchesDiffusersBlockByBlockInDiffusersNaming) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  ASSERT_FALSE(s.case_names.empty());
  auto vae = VaeKl::load(ctx, tensors_under({&*s.diffusers}, ""), s.options);
  ASSERT_TRUE(vae.ok()) << vae.error().message();
  check_all_cases(s, *vae, "diffusers");
}

TEST(VaeKl, MatchesDiffusersBlockByBlockInOriginalNaming) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  ASSERT_FALSE(s.case_names.empty());
  auto vae = VaeKl::load(ctx, tensors_under({&*s.original}, s.prefix), s.options);
  ASSERT_TRUE(vae.ok()) << vae.error().message();
  check_all_cases(s, *vae, "original");
}

// The original's attention projections are 1x1 convs [C, C, 1, 1]: taken as [C, C] views of the
// file's bytes, never copied.
TEST(VaeKl, OriginalAttentionWeightsAreViews) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  const auto tensors = tensors_under({&*s.original}, s.prefix);
  const int up_levels = static_cast<int>(s.config.at("diffusers_config").at("block_out_channels").size());
  int seen = 0;
  for (const SourceTensor& t : tensors) {
    if (t.name.find("mid.attn_1.q.weight") == std::string::npos) continue;
    EXPECT_EQ(t.tensor.dim(), 4);
    EXPECT_EQ(vae_kl_our_name(t.name, up_levels),
              t.name.substr(0, t.name.find("mid.")) + "mid_block.attentions.0.to_q.weight");
    ++seen;
  }
  EXPECT_EQ(seen, 2);  // encoder and decoder
  // The loaded [C, C] weights point at the checkpoint's own bytes.
  auto vae = VaeKl::load(ctx, tensors, s.options);
  ASSERT_TRUE(vae.ok()) << vae.error().message();
  const auto& attn = vae->encoder()->mid_block.attention;
  for (const SourceTensor& t : tensors) {
    if (t.name == "encoder.mid.attn_1.q.weight") {
      EXPECT_EQ(attn.to_q.dim(), 2);
      EXPECT_EQ(attn.to_q.storage(), t.tensor.storage());
      EXPECT_EQ(attn.to_q.raw(), t.tensor.raw());
    }
    if (t.name == "encoder.mid.attn_1.proj_out.weight") {
      EXPECT_EQ(attn.to_out.raw(), t.tensor.raw());
    }
  }
}

TEST(VaeKl, NameTable) {
  const std::pair<const char*, const char*> cases[] = {
      {"encoder.down.0.block.1.norm1.weight", "encoder.down_blocks.0.resnets.1.norm1.weight"},
      {"encoder.down.1.block.0.nin_shortcut.bias", "encoder.down_blocks.1.resnets.0.conv_shortcut.bias"},
      {"encoder.down.2.downsample.conv.weight", "encoder.down_blocks.2.downsamplers.0.conv.weight"},
      {"encoder.mid.block_1.conv2.weight", "encoder.mid_block.resnets.0.conv2.weight"},
      {"decoder.mid.block_2.norm2.bias", "decoder.mid_block.resnets.1.norm2.bias"},
      {"encoder.mid.attn_1.norm.weight", "encoder.mid_block.attentions.0.group_norm.weight"},
      {"decoder.mid.attn_1.proj_out.bias", "decoder.mid_block.attentions.0.to_out.0.bias"},
      {"decoder.up.0.block.2.conv1.weight", "decoder.up_blocks.3.resnets.2.conv1.weight"},
      {"decoder.up.3.upsample.conv.bias", "decoder.up_blocks.0.upsamplers.0.conv.bias"},
      {"decoder.norm_out.weight", "decoder.conv_norm_out.weight"},
      {"quant_conv.weight", "quant_conv.weight"},
      {"encoder.mid_block.attentions.0.query.weight", "encoder.mid_block.attentions.0.to_q.weight"},
      {"decoder.mid_block.attentions.0.proj_attn.bias", "decoder.mid_block.attentions.0.to_out.0.bias"},
      {"decoder.up_blocks.1.resnets.0.conv_shortcut.weight", "decoder.up_blocks.1.resnets.0.conv_shortcut.weight"},
  };
  for (const auto& [from, to] : cases) EXPECT_EQ(vae_kl_our_name(from, 4), to) << from;
}

// diffusers before 0.15 named the attention query/key/value/proj_attn: built here from the
// diffusers file, with proj_attn as a [C, C, 1] conv as some conversions left it.
TEST(VaeKl, LoadsOlderDiffusersAttentionNames) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  std::vector<SourceTensor> tensors = tensors_under({&*s.diffusers}, "");
  const std::pair<std::string, std::string> renames[] = {
      {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
  int renamed = 0;
  for (SourceTensor& t : tensors)
    for (const auto& [from, to] : renames)
      if (auto at = t.name.find(from); at != std::string::npos && t.name.find(".attentions.0.") != std::string::npos) {
        t.name.replace(at, from.size(), to);
        if (to == ".proj_attn." && t.tensor.dim() == 2) t.tensor = t.tensor.unsqueeze(2);
        ++renamed;
      }
  EXPECT_EQ(renamed, 16);  // 4 projections x weight, bias x encoder, decoder
  auto vae = VaeKl::load(ctx, tensors, s.options);
  ASSERT_TRUE(vae.ok()) << vae.error().message();
  check_all_cases(s, *vae, "older-diffusers");
}

TEST(VaeKl, EncoderOrDecoderAlone) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  std::vector<SourceTensor> enc, dec;
  for (SourceTensor& t : tensors_under({&*s.diffusers}, ""))
    (t.name.rfind("encoder.", 0) == 0 || t.name.rfind("quant_conv.", 0) == 0 ? enc : dec).push_back(t);
  auto e = VaeKl::load(ctx, enc, s.options);
  ASSERT_TRUE(e.ok()) << e.error().message();
  EXPECT_TRUE(e->has_encoder() && !e->has_decoder());
  auto d = VaeKl::load(ctx, dec, s.options);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_TRUE(!d->has_encoder() && d->has_decoder());
  EXPECT_EQ(e->config().channels, d->config().channels);
  const std::string c = *s.case_names.begin();
  auto r = catch_errors([&] { return d->encode_moments(ctx, s.cases->get(c + ".image").value()); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("no encoder"), std::string::npos) << r.error().message();
}

TEST(VaeKl, MomentsViewsAndSample) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  std::vector<float> m(2 * 4 * 3 * 2);
  for (size_t i = 0; i < m.size(); ++i) m[i] = 0.1f * float(i) - 2.0f;
  m[30] = 50.0f;  // a logvar past the clamp
  const Tensor moments = Tensor::from_vector(m, {1, 8, 3, 2});
  std::vector<float> n(4 * 3 * 2);
  for (size_t i = 0; i < n.size(); ++i) n[i] = 0.5f - 0.03f * float(i);
  const Tensor noise = Tensor::from_vector(n, {1, 4, 3, 2});
  const auto z = VaeKl::sample(ctx, moments, noise).to_vector<float>();
  const auto mean = VaeKl::moments_mean(moments).to_vector<float>();
  ASSERT_EQ(z.size(), n.size());
  for (size_t i = 0; i < n.size(); ++i) {
    EXPECT_EQ(mean[i], m[i]);
    const float expected = m[i] + std::exp(0.5f * std::clamp(m[i + 24], -30.0f, 20.0f)) * n[i];
    EXPECT_NEAR(z[i], expected, 1e-5f * std::max(1.0f, std::fabs(expected))) << i;
  }
}

// --- errors a user hits ---------------------------------------------------------------------------

TEST(VaeKl, ReportsMissingAndMisshapedTensors) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  std::vector<SourceTensor> tensors;
  for (SourceTensor& t : tensors_under({&*s.diffusers}, "")) {
    if (t.name == "decoder.mid_block.attentions.0.to_v.bias") continue;  // missing
    if (t.name == "encoder.down_blocks.1.resnets.0.conv2.weight") t.tensor = t.tensor.narrow(0, 0, 1);  // mis-shaped
    tensors.push_back(t);
  }
  tensors.push_back({"encoder.extra.weight", tensors.front().tensor, "test: encoder.extra.weight"});
  auto vae = VaeKl::load(ctx, tensors, s.options);
  ASSERT_FALSE(vae.ok());
  const std::string& msg = vae.error().message();
  EXPECT_NE(msg.find("3 problems"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing decoder.mid_block.attentions.0.to_v.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("encoder.down_blocks.1.resnets.0.conv2.weight is [1,"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected test: encoder.extra.weight"), std::string::npos) << msg;
}

TEST(VaeKl, RefusesWhatIsNotAVae) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  auto none = VaeKl::load(ctx, {});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("not an AutoencoderKL"), std::string::npos) << none.error().message();
  // A group count that divides no level's channels: said, not crashed.
  const auto widths = s.config.at("diffusers_config").at("block_out_channels").get<std::vector<int>>();
  auto groups =
      VaeKl::load(ctx, tensors_under({&*s.diffusers}, ""), {*std::max_element(widths.begin(), widths.end()) + 1});
  ASSERT_FALSE(groups.ok());
  EXPECT_NE(groups.error().message().find("GroupNorm groups"), std::string::npos) << groups.error().message();
  // Both namings at once give every tensor twice.
  auto both = tensors_under({&*s.diffusers}, "");
  for (auto& t : tensors_under({&*s.original}, s.prefix)) both.push_back(t);
  auto twice = VaeKl::load(ctx, both, s.options);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message().find("both "), std::string::npos) << twice.error().message();
}

TEST(VaeKl, RefusesBadInputs) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  VaeSet s = load_set("vae_kl_tiny");
  auto vae = VaeKl::load(ctx, tensors_under({&*s.diffusers}, ""), s.options).value();
  const int f = vae.config().downscale();
  auto odd = catch_errors([&] { return vae.encode_moments(ctx, ops::zeros(ctx, {1, 3, f + 1, f})); });
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message().find("multiples of"), std::string::npos) << odd.error().message();
  auto gray = catch_errors([&] { return vae.encode_moments(ctx, ops::zeros(ctx, {1, 1, f, f})); });
  ASSERT_FALSE(gray.ok());
  EXPECT_NE(gray.error().message().find("expected an image"), std::string::npos) << gray.error().message();
  const int lc = vae.config().latent_channels;
  auto lat = catch_errors([&] { return vae.decode(ctx, ops::zeros(ctx, {1, lc + 1, 2, 2})); });
  ASSERT_FALSE(lat.ok());
  EXPECT_NE(lat.error().message().find(cat("expected latents [N, ", lc, ",")), std::string::npos)
      << lat.error().message();
}

}  // namespace
}  // namespace easel
