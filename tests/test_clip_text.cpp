// CLIP text encoders against the references on set clip_text_tiny: transformers' CLIPTextModel
// (openai, SD 1.x) and open_clip's text tower (SD 2.x) in open_clip and transformers naming.
// config.json lists the flavours, their weight files per naming and what shapes cannot tell
// (heads, activation); cases come from the keys of cases.safetensors:
// "<flavour>.<case>.input_ids", ".act.<module>", ".out", ".clip_skip2", ".pooled", ".projected".
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/registry.h"
#include "ops/ops.h"
#include "test_data.h"

namespace easel {
namespace {

constexpr float kTolerance = 1e-4f;  // max_rel_diff, fp32

struct ClipSet {
  std::filesystem::path dir;
  nlohmann::json config;
  Checkpoint cases;
};

ClipSet load_set() {
  const auto dir = testing::set_dir("clip_text_tiny");
  std::ifstream in(dir / "config.json");
  EXPECT_TRUE(in) << "no config.json in " << dir;
  return {dir, nlohmann::json::parse(in), Checkpoint::open(dir / "cases.safetensors").value()};
}

std::vector<std::string> flavours(const ClipSet& s) {
  std::vector<std::string> out;
  for (const auto& [name, entry] : s.config.items())
    if (entry.is_object() && entry.contains("weights")) out.push_back(name);
  return out;
}

// "<flavour>.<case>" for every "<flavour>.<case>.input_ids" in the cases file.
std::vector<std::string> case_names(const ClipSet& s, const std::string& flavour) {
  std::vector<std::string> out;
  const std::string suffix = ".input_ids";
  for (const std::string& n : s.cases.names())
    if (n.rfind(flavour + ".", 0) == 0 && n.size() > suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(n.substr(0, n.size() - suffix.size()));
  return out;
}

ClipTextOptions options_from(const nlohmann::json& flavour) {
  ClipTextOptions o;
  o.heads = flavour.at("heads").get<int>();
  const std::string act = flavour.at("hidden_act");
  EXPECT_TRUE(act == "quick_gelu" || act == "gelu") << act;
  o.activation = act == "quick_gelu" ? ClipActivation::QuickGelu : ClipActivation::Gelu;
  return o;
}

std::vector<SourceTensor> read_tensors(const std::filesystem::path& file, std::vector<Checkpoint>& keep) {
  keep.push_back(Checkpoint::open(file).value());
  return tensors_under({&keep.back()}, "");
}

struct TraceCheck {
  const Checkpoint& cases;
  std::string prefix;  // "<flavour>.<case>."
  std::set<std::string> compared;
  float worst = 0;
  void operator()(std::string_view name, const Tensor& t) {
    std::string key = prefix + "act." + std::string(name);
    if (name == "text_model.final_layer_norm") key = prefix + "out";
    if (!cases.find(key)) return;
    const float err = testing::max_rel_diff(t, cases.get(key).value());
    EXPECT_LE(err, kTolerance) << key;
    worst = std::max(worst, err);
    compared.insert(key);
  }
};

// What a forward pass traces of one case: "<prefix>act.*" (embeddings, every layer) and "<prefix>out".
std::set<std::string> traced_keys(const Checkpoint& cases, const std::string& prefix) {
  std::set<std::string> keys{prefix + "out"};
  for (const std::string& n : cases.names())
    if (n.starts_with(prefix + "act.")) keys.insert(n);
  return keys;
}

// Every case of one flavour, every layer, final norm, pooled, projected and clip skip 2.
void check_model(const ClipSet& s, const std::string& flavour, const ClipTextModel& model, const std::string& label) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const auto cases = case_names(s, flavour);
  ASSERT_FALSE(cases.empty()) << flavour;
  const int layers = model.config().layers;
  for (const std::string& c : cases) {
    SCOPED_TRACE(label + " " + c);
    const Tensor ids = s.cases.get(c + ".input_ids").value();
    TraceCheck check{s.cases, c + "."};
    ctx.on_trace = std::ref(check);
    ClipEncodeOptions o;
    o.pooled = true;
    const ClipTextOutput out = model.forward(ctx, ids, o);
    ctx.on_trace = nullptr;
    EXPECT_EQ(check.compared, traced_keys(s.cases, c + ".")) << "embeddings, every layer and the final norm";
    EXPECT_EQ(check.compared.size(), size_t(layers + 2)) << "embeddings, every layer and the final norm";

    float worst = check.worst;
    auto compare = [&](const Tensor& ours, const std::string& key) {
      if (!s.cases.find(key)) return false;
      const float err = testing::max_rel_diff(ours, s.cases.get(key).value());
      EXPECT_LE(err, kTolerance) << key;
      worst = std::max(worst, err);
      return true;
    };
    EXPECT_TRUE(compare(out.hidden, c + ".out"));
    EXPECT_TRUE(compare(out.pooled, c + ".pooled"));
    if (s.cases.find(c + ".projected")) {
      ASSERT_TRUE(out.projected.defined()) << "the reference has a projection, the model none";
      EXPECT_TRUE(compare(out.projected, c + ".projected"));
    } else {
      EXPECT_FALSE(out.projected.defined());
    }
    // The plain entry point and CLIP skip 2 (A1111 / SD2's penultimate layer).
    EXPECT_TRUE(compare(model.encode(ctx, ids), c + ".out"));
    if (layers >= 2) {
      EXPECT_TRUE(compare(model.encode(ctx, ids, 2), c + ".clip_skip2")) << "the set has no " << c << ".clip_skip2";
      // SDXL's use: penultimate layer without the final norm = the traced layers - 2 activation.
      ClipEncodeOptions raw;
      raw.clip_skip = 2;
      raw.final_layer_norm = false;
      EXPECT_TRUE(compare(model.forward(ctx, ids, raw).hidden, cat(c, ".act.text_model.encoder.layers.", layers - 2)));
    }
    std::cout << label << " " << c << ": " << check.compared.size() << " traced, max rel error " << worst << "\n";
  }
}

TEST(ClipText, MatchesReferenceLayerByLayerInEveryNaming) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ClipSet s = load_set();
  const auto names = flavours(s);
  ASSERT_FALSE(names.empty());
  for (const std::string& flavour : names) {
    const auto& f = s.config.at(flavour);
    for (const auto& [naming, file] : f.at("weights").items()) {
      SCOPED_TRACE(flavour + " / " + naming);
      std::vector<Checkpoint> keep;
      auto model = ClipTextModel::load(ctx, read_tensors(s.dir / file.get<std::string>(), keep), options_from(f));
      ASSERT_TRUE(model.ok()) << model.error().message();
      const ClipTextConfig& c = model->config();
      EXPECT_EQ(c.vocab_size, f.at("vocab_size").get<int64_t>());
      EXPECT_EQ(c.width, f.at("width").get<int64_t>());
      EXPECT_EQ(c.layers, f.at("layers").get<int>());
      EXPECT_EQ(c.intermediate_size, f.at("intermediate_size").get<int64_t>());
      EXPECT_EQ(c.projection_dim, f.at("projection_dim").is_null() ? 0 : f.at("projection_dim").get<int64_t>());
      EXPECT_EQ(c.naming, naming == "open_clip" ? ClipNaming::OpenClip : ClipNaming::Transformers);
      check_model(s, flavour, *model, flavour + "/" + naming);
    }
  }
}

// Real checkpoints are mostly f16: weights stay f16 (ops take them directly). Compared with the f32
// reference at f16's precision: this checks the dtype paths, the f32 test above checks the numbers.
TEST(ClipText, RunsOnF16Weights) {
  ClipSet s = load_set();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  for (const std::string& flavour : flavours(s)) {
    const auto& f = s.config.at(flavour);
    for (const auto& [naming, file] : f.at("weights").items()) {
      SCOPED_TRACE(flavour + " / " + naming);
      std::vector<Checkpoint> keep;
      auto tensors = read_tensors(s.dir / file.get<std::string>(), keep);
      for (SourceTensor& t : tensors)
        if (t.tensor.dtype() == DType::F32) t.tensor = ops::cast(ctx, t.tensor, DType::F16);
      auto model = ClipTextModel::load(ctx, tensors, options_from(f));
      ASSERT_TRUE(model.ok()) << model.error().message();
      for (const std::string& c : case_names(s, flavour)) {
        ClipEncodeOptions o;
        o.pooled = true;
        const auto out = model->forward(ctx, s.cases.get(c + ".input_ids").value(), o);
        const float err = testing::max_rel_diff(out.hidden, s.cases.get(c + ".out").value());
        EXPECT_LE(err, 5e-3f) << c;
        if (s.cases.find(c + ".projected")) {
          EXPECT_LE(testing::max_rel_diff(out.projected, s.cases.get(c + ".projected").value()), 5e-3f) << c;
        }
        std::cout << flavour << "/" << naming << " f16 " << c << ": max rel error " << err << "\n";
      }
    }
  }
}

// Old SD1 single files name the text model without `text_model.` (cond_stage_model.transformer.encoder...).
TEST(ClipText, LoadsTransformersNamingWithoutTextModelPrefix) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ClipSet s = load_set();
  for (const std::string& flavour : flavours(s)) {
    const auto& f = s.config.at(flavour);
    if (!f.at("weights").contains("transformers")) continue;
    SCOPED_TRACE(flavour);
    std::vector<Checkpoint> keep;
    auto tensors = read_tensors(s.dir / f.at("weights").at("transformers").get<std::string>(), keep);
    std::vector<SourceTensor> old_style;
    int renamed = 0;
    for (SourceTensor t : tensors) {
      if (t.name.rfind("text_model.", 0) == 0) {
        t.name = t.name.substr(11);
        ++renamed;
      }
      old_style.push_back(t);
    }
    ASSERT_GT(renamed, 0);
    auto model = ClipTextModel::load(ctx, old_style, options_from(f));
    ASSERT_TRUE(model.ok()) << model.error().message();
    check_model(s, flavour, *model, flavour + "/old-sd1-naming");
  }
}

