// TAESD against the reference (madebyollin/taesd, unmodified) on set taef2_real: real pretrained
// weights, every layer's activation for the cases that trace them, latents and decoded images.
// Cases come from the keys of cases.safetensors: "<case>.image", "<case>.latents",
// "<case>.decoded", and per-layer "<case>.encoder.<i>" / "<case>.decoder.<i>".
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "io/image.h"
#include "io/image_tensor.h"
#include "models/registry.h"
#include "models/taesd.h"
#include "test_data.h"

namespace easel {
namespace {

constexpr float kTolerance = 1e-4f;  // fp32, max abs, as the acceptance asks

struct GoldenSet {
  std::filesystem::path dir;
  std::vector<Checkpoint> checkpoints;  // everything in the folder
  std::vector<const Checkpoint*> weights;  // those recognised as TAESD
  const Checkpoint* cases = nullptr;       // the one that is not
  std::set<std::string> case_names;
};

GoldenSet load_set(const std::string& name) {
  GoldenSet s;
  s.dir = testing::set_dir(name);
  s.checkpoints = open_checkpoints(s.dir).value();
  for (const auto& ck : s.checkpoints) {
    if (recognize(ck)) s.weights.push_back(&ck);
    else s.cases = &ck;
  }
  EXPECT_TRUE(s.cases) << "no cases file in " << s.dir;
  if (s.cases)
    for (const auto& n : s.cases->names())
      if (n.size() > 6 && n.substr(n.size() - 6) == ".image") s.case_names.insert(n.substr(0, n.size() - 6));
  return s;
}

// Compares every traced activation "<part>.<i>" with "<case>.<part>.<i>" where the set has one.
struct TraceCheck {
  const Checkpoint& cases;
  std::string case_name;
  std::set<std::string> compared;
  float worst = 0;
  void operator()(std::string_view name, const Tensor& t) {
    const std::string key = case_name + "." + std::string(name);
    if (!cases.find(key)) return;
    const float err = testing::max_abs_diff(t, cases.get(key).value());
    EXPECT_LE(err, kTolerance) << key;
    worst = std::max(worst, err);
    compared.insert(key);
  }
};

// The per-layer activations the set has for one case: "<case>.encoder.<i>" and "<case>.decoder.<i>".
std::set<std::string> layer_keys(const Checkpoint& cases, const std::string& case_name) {
  std::set<std::string> keys;
  for (const std::string& n : cases.names())
    if (n.starts_with(case_name + ".encoder.") || n.starts_with(case_name + ".decoder.")) keys.insert(n);
  return keys;
}

TEST(Taesd, RecognisesTheVariantFromTensors) {
  GoldenSet s = load_set("taef2_real");
  ASSERT_FALSE(s.weights.empty());
  for (const Checkpoint* ck : s.weights) {
    auto kind = recognize(*ck);
    ASSERT_TRUE(kind);
    EXPECT_EQ(kind->family, "taesd");
    EXPECT_EQ(kind->variant, "taef2");
  }
}

TEST(Taesd, MatchesReferenceLayerByLayer) {
  GoldenSet s = load_set("taef2_real");
  ASSERT_FALSE(s.case_names.empty());
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto taesd = Taesd::load(ctx, s.weights);
  ASSERT_TRUE(taesd.ok()) << taesd.error().message();
  ASSERT_TRUE(taesd->has_encoder() && taesd->has_decoder());

  size_t layers_compared = 0;
  for (const std::string& c : s.case_names) {
    SCOPED_TRACE(c);
    // Every case has its latents and decoded image; the set's layer activations are all traced.
    ASSERT_TRUE(s.cases->find(c + ".latents")) << "the set has no " << c << ".latents";
    ASSERT_TRUE(s.cases->find(c + ".decoded")) << "the set has no " << c << ".decoded";
    TraceCheck check{*s.cases, c};
    ctx.on_trace = std::ref(check);
    Tensor latents = taesd->encode(ctx, s.cases->get(c + ".image").value());
    const float latents_err = testing::max_abs_diff(latents, s.cases->get(c + ".latents").value());
    EXPECT_LE(latents_err, kTolerance) << c << ".latents";
    // Decode the reference latents, so the decoder is judged on its own.
    Tensor decoded = taesd->decode(ctx, s.cases->get(c + ".latents").value());
    const float decoded_err = testing::max_abs_diff(decoded, s.cases->get(c + ".decoded").value());
    EXPECT_LE(decoded_err, kTolerance) << c << ".decoded";
    ctx.on_trace = nullptr;
    EXPECT_EQ(check.compared, layer_keys(*s.cases, c)) << "every layer activation of the set is traced";
    layers_compared += check.compared.size();
    std::cout << c << ": " << check.compared.size() << " traced layers, max abs error " << check.worst << "; latents "
              << latents_err << ", decoded " << decoded_err << "\n";
  }
  EXPECT_GT(layers_compared, 0u) << "the set traces no encoder or decoder layer";
}

double psnr_uint8(const Image& a, const Image& b) {
  EXPECT_EQ(a.pixels.size(), b.pixels.size());
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const double d = double(a.pixels[i]) - double(b.pixels[i]);
    se += d * d;
  }
  const double mse = se / double(a.pixels.size());
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

// The photos: our encode -> decode round trip, saved as 8-bit, has the reference's PSNR to the
// source (info.json) and matches the reference's decoded PNG.
TEST(Taesd, PhotoRoundTripMatchesReferencePsnr) {
  GoldenSet s = load_set("taef2_real");
  std::ifstream in(s.dir / "info.json");
  ASSERT_TRUE(in) << "no info.json in " << s.dir;
  const auto info = nlohmann::json::parse(in);
  ASSERT_FALSE(info.empty());
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto taesd = Taesd::load(ctx, s.weights).value();

  for (const auto& [name, entry] : info.items()) {
    SCOPED_TRACE(name);
    Image source = to_rgb(read_image(s.dir / (name + ".png")).value());
    Image reference = to_rgb(read_image(s.dir / (name + ".decoded.png")).value());
    Tensor decoded = taesd.decode(ctx, taesd.encode(ctx, image_to_tensor(source)));
    Image ours = tensor_to_image(decoded).value();
    const double psnr = psnr_uint8(ours, source);
    const double expected = entry.at("psnr_db_uint8").get<double>();
    EXPECT_NEAR(psnr, expected, 0.01) << name;
    int worst = 0;
    for (size_t i = 0; i < ours.pixels.size(); ++i)
      worst = std::max(worst, std::abs(int(ours.pixels[i]) - int(reference.pixels[i])));
    EXPECT_LE(worst, 2) << name << ": max per-channel difference to the reference's decoded PNG, in 1/255";
    std::cout << name << ": PSNR " << psnr << " dB (reference " << expected << "), max diff to reference PNG "
              << worst << "/255\n";
  }
}

TEST(Taesd, ReportsEveryProblemWithMismatchedWeights) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  // A decoder whose first conv has the wrong input channels for its own encoder.
  auto dir = std::filesystem::temp_directory_path() / "easel_taesd_bad";
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  tensors.push_back({"1.weight", Tensor::from_vector(std::vector<float>(64 * 4 * 9), {64, 4, 3, 3})});
  tensors.push_back({"1.bias", Tensor::from_vector(std::vector<float>(64), {64})});
  ASSERT_TRUE(write_safetensors(dir / "dec.safetensors", tensors).ok());
  auto ck = Checkpoint::open(dir / "dec.safetensors").value();
  auto t = Taesd::load(ctx, {&ck});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message().find("missing decoder.3.conv.0.weight"), std::string::npos) << t.error().message();
  EXPECT_NE(t.error().message().find("problems"), std::string::npos) << t.error().message();
}

}  // namespace
}  // namespace easel
