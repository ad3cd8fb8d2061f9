// Samplers and schedules against set `samplers` (tools/refgen/samplers.py; see its README.md):
// every case of info.json is run through the C++ plan + sampler with the same analytic network,
// guidance and A1111 per-image noise, and every step's x is compared with the reference, as is
// the sigma / timestep table. Plus name parsing and error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "io/checkpoint.h"
#include "ops/ops.h"
#include "sampling/guidance.h"
#include "sampling/image_rng.h"
#include "sampling/samplers.h"
#include "test_data.h"

namespace easel::sampling {
namespace {

using nlohmann::json;

constexpr float kStepTolerance = 1e-4f;   // relative, fp32
constexpr float kTableTolerance = 1e-6f;  // relative, sigma tables

struct SamplerSet {
  json info;
  Checkpoint cases;
};

SamplerSet load_set() {
  const auto dir = testing::set_dir("samplers");
  std::ifstream f(dir / "info.json");
  EXPECT_TRUE(f) << "missing " << dir / "info.json";
  SamplerSet s{json::parse(f), Checkpoint::open(dir / "cases.safetensors").value()};
  return s;
}

// The set's network: out = a(t) x + b(t) tanh(x), a = A0 + A1 cos(t/400), b = B0 sin(t/250 + B1).
Tensor analytic(Context& ctx, const Tensor& x, float t, const json& coef) {
  const double a = coef[0].get<double>() + coef[1].get<double>() * std::cos(static_cast<double>(t) / 400.0);
  const double b = coef[2].get<double>() * std::sin(static_cast<double>(t) / 250.0 + coef[3].get<double>());
  return ops::add(ctx, ops::affine(ctx, x, static_cast<float>(a), 0.0f),
                  ops::affine(ctx, ops::tanh(ctx, x), static_cast<float>(b), 0.0f));
}

ModelFn guided_model(const json& model, float scale, float phi) {
  return [model, scale, phi](Context& ctx, const Tensor& x, float t) {
    const Tensor u = analytic(ctx, x, t, model["uncond"]);
    const Tensor c = analytic(ctx, x, t, model["cond"]);
    return rescale_cfg(ctx, cfg(ctx, u, c, scale), c, phi);
  };
}

float max_rel_table(const std::vector<float>& ours, const Tensor& ref) {
  const auto r = ref.to_vector<float>();
  EXPECT_EQ(ours.size(), r.size());
  if (ours.size() != r.size()) return INFINITY;
  float m = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const float d = std::fabs(ours[i] - r[i]) / std::max(std::fabs(r[i]), 1e-30f);
    if (!(d <= m)) m = d;
  }
  return m;
}

TEST(Samplers, MatchReferenceEveryStep) {
  SamplerSet set = load_set();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const json& sched = set.info["schedule"];
  ASSERT_EQ(sched["type"], "scaled_linear");
  const DiscreteSchedule training = DiscreteSchedule::scaled_linear(
      sched["num_train_timesteps"].get<int>(), sched["beta_start"].get<double>(), sched["beta_end"].get<double>());
  Shape per_image;
  for (const auto& d : set.info["latent_shape_per_image"]) per_image.push_back(d.get<int64_t>());

  int n_cases = 0, n_steps = 0;
  float worst_step = 0, worst_table = 0;
  std::string worst_case;
  ASSERT_FALSE(set.info["cases"].empty());
  for (const json& c : set.info["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const SamplerChoice choice =
        parse_sampler_and_schedule(c["sampler"].get<std::string>(), c["schedule"].get<std::string>()).value();
    const ModelFn fn = guided_model(set.info["model"], c["cfg_scale"].get<float>(), c["phi"].get<float>());
    const Prediction pred = c["prediction"] == "v" ? Prediction::V : Prediction::Eps;
    std::unique_ptr<Denoiser> model;
    if (choice.sampler == SamplerKind::Lcm) model = std::make_unique<LcmDenoiser>(training, fn);
    else model = std::make_unique<CompVisDenoiser>(training, pred, fn);

    const int steps = c["steps"].get<int>();
    const bool img2img = c.contains("strength");
    const Plan plan = img2img ? plan_img2img(choice, *model, steps, c["strength"].get<float>())
                              : plan_txt2img(choice, *model, steps);

    // the table
    if (sampler_info(choice.sampler).timesteps) {
      std::vector<float> ts(plan.timesteps.begin(), plan.timesteps.end());
      const float e = max_rel_table(ts, set.cases.get(name + ".timesteps").value());
      EXPECT_EQ(e, 0.0f) << "timesteps";
    } else {
      const float e = max_rel_table(plan.sigmas, set.cases.get(name + ".sigmas").value());
      EXPECT_LE(e, kTableTolerance) << "sigmas";
      worst_table = std::max(worst_table, e);
    }

    // noise, start, sampling
    SeedParams seeds;
    const int batch = c["batch"].get<int>();
    for (int i = 0; i < batch; ++i) seeds.seeds.push_back(c["seed"].get<int64_t>() + i);
    seeds.eta_noise_seed_delta = c.value("ensd", int64_t{0});
    ImageRng noise(seeds);
    Shape shape = per_image;
    shape.insert(0, batch);
    const Tensor first = noise.next(ctx, shape);
    const Tensor x = img2img ? plan.start(ctx, first, set.cases.get(name + ".init").value()) : plan.start(ctx, first);

    SamplerOptions opt;
    if (c.contains("eta")) opt.eta = c["eta"].get<float>();
    if (c.contains("s_noise")) opt.s_noise = c["s_noise"].get<float>();
    const int recorded = c["recorded_steps"].get<int>();
    EXPECT_EQ(plan.steps(), recorded);
    int seen = 0;
    auto out = sample(ctx, plan, *model, x, noise, opt, [&](const StepInfo& s) {
      EXPECT_EQ(s.step, seen);
      EXPECT_EQ(s.steps, recorded);
      const std::string key = name + ".x." + std::to_string(s.step);
      auto ref = set.cases.get(key);
      ASSERT_TRUE(ref.ok()) << key;
      const float e = testing::max_rel_diff(s.x, ref.value());
      EXPECT_LE(e, kStepTolerance) << key;
      if (e > worst_step) worst_step = e, worst_case = key;
      ++seen;
      ++n_steps;
    });
    ASSERT_TRUE(out.ok()) << out.error().message();
    EXPECT_EQ(seen, recorded);
    ++n_cases;
  }
  std::printf("[samplers] %d cases, %d steps: worst step rel err %.3g (%s), worst sigma table rel err %.3g\n", n_cases,
              n_steps, worst_step, worst_case.c_str(), worst_table);
}

TEST(Samplers, ParsesA1111Names) {
  EXPECT_EQ(parse_sampler("Euler a").value(), SamplerKind::EulerA);
  EXPECT_EQ(parse_sampler("k_euler_ancestral").value(), SamplerKind::EulerA);
  EXPECT_EQ(parse_sampler("dpm++ 2m").value(), SamplerKind::Dpmpp2M);
  EXPECT_EQ(parse_sampler("DPM++ 2M SDE Heun").value(), SamplerKind::Dpmpp2MSdeHeun);
  EXPECT_EQ(parse_sampler("UniPC").value(), SamplerKind::UniPC);
  for (const auto& s : all_samplers()) EXPECT_EQ(parse_sampler(s.name).value(), s.kind) << s.name;

  auto c = parse_sampler_and_schedule("DPM++ 2M Karras").value();
  EXPECT_EQ(c.sampler, SamplerKind::Dpmpp2M);
  EXPECT_EQ(c.schedule, ScheduleType::Automatic);  // Karras is DPM++ 2M's automatic choice
  c = parse_sampler_and_schedule("Euler a Karras").value();
  EXPECT_EQ(c.sampler, SamplerKind::EulerA);
  EXPECT_EQ(c.schedule, ScheduleType::Karras);
  c = parse_sampler_and_schedule("DPM++ 2M SDE Exponential", "Karras").value();
  EXPECT_EQ(c.sampler, SamplerKind::Dpmpp2MSde);
  EXPECT_EQ(c.schedule, ScheduleType::Automatic);  // the suffix wins; exponential is its automatic
  c = parse_sampler_and_schedule("Euler", "SGM Uniform").value();
  EXPECT_EQ(c.schedule, ScheduleType::SgmUniform);
  c = parse_sampler_and_schedule("Euler SGMUniform").value();
  EXPECT_EQ(c.sampler, SamplerKind::Euler);
  EXPECT_EQ(c.schedule, ScheduleType::SgmUniform);
  c = parse_sampler_and_schedule("DPM++ 2M SDE Heun", "").value();  // a sampler name that ends like a schedule
  EXPECT_EQ(c.sampler, SamplerKind::Dpmpp2MSdeHeun);

  EXPECT_EQ(parse_schedule("karras").value(), ScheduleType::Karras);
  EXPECT_EQ(parse_schedule("sgm_uniform").value(), ScheduleType::SgmUniform);
  EXPECT_EQ(parse_schedule("").value(), ScheduleType::Automatic);
  for (auto t : all_schedules()) EXPECT_EQ(parse_schedule(schedule_label(t)).value(), t);
}

TEST(Samplers, UnknownNamesListTheValidOnes) {
  auto s = parse_sampler("Euler b");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("unknown sampler 'Euler b'"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("'DPM++ 2M'"), std::string::npos);
  EXPECT_NE(s.error().message().find("'UniPC'"), std::string::npos);
  auto c = parse_sampler_and_schedule("Euler", "Karas");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("'SGM Uniform'"), std::string::npos) << c.error().message();
  EXPECT_FALSE(parse_sampler_and_schedule("Foo Karras").ok());
}

TEST(Samplers, ErrorPaths) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const DiscreteSchedule training = DiscreteSchedule::scaled_linear();
  ModelFn fn = [](Context& c, const Tensor& x, float) { return ops::affine(c, x, 0.5f, 0.0f); };
  CompVisDenoiser model(training, Prediction::Eps, fn);
  ImageRng noise(SeedParams{{1}});
  const Tensor x = noise.next(ctx, Shape{1, 4, 2, 2});