// What shapes cannot tell, derived: heads = width / 64; activation from naming and width.
TEST(ClipText, DerivesDefaultsFromNamingAndSize) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ClipSet s = load_set();
  for (const std::string& flavour : flavours(s)) {
    const auto& f = s.config.at(flavour);
    for (const auto& [naming, file] : f.at("weights").items()) {
      std::vector<Checkpoint> keep;
      const auto tensors = read_tensors(s.dir / file.get<std::string>(), keep);
      ClipTextOptions o;
      o.heads = f.at("heads").get<int>();
      auto model = ClipTextModel::load(ctx, tensors, o);
      ASSERT_TRUE(model.ok()) << model.error().message();
      // Our tiny models are narrower than 768: transformers naming reads as openai CLIP.
      EXPECT_EQ(model->config().activation,
                naming == "open_clip" ? ClipActivation::Gelu : ClipActivation::QuickGelu) << flavour << "/" << naming;
      if (f.at("width").get<int>() % 64 != 0) {  // width / 64 heads does not work: the message says so
        auto bad = ClipTextModel::load(ctx, tensors);
        ASSERT_FALSE(bad.ok());
        EXPECT_NE(bad.error().message().find("attention heads"), std::string::npos) << bad.error().message();
      }
    }
  }
}

// Helpers for the error tests: the open_clip weights with one change.
std::vector<SourceTensor> open_clip_tensors(const ClipSet& s, std::vector<Checkpoint>& keep, ClipTextOptions& o) {
  for (const std::string& flavour : flavours(s)) {
    const auto& f = s.config.at(flavour);
    if (f.at("weights").contains("open_clip")) {
      o = options_from(f);
      return read_tensors(s.dir / f.at("weights").at("open_clip").get<std::string>(), keep);
    }
  }
  ADD_FAILURE() << "no open_clip weights in the set";
  return {};
}

