// Samplers as A1111 1.10 names and runs them: the k-diffusion samplers, LCM, and the timestep
// samplers DDIM / PLMS / UniPC. Samplers know nothing about models: they call a Denoiser.
//
// Use:
//   auto choice = parse_sampler_and_schedule("DPM++ 2M", "Karras").value();
//   CompVisDenoiser model(DiscreteSchedule::scaled_linear(), Prediction::Eps, model_fn);
//   Plan plan = plan_txt2img(choice, model, steps);          // or plan_img2img(..., strength)
//   ImageRng noise(SeedParams{seeds});                        // A1111's per-image CPU generators (image_rng.h)
//   Tensor x = plan.start(ctx, noise.next(ctx));               // or plan.start(ctx, noise.next(ctx), init)
//   Tensor latent = sample(ctx, plan, model, x, noise, {}, on_step).value();
// A1111's SDE samplers take their noise from Brownian trees instead: SamplerOptions::interval_noise
// = a1111_noise_sampler(plan, seeds, image_shape) (brownian_tree.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string_view>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "core/tensor.h"
#include "sampling/denoiser.h"
#include "sampling/schedules.h"
#include "sampling/torch_rng.h"

namespace easel::sampling {

enum class SamplerKind {
  Dpmpp2M, DpmppSde, Dpmpp2MSde, Dpmpp2MSdeHeun, Dpmpp2SA, Dpmpp3MSde, EulerA, Euler, Lms, Heun, Dpm2, Dpm2A,
  Lcm, Ddim, Plms, UniPC
};

// One row of A1111's sampler tables.
struct SamplerInfo {
  SamplerKind kind;
  std::string_view name;                  // A1111's label: "DPM++ 2M", "Euler a", ...
  std::vector<std::string_view> aliases;  // "k_dpmpp_2m", ...
  ScheduleType automatic;                 // what "Automatic" means for it (Uniform: the model's own)
  bool discard_penultimate = false;       // sigma table made for steps + 1, its next-to-last dropped
  bool timesteps = false;                 // DDIM / PLMS / UniPC: walks integer timesteps, DDPM-space x
  float default_eta = 0.0f;               // eta if SamplerOptions leaves it unset (0: not used)
  bool brownian_noise = false;            // A1111 gives it a Brownian-tree noise sampler (brownian_tree.h)
};
const std::vector<SamplerInfo>& all_samplers();
const SamplerInfo& sampler_info(SamplerKind kind);
std::string_view sampler_name(SamplerKind kind);

// Exact A1111 label or alias, case-insensitive. Unknown names fail listing the valid ones.
Result<SamplerKind> parse_sampler(std::string_view name);

struct SamplerChoice {
  SamplerKind sampler;
  ScheduleType schedule = ScheduleType::Automatic;
};
// A1111's get_sampler_and_scheduler: also takes legacy combined names ("DPM++ 2M Karras",
// "Euler a SGM Uniform"), whose suffix overrides `schedule`; a schedule equal to the sampler's
// automatic one becomes Automatic. An empty schedule means Automatic.
Result<SamplerChoice> parse_sampler_and_schedule(std::string_view sampler, std::string_view schedule = "");

// --- the plan: which noise levels, and where sampling starts -------------------------------------
struct Plan {
  SamplerKind sampler = SamplerKind::Euler;
  // k-diffusion samplers and LCM: descending sigmas ending in 0 (one step per pair).
  std::vector<float> sigmas;
  // DDIM / PLMS / UniPC: A1111's ascending timesteps (steps = size - 1 for DDIM/PLMS, size for UniPC).
  std::vector<int> timesteps;
  float unipc_t_start = 1.0f;  // UniPC's continuous start time (img2img starts lower)
  // img2img: the latent is noised to this level before sampling (-1 for txt2img).
  float img2img_sigma = -1.0f;
  int img2img_timestep = -1;
  const DiscreteSchedule* training = nullptr;  // alphas_cumprod for the timestep samplers' start
  ModelSampling model_sampling;                // how noise enters the latent for the k samplers' start
  // k samplers: the positive range of the whole planned table, before an img2img cut (A1111 spans
  // its SDE samplers' Brownian tree over it).
  float table_sigma_min = 0.0f, table_sigma_max = 0.0f;

  int steps() const;  // the number of sampler steps (StepInfo::steps)
  // The x the sampler starts from: noise * sigma_max (k samplers) or noise (timestep samplers) for
  // txt2img; with init, A1111's img2img noising: the model's noise scaling at the plan's first sigma
  // (eps / v: init + noise * sigma; flow: sigma * noise + (1 - sigma) * init), or the DDPM
  // q(x_t | x_0) of the timestep samplers.
  Tensor start(Context& ctx, const Tensor& noise, const Tensor& init = {}) const;
};
// KDiffusionSampler.get_sigmas / CompVisSampler.get_timesteps for txt2img. A timestep sampler
// (DDIM, PLMS, UniPC) on a model without Denoiser::timesteps() throws an Exception naming it.
Plan plan_txt2img(SamplerChoice choice, const Denoiser& model, int steps);
// sample_img2img: t_enc = int(min(strength, 0.999) * steps) steps of the txt2img table's tail
// (A1111 with img2img_fix_steps off).
Plan plan_img2img(SamplerChoice choice, const Denoiser& model, int steps, float strength);

// --- noise ---------------------------------------------------------------------------------------
class NoiseSource {
 public:
  virtual ~NoiseSource() = default;
  // Standard normal noise of `shape` ([batch, ...]).
  virtual Tensor next(Context& ctx, const Shape& shape) = 0;
};

// Noise for one step of an SDE sampler, asked for where k-diffusion calls
// noise_sampler(sigma, sigma_next): A1111 answers from Brownian trees (brownian_tree.h). The
// result has the shape of the x being sampled.
class IntervalNoise {
 public:
  virtual ~IntervalNoise() = default;
  virtual Tensor between(Context& ctx, float sigma, float sigma_next) = 0;
};


// --- sampling ------------------------------------------------------------------------------------
struct SamplerOptions {
  float eta = std::numeric_limits<float>::quiet_NaN();  // NaN: the sampler's default (1 ancestral/SDE, 0 DDIM)
  float s_noise = 1.0f;                                 // ancestral / SDE noise multiplier
  float s_churn = 0.0f, s_tmin = 0.0f, s_tmax = std::numeric_limits<float>::infinity();  // Euler/Heun/DPM2
  // The noise sampler of the samplers with SamplerInfo::brownian_noise. Null: they draw from the
  // NoiseSource like the others (k-diffusion's default_noise_sampler, the samplers set's order).
  IntervalNoise* interval_noise = nullptr;
  // Asked after every step: true ends sampling there, and sample() returns that step's x0 estimate
  // (how A1111's interrupt and skip end a batch early; the policy is the caller's).
  std::function<bool()> stop_early;
};

struct StepInfo {
  int step;                // 0-based
  int steps;               // Plan::steps()
  const Tensor& x;         // x after this step (the sampler's space: k-diffusion x, or DDPM x_t)
  const Tensor& denoised;  // this step's x0 estimate, for previews (undefined on UniPC's last step)
};
using StepCallback = std::function<void(const StepInfo&)>;

// Runs the plan from x. Reports progress ("sample", step, steps) on ctx and stops with an error
// when ctx is cancelled; when options.stop_early says so, it returns the last step's x0 estimate.
Result<Tensor> sample(Context& ctx, const Plan& plan, const Denoiser& model, Tensor x, NoiseSource& noise,
                      const SamplerOptions& options = {}, const StepCallback& on_step = {});

}  // namespace easel::sampling
