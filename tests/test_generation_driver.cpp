// The generation driver is neutral to the model family: a made-up rectified-flow family (16-channel
// latents with a scale and a shift, a pooled text vector, flow prediction on a sigma = t schedule,
// as SD 3.x has them) runs through the same A1111 loop as SD 1.x / 2.x, and the model-sampling
// arithmetic (ComfyUI's EPS / V_PREDICTION / CONST) gives the textbook values.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "backends/runtime.h"
#include "ops/ops.h"
#include "pipelines/generation_driver.h"
#include "sampling/model_sampling.h"
#include "sampling/samplers.h"

namespace easel {
namespace {

using sampling::ModelSampling;

std::vector<float> values(Context& ctx, const Tensor& t) { return ops::contiguous(ctx, t).to_vector<float>(); }

// Rectified flow's noise levels: sigma = t / 1000 in (0, 1], evenly spaced steps.
class FlowSchedule : public sampling::NoiseSchedule {
 public:
  float sigma_min() const override { return 0.001f; }
  float sigma_max() const override { return 1.0f; }
  float sigma_to_t(float sigma) const override { return sigma * 1000.0f; }
  float t_to_sigma(float t) const override { return t / 1000.0f; }
  std::vector<float> default_sigmas(int n) const override {
    std::vector<float> s = sampling::linspace_f32(1.0f, 1.0f / float(n), n);
    s.push_back(0.0f);
    return s;
  }
};

// What a flow family's denoiser is: the model sampling of Prediction::Flow over its schedule, and
// no DDPM timesteps.
class FlowDenoiser : public sampling::Denoiser {
 public:
  explicit FlowDenoiser(sampling::ModelFn model) : model_(std::move(model)) {}
  Tensor denoise(Context& ctx, const Tensor& x, float sigma) const override {
    const Tensor out = model_(ctx, ops::affine(ctx, x, sampling_.input_scale(sigma), 0.0f), schedule_.sigma_to_t(sigma));
    return sampling_.denoised(ctx, x, out, sigma);
  }
  const sampling::NoiseSchedule& noise_schedule() const override { return schedule_; }
  ModelSampling model_sampling() const override { return sampling_; }

 private:
  FlowSchedule schedule_;
  ModelSampling sampling_{Prediction::Flow};
  sampling::ModelFn model_;
};

class FakeFlowFamily : public DiffusionFamily {
 public:
  FakeFlowFamily() {
    format_.channels = 16;
    format_.scale_factor = 1.5305f;
    format_.shift_factor = 0.0609f;
    identity_.model_name = "fake-flow";
  }
  const ModelIdentity& identity() const override { return identity_; }
  const LatentFormat& latent_format() const override { return format_; }
  Result<Conditioning> condition(Context& ctx, const std::string& prompt, int batch,
                                 const GenerationParams&) const override {
    const float v = prompt.empty() ? 0.0f : 1.0f;
    return Conditioning{ops::full(ctx, Shape{batch, 3, 8}, v), ops::full(ctx, Shape{batch, 8}, v + 2.0f), {}};
  }
  Tensor predict(Context& ctx, const Tensor& x_in, const Tensor& t, const Conditioning& c) const override {
    // Each part of the conditioning arrives batched like the latent (cond and uncond together).
    EXPECT_EQ(c.context.size(0), x_in.size(0));
    EXPECT_TRUE(c.pooled.defined());
    if (c.pooled.defined()) {
      EXPECT_EQ(c.pooled.size(0), x_in.size(0));
    }
    EXPECT_EQ(t.size(0), x_in.size(0));
    EXPECT_EQ(x_in.size(1), 16);
    ++calls[x_in.size(0)];
    return ops::affine(ctx, x_in, 0.5f, 0.0f);
  }
  std::unique_ptr<sampling::Denoiser> denoiser(sampling::ModelFn model) const override {
    return std::make_unique<FlowDenoiser>(std::move(model));
  }
  bool can_encode() const override { return true; }
  Tensor encode(Context& ctx, const Tensor& pixels) const override {
    return format_.to_model(ctx, ops::full(ctx, Shape{pixels.size(0), 16, pixels.size(2) / 8, pixels.size(3) / 8}, 0.25f));
  }
  Tensor decode(Context& ctx, const Tensor& latents) const override {
    EXPECT_EQ(latents.size(1), 16);
    return ops::zeros(ctx, Shape{latents.size(0), 3, latents.size(2) * 8, latents.size(3) * 8});
  }

  mutable std::map<int64_t, int> calls;  // network calls by batch size

 private:
  LatentFormat format_;
  ModelIdentity identity_;
};

GenerationParams small_request() {
  GenerationParams p;
  p.prompt = "a lighthouse";
  p.width = 48;
  p.height = 32;
  p.steps = 4;
  p.seed = 3;
  return p;
}

TEST(GenerationDriver, RunsAFlowFamilyWithPooledConditioning) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const FakeFlowFamily family;
  GenerationParams p = small_request();
  p.batch_size = 2;
  p.n_iter = 2;
  std::map<std::string, std::vector<float>> traced;
  ctx.on_trace = [&](std::string_view name, const Tensor& t) { traced[std::string(name)] = values(ctx, t); };
  auto r = generate(ctx, family, p);
  ctx.on_trace = nullptr;
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->images.size(), 4u);
  for (const GeneratedImage& im : r->images) {
    EXPECT_EQ(im.image.width, 48);
    EXPECT_EQ(im.image.height, 32);
    EXPECT_NE(im.infotext.find("Model: fake-flow"), std::string::npos) << im.infotext;
  }
  // Cond and uncond as one batch of 4, 4 Euler steps per batch of 2, 2 batches.
  EXPECT_EQ(family.calls, (std::map<int64_t, int>{{4, 8}}));
  // txt2img starts from the noise at sigma_max = 1: x = 1 * noise.
  ASSERT_EQ(traced["noise"].size(), size_t(2 * 16 * 4 * 6));
  EXPECT_EQ(traced["x_start"], traced["noise"]);
}