TEST(ClipText, ReportsAMissingTensorByName) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ClipSet s = load_set();
  std::vector<Checkpoint> keep;
  ClipTextOptions o;
  auto tensors = open_clip_tensors(s, keep, o);
  std::erase_if(tensors, [](const SourceTensor& t) { return t.name == "transformer.resblocks.1.mlp.c_fc.bias"; });
  auto model = ClipTextModel::load(ctx, tensors, o);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.error().message().find("missing text_model.encoder.layers.1.mlp.fc1.bias"), std::string::npos)
      << model.error().message();
}

TEST(ClipText, ReportsAWrongShapeWithTheSourceName) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ClipSet s = load_set();
  std::vector<Checkpoint> keep;
  ClipTextOptions o;
  auto tensors = open_clip_tensors(s, keep, o);
  for (SourceTensor& t : tensors)
    if (t.name == "transformer.resblocks.0.mlp.c_proj.weight") t.tensor = t.tensor.narrow(1, 0, t.tensor.size(1) - 1);
  auto model = ClipTextModel::load(ctx, tensors, o);
  ASSERT_FALSE(model.ok());
  const std::string& msg = model.error().message();
  EXPECT_NE(msg.find("transformer.resblocks.0.mlp.c_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected"), std::string::npos) << msg;
}

