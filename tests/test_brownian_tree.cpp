// A1111's Brownian-tree noise against set `brownian_tree` (tools/refgen/brownian_tree.py; see its
// README.md): numpy's SeedSequence words, k-diffusion's BrownianTreeNoiseSampler answers for every
// query of every tree case, and whole runs of the four SDE samplers with the noise sampler built
// the way the pipeline builds it (a1111_noise_sampler), step by step; the pipeline seeding each
// iteration's trees with its own seeds; the error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "io/checkpoint.h"
#include "ops/ops.h"
#include "sampling/brownian_tree.h"
#include "sampling/guidance.h"
#include "sampling/image_rng.h"
#include "sampling/samplers.h"
#include "sampling/seed_sequence.h"
#include "test_data.h"

namespace easel::sampling {
namespace {

using nlohmann::json;

constexpr float kTreeTolerance = 1e-6f;  // relative; the noise is expected bit-exact
constexpr float kStepTolerance = 1e-4f;  // relative, like the samplers set

struct BrownianSet {
  json info;
  Checkpoint tensors;
};

BrownianSet load_set() {
  const auto dir = testing::set_dir("brownian_tree");
  std::ifstream f(dir / "cases.json");
  EXPECT_TRUE(f) << "missing " << dir / "cases.json";
  return BrownianSet{json::parse(f), Checkpoint::open(dir / "cases.safetensors").value()};
}

uint64_t big(const json& v) { return std::stoull(v.get<std::string>()); }

Shape shape_of(const json& dims) {
  Shape s;
  for (const auto& d : dims) s.push_back(d.get<int64_t>());
  return s;
}

TEST(BrownianTree, SeedSequenceMatchesNumpy) {
  const BrownianSet set = load_set();
  ASSERT_FALSE(set.info["seed_sequences"].empty());
  for (const json& c : set.info["seed_sequences"]) {
    SCOPED_TRACE(c.dump());
    std::vector<uint64_t> spawn_key;
    for (const auto& k : c["spawn_key"]) spawn_key.push_back(big(k));
    const SeedSequence ss(big(c["entropy"]), spawn_key, c["pool_size"].get<int>());
    const int n = c["n_words"].get<int>();
    std::vector<uint64_t> got;
    if (c["dtype"] == "uint64") {
      got = ss.generate_state64(n);
    } else {
      for (uint32_t w : ss.generate_state(n)) got.push_back(w);
    }
    ASSERT_EQ(got.size(), c["state"].size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], big(c["state"][i])) << "word " << i;
  }
}

TEST(BrownianTree, NoiseSamplerMatchesKDiffusion) {
  const BrownianSet set = load_set();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ASSERT_FALSE(set.info["tree_cases"].empty());
  int n_queries = 0, n_exact = 0;
  float worst = 0;
  for (const json& c : set.info["tree_cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    std::vector<int64_t> seeds;
    for (const auto& s : c["seeds"]) seeds.push_back(static_cast<int64_t>(big(s)));
    auto sampler = BrownianTreeNoiseSampler::create(shape_of(c["shape"]), c["sigma_min"].get<float>(),
                                                    c["sigma_max"].get<float>(), seeds);
    ASSERT_TRUE(sampler.ok()) << sampler.error().message();
    for (size_t q = 0; q < c["queries"].size(); ++q) {
      const json& query = c["queries"][q];
      auto got = sampler.value()->sample(ctx, query[0].get<float>(), query[1].get<float>());
      ASSERT_TRUE(got.ok()) << got.error().message();
      const std::string key = name + ".q." + std::to_string(q);
      const Tensor ref = set.tensors.get(key).value();
      const float e = testing::max_rel_diff(got.value(), ref);
      EXPECT_LE(e, kTreeTolerance) << key;
      worst = std::max(worst, e);
      n_exact += testing::max_abs_diff(got.value(), ref) == 0.0f;
      ++n_queries;
    }
  }
  std::printf("[brownian_tree] %d queries: %d bit-exact, worst rel err %.3g\n", n_queries, n_exact, worst);
}

// The set's network (as tests/data/samplers): out = a(t) x + b(t) tanh(x), guided on the output.
Tensor analytic(Context& ctx, const Tensor& x, float t, const json& coef) {
  const double a = coef[0].get<double>() + coef[1].get<double>() * std::cos(static_cast<double>(t) / 400.0);
  const double b = coef[2].get<double>() * std::sin(static_cast<double>(t) / 250.0 + coef[3].get<double>());
  return ops::add(ctx, ops::affine(ctx, x, static_cast<float>(a), 0.0f),
                  ops::affine(ctx, ops::tanh(ctx, x), static_cast<float>(b), 0.0f));
}

// Forwards to the sampler's noise and records the (sigma, sigma_next) it was asked for.
struct RecordingNoise : IntervalNoise {
  IntervalNoise& inner;
  std::vector<std::pair<float, float>> queries;
  explicit RecordingNoise(IntervalNoise& n) : inner(n) {}
  Tensor between(Context& ctx, float sigma, float sigma_next) override {
    queries.emplace_back(sigma, sigma_next);
    return inner.between(ctx, sigma, sigma_next);
  }
};

TEST(BrownianTree, SdeSamplersMatchA1111EveryStep) {
  const BrownianSet set = load_set();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const json& sched = set.info["schedule"];
  const DiscreteSchedule training = DiscreteSchedule::scaled_linear(
      sched["num_train_timesteps"].get<int>(), sched["beta_start"].get<double>(), sched["beta_end"].get<double>());
  const Shape per_image = shape_of(set.info["latent_shape_per_image"]);
  const json& model_coef = set.info["model"];

  int n_cases = 0, n_steps = 0, n_levels = 0, n_levels_exact = 0;
  float worst = 0;
  std::string worst_key;
  ASSERT_FALSE(set.info["sampler_cases"].empty());
  for (const json& c : set.info["sampler_cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const SamplerChoice choice =
        parse_sampler_and_schedule(c["sampler"].get<std::string>(), c["schedule"].get<std::string>()).value();
    ASSERT_TRUE(sampler_info(choice.sampler).brownian_noise);
    const float scale = c["cfg_scale"].get<float>();
    const ModelFn fn = [&](Context& cx, const Tensor& x, float t) {
      return cfg(cx, analytic(cx, x, t, model_coef["uncond"]), analytic(cx, x, t, model_coef["cond"]), scale);
    };
    const CompVisDenoiser model(training, c["prediction"] == "v" ? Prediction::V : Prediction::Eps, fn);
    const int steps = c["steps"].get<int>();
    const bool img2img = c.contains("strength");
    const Plan plan = img2img ? plan_img2img(choice, model, steps, c["strength"].get<float>())
                              : plan_txt2img(choice, model, steps);
    EXPECT_EQ(plan.table_sigma_min, c["tree_sigma_min"].get<float>());
    EXPECT_EQ(plan.table_sigma_max, c["tree_sigma_max"].get<float>());

    SeedParams seeds;
    for (int i = 0; i < c["batch"].get<int>(); ++i) seeds.seeds.push_back(c["seed"].get<int64_t>() + i);
    ImageRng noise(seeds);
    Shape shape = per_image;
    shape.insert(0, static_cast<int64_t>(seeds.seeds.size()));
    const Tensor first = noise.next(ctx, shape);
    const Tensor x = img2img ? plan.start(ctx, first, set.tensors.get(name + ".init").value()) : plan.start(ctx, first);

    // what the pipeline does
    auto brownian = a1111_noise_sampler(plan, seeds.seeds, per_image);
    ASSERT_TRUE(brownian.ok()) << brownian.error().message();
    ASSERT_TRUE(brownian.value());
    RecordingNoise recorder(*brownian.value());
    SamplerOptions opt;
    opt.interval_noise = &recorder;
    int seen = 0;
    auto out = sample(ctx, plan, model, x, noise, opt, [&](const StepInfo& s) {
      const std::string key = name + ".x." + std::to_string(s.step);
      const float e = testing::max_rel_diff(s.x, set.tensors.get(key).value());
      EXPECT_LE(e, kStepTolerance) << key;
      if (e > worst) worst = e, worst_key = key;
      ++seen;
      ++n_steps;
    });
    ASSERT_TRUE(out.ok()) << out.error().message();
    EXPECT_EQ(seen, c["recorded_steps"].get<int>());
    // The noise sampler was asked for the same levels, to the bit: the tree rounds them to 1e-6, so
    // an ulp can move a query to the next grid point. Where the generator found that torch's float32
    // exp / pow / log (MKL on its CPU) were not correctly rounded for a level of the run (easel's
    // are), a few ulps are allowed.
    const bool exact = c.value("torch_math_correctly_rounded", true);
    ASSERT_EQ(recorder.queries.size(), c["queries"].size());
    for (size_t q = 0; q < recorder.queries.size(); ++q) {
      for (int k = 0; k < 2; ++k) {
        const float ours = k == 0 ? recorder.queries[q].first : recorder.queries[q].second;
        const float ref = c["queries"][q][k].get<float>();
        if (exact) EXPECT_EQ(ours, ref) << "query " << q;
        else EXPECT_NEAR(ours, ref, 3e-7f * std::fabs(ref)) << "query " << q;
        n_levels_exact += ours == ref;
        ++n_levels;
      }
    }
    if (exact) {
      EXPECT_EQ(plan.sigmas, set.tensors.get(name + ".sigmas").value().to_vector<float>()) << "sigma table bits";
    }
    ++n_cases;
  }
  std::printf("[brownian_tree] %d sampler runs, %d steps: worst step rel err %.3g (%s); %d of %d query levels exact\n",
              n_cases, n_steps, worst, worst_key.c_str(), n_levels_exact, n_levels);
}

TEST(BrownianTree, BadInputIsAnError) {
  EXPECT_FALSE(BrownianTreeNoiseSampler::create(Shape{4, 2, 2}, 0.03f, 14.6f, {1, -2}).ok());
  EXPECT_FALSE(BrownianTreeNoiseSampler::create(Shape{4, 2, 2}, 0.03f, 14.6f, {}).ok());
  EXPECT_FALSE(BrownianTreeNoiseSampler::create(Shape{4, 2, 2}, NAN, 14.6f, {1}).ok());
  EXPECT_FALSE(BrownianTree::create(2.0, 1.0, Shape{3}, 1).ok());
  auto tree = BrownianTree::create(0.5, 1.5, Shape{3}, 1).value();
  EXPECT_FALSE(tree.increment(1.2, 1.1).ok());  // ta > tb
  EXPECT_FALSE(tree.increment(NAN, 1.1).ok());
  // clamped to the range, and an empty interval is zero
  EXPECT_EQ(tree.increment(0.0, 9.0).value(), tree.increment(0.5, 1.5).value());
  EXPECT_EQ(tree.increment(1.0, 1.0000001).value(), std::vector<float>(3, 0.0f));

  // not an SDE sampler: no noise sampler; an SDE sampler gets one
  auto rt = Runtime::create().value();
  const DiscreteSchedule training = DiscreteSchedule::scaled_linear();
  ModelFn fn = [](Context& c, const Tensor& x, float) { return ops::affine(c, x, 0.5f, 0.0f); };
  CompVisDenoiser model(training, Prediction::Eps, fn);
  EXPECT_FALSE(a1111_noise_sampler(plan_txt2img({SamplerKind::Euler}, model, 4), {1}, Shape{4, 2, 2}).value());
  EXPECT_TRUE(a1111_noise_sampler(plan_txt2img({SamplerKind::Dpmpp2MSde}, model, 4), {1}, Shape{4, 2, 2}).value());
  Plan no_table;
  no_table.sampler = SamplerKind::DpmppSde;
  EXPECT_FALSE(a1111_noise_sampler(no_table, {1}, Shape{4, 2, 2}).ok());
  // a noise sampler of the wrong batch is an error from sample(), not a crash
  const Plan plan = plan_txt2img({SamplerKind::Dpmpp2MSde}, model, 4);
  auto three = a1111_noise_sampler(plan, {1, 2, 3}, Shape{4, 2, 2}).value();
  ImageRng noise(SeedParams{{1}});
  SamplerOptions opt;
  opt.interval_noise = three.get();
  Context ctx = rt->context();
  const Tensor x = plan.start(ctx, noise.next(ctx, Shape{1, 4, 2, 2}));
  EXPECT_FALSE(sample(ctx, plan, model, x, noise, opt).ok());
}

}  // namespace
}  // namespace easel::sampling