TEST(GenerationDriver, Img2ImgNoiseEntersAsTheFamilysModelSamplingSays) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const FakeFlowFamily family;
  GenerationParams p = small_request();
  p.denoising_strength = 0.5;
  GenerationInputs inputs;
  inputs.init_image = Image{48, 32, 3, std::vector<uint8_t>(48 * 32 * 3, 100), {}};
  std::map<std::string, std::vector<float>> traced;
  ctx.on_trace = [&](std::string_view name, const Tensor& t) { traced[std::string(name)] = values(ctx, t); };
  auto r = generate(ctx, family, p, inputs);
  ctx.on_trace = nullptr;
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_NE(r->images[0].infotext.find("Denoising strength: 0.5"), std::string::npos) << r->images[0].infotext;
  // The init latents in the model's space: (0.25 - shift) * scale.
  const std::vector<float>& init = traced["init_latent"];
  ASSERT_FALSE(init.empty());
  EXPECT_NEAR(init[0], (0.25f - 0.0609f) * 1.5305f, 1e-6f);
  // Flow's noise scaling at the plan's first sigma: sigma * noise + (1 - sigma) * init.
  const FlowDenoiser probe({});
  const auto choice = sampling::parse_sampler_and_schedule(p.sampler_name, p.scheduler).value();
  const float sigma = sampling::plan_img2img(choice, probe, p.steps, float(p.denoising_strength)).sigmas.at(0);
  ASSERT_GT(sigma, 0.0f);
  ASSERT_LT(sigma, 1.0f);
  const std::vector<float>&noise = traced["noise"], &x = traced["x_start"];
  ASSERT_EQ(x.size(), init.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], sigma * noise[i] + (1.0f - sigma) * init[i], 1e-5f) << i;
}

TEST(GenerationDriver, TimestepSamplersRefuseAModelWithoutTimesteps) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const FakeFlowFamily family;
  for (const char* sampler : {"DDIM", "PLMS", "UniPC"}) {
    GenerationParams p = small_request();
    p.sampler_name = sampler;
    auto r = generate(ctx, family, p);
    ASSERT_FALSE(r.ok()) << sampler;
    EXPECT_NE(r.error().message().find(sampler), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("Euler"), std::string::npos) << r.error().message();
  }
}

TEST(ModelSampling, MatchesComfyUisFormulas) {
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  const Tensor x = ops::full(ctx, Shape{1, 2}, 3.0f), out = ops::full(ctx, Shape{1, 2}, 0.5f);
  const float sigma = 2.0f;
  const ModelSampling eps{Prediction::Eps}, v{Prediction::V}, flow{Prediction::Flow};
  EXPECT_FLOAT_EQ(eps.input_scale(sigma), 1.0f / std::sqrt(5.0f));
  EXPECT_FLOAT_EQ(v.input_scale(sigma), 1.0f / std::sqrt(5.0f));
  EXPECT_FLOAT_EQ(flow.input_scale(sigma), 1.0f);
  // EPS: x - out * sigma; V: x / (sigma^2 + 1) - out * sigma / sqrt(sigma^2 + 1); CONST: x - out * sigma.
  EXPECT_NEAR(values(ctx, eps.denoised(ctx, x, out, sigma))[0], 3.0f - 0.5f * 2.0f, 1e-6f);
  EXPECT_NEAR(values(ctx, v.denoised(ctx, x, out, sigma))[0], 3.0f / 5.0f - 0.5f * 2.0f / std::sqrt(5.0f), 1e-6f);
  EXPECT_NEAR(values(ctx, flow.denoised(ctx, x, out, sigma))[0], 3.0f - 0.5f * 2.0f, 1e-6f);
  // noise_scaling: eps / v add sigma * noise to the latent; flow interpolates between them.
  const Tensor noise = ops::full(ctx, Shape{1, 2}, -1.0f), latent = ops::full(ctx, Shape{1, 2}, 4.0f);
  EXPECT_NEAR(values(ctx, eps.noise_scaling(ctx, 0.25f, noise, latent))[1], 4.0f - 0.25f, 1e-6f);
  EXPECT_NEAR(values(ctx, v.noise_scaling(ctx, 0.25f, noise, latent))[1], 4.0f - 0.25f, 1e-6f);
  EXPECT_NEAR(values(ctx, flow.noise_scaling(ctx, 0.25f, noise, latent))[1], -0.25f + 0.75f * 4.0f, 1e-6f);
  EXPECT_NEAR(values(ctx, flow.noise_scaling(ctx, 0.25f, noise))[0], -0.25f, 1e-6f);
  EXPECT_THROW(flow.noise_scaling(ctx, 0.25f, noise, ops::full(ctx, Shape{2, 1}, 4.0f)), Exception);
}

}  // namespace
}  // namespace easel