TEST(ClipText, RejectsTensorsItDoesNotKnowButIgnoresCheckpointExtras) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ClipSet s = load_set();
  std::vector<Checkpoint> keep;
  ClipTextOptions o;
  auto tensors = open_clip_tensors(s, keep, o);
  // What SD2 single files carry beside the text weights (logit_scale is in the set's file already).
  tensors.push_back({"text_model.embeddings.position_ids", Tensor::from_vector(std::vector<int64_t>(77), {1, 77}), "x"});
  EXPECT_TRUE(ClipTextModel::load(ctx, tensors, o).ok());

  auto with_visual = tensors;
  with_visual.push_back({"visual.proj", Tensor::from_vector(std::vector<float>(4), {2, 2}), "sd2.safetensors: visual.proj"});
  auto model = ClipTextModel::load(ctx, with_visual, o);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.error().message().find("visual.proj"), std::string::npos) << model.error().message();

  auto extra_layer_tensor = tensors;
  extra_layer_tensor.push_back({"transformer.resblocks.0.attn.bias_k", Tensor::from_vector(std::vector<float>(4), {4}),
                                "sd2.safetensors: transformer.resblocks.0.attn.bias_k"});
  model = ClipTextModel::load(ctx, extra_layer_tensor, o);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.error().message().find("bias_k"), std::string::npos) << model.error().message();
}

TEST(ClipText, RejectsBadTokenIdsAndClipSkip) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ClipSet s = load_set();
  std::vector<Checkpoint> keep;
  ClipTextOptions o;
  auto model = ClipTextModel::load(ctx, open_clip_tensors(s, keep, o), o).value();
  const int64_t V = model.config().vocab_size;
  auto r = catch_errors([&] { return model.encode(ctx, Tensor::from_vector(std::vector<int32_t>{1, int32_t(V)}, {1, 2})); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("outside the vocabulary"), std::string::npos) << r.error().message();
  r = catch_errors([&] { return model.encode(ctx, Tensor::from_vector(std::vector<int32_t>{1, 2}, {1, 2}), 99); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("clip skip 99"), std::string::npos) << r.error().message();
  r = catch_errors([&] { return model.encode(ctx, Tensor::from_vector(std::vector<float>{1, 2}, {1, 2})); });
  EXPECT_FALSE(r.ok());
  // i32 ids give what i64 ids give.
  const Tensor a = model.encode(ctx, Tensor::from_vector(std::vector<int32_t>{int32_t(V - 2), 5, int32_t(V - 1)}, {1, 3}));
  const Tensor b = model.encode(ctx, Tensor::from_vector(std::vector<int64_t>{V - 2, 5, V - 1}, {1, 3}));
  EXPECT_EQ(testing::max_abs_diff(a, b), 0.0f);
}

TEST(ClipText, RegistryRecognisesTextEncoderFiles) {
  ClipSet s = load_set();
  for (const std::string& flavour : flavours(s))
    for (const auto& [naming, file] : s.config.at(flavour).at("weights").items()) {
      auto ck = Checkpoint::open(s.dir / file.get<std::string>()).value();
      auto kind = recognize(ck);
      ASSERT_TRUE(kind) << file;
      EXPECT_EQ(kind->family, "clip_text");
      std::cout << file.get<std::string>() << ": " << kind->variant << ", " << kind->detail << "\n";
    }
  EXPECT_FALSE(recognize(s.cases));
}

}  // namespace
}  // namespace easel