  // UniPC is order 3: fewer steps are refused with a message
  Plan p = plan_img2img({SamplerKind::UniPC}, model, 6, 0.4f);
  auto r = sample(ctx, p, model, x, noise);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("UniPC"), std::string::npos);
  // LCM needs the LCM wrapper
  r = sample(ctx, plan_txt2img({SamplerKind::Lcm}, model, 4), model, x, noise);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("LcmDenoiser"), std::string::npos);
  // noise for a batch other than the seeds'
  EXPECT_THROW(noise.next(ctx, Shape{2, 4, 2, 2}), Exception);
  // init of the wrong shape
  Plan img = plan_img2img({SamplerKind::Euler}, model, 6, 0.5f);
  EXPECT_THROW(img.start(ctx, x, noise.next(ctx, Shape{1, 4, 2, 3}).view(Shape{1, 4, 3, 2})), Exception);
  // cancellation stops with an error
  std::atomic<bool> cancel{true};
  ctx.cancel_flag = &cancel;
  r = sample(ctx, plan_txt2img({SamplerKind::Euler}, model, 4), model, x, noise);
  ctx.cancel_flag = nullptr;
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("cancelled"), std::string::npos);
}

TEST(Samplers, GuidanceRescaleKeepsCondStd) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ImageRng noise(SeedParams{{3, 4}});
  const Tensor u = noise.next(ctx, Shape{2, 4, 3, 3});
  const Tensor c = ops::affine(ctx, noise.next(ctx, Shape{2, 4, 3, 3}), 2.0f, 0.1f);
  const Tensor g = cfg(ctx, u, c, 7.5f);
  // phi = 1: the result has cond's per-item std; phi = 0: unchanged
  const Tensor r = rescale_cfg(ctx, g, c, 1.0f);
  auto stdv = [](const Tensor& t, int b) {
    auto v = t.select(0, b).to_vector<float>();
    double m = 0, s = 0;
    for (float f : v) m += f;
    m /= v.size();
    for (float f : v) s += (f - m) * (f - m);
    return std::sqrt(s / (v.size() - 1));
  };
  for (int b = 0; b < 2; ++b) EXPECT_NEAR(stdv(r, b), stdv(c, b), 1e-5);
  EXPECT_EQ(testing::max_abs_diff(rescale_cfg(ctx, g, c, 0.0f), g), 0.0f);
}

}  // namespace
}  // namespace easel::sampling
