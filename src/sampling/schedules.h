// Noise schedules of discrete-time (DDPM) diffusion models and the sigma tables samplers walk,
// as k-diffusion 0.1.1 and A1111 1.10 compute them (float32 where they use float32).
//
// Conventions (k-diffusion): x = x0 + sigma * eps, sigma = sqrt((1 - alphas_cumprod) / alphas_cumprod);
// a sigma table is descending and ends with 0.
#pragma once

#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel::sampling {

// What a schedule needs from a denoiser: its noise range and the sigma <-> timestep maps.
class NoiseSchedule {
 public:
  virtual ~NoiseSchedule() = default;
  virtual float sigma_min() const = 0;
  virtual float sigma_max() const = 0;
  virtual float sigma_to_t(float sigma) const = 0;
  virtual float t_to_sigma(float t) const = 0;
  // The denoiser's own spacing for n steps (k-diffusion get_sigmas(n); A1111 "Uniform"), ending in 0.
  virtual std::vector<float> default_sigmas(int n) const = 0;
};

// k-diffusion DiscreteSchedule over a training schedule (ldm's alphas_cumprod). sigma_to_t
// interpolates linearly in log sigma between the two neighbouring timesteps (not quantised).
class DiscreteSchedule : public NoiseSchedule {
 public:
  // ldm "linear" betas (SD 1.x / 2.x / XL): linspace(sqrt(beta_start), sqrt(beta_end), n)^2 in double.
  static DiscreteSchedule scaled_linear(int n = 1000, double beta_start = 0.00085, double beta_end = 0.012);
  // alphas_cumprod in double, as ldm computes them before storing float32 copies.
  static DiscreteSchedule from_alphas_cumprod(std::vector<double> alphas_cumprod);

  int size() const { return static_cast<int>(sigmas_.size()); }
  const std::vector<double>& alphas_cumprod64() const { return ac64_; }
  const std::vector<float>& alphas_cumprod() const { return ac_; }  // float32 (the model's buffer)
  const std::vector<float>& sigmas() const { return sigmas_; }      // ascending with t
  const std::vector<float>& log_sigmas() const { return log_sigmas_; }

  float sigma_min() const override { return sigmas_.front(); }
  float sigma_max() const override { return sigmas_.back(); }
  float sigma_to_t(float sigma) const override;
  float t_to_sigma(float t) const override;
  std::vector<float> default_sigmas(int n) const override;

 private:
  std::vector<double> ac64_;
  std::vector<float> ac_, sigmas_, log_sigmas_;
};

// A1111's LCMCompVisDenoiser schedule: the 50 "valid" timesteps 19, 39, ..., 999 of the training
// schedule; sigma_to_t is quantised to them, t_to_sigma interpolates between them.
class LcmSchedule : public NoiseSchedule {
 public:
  explicit LcmSchedule(const DiscreteSchedule& training, int original_steps = 50);
  const DiscreteSchedule& valid() const { return valid_; }
  int skip() const { return skip_; }

  float sigma_min() const override { return valid_.sigma_min(); }
  float sigma_max() const override { return valid_.sigma_max(); }
  float sigma_to_t(float sigma) const override;  // an integer timestep
  float t_to_sigma(float t) const override;
  std::vector<float> default_sigmas(int n) const override;

 private:
  DiscreteSchedule valid_;
  int skip_;
};

// A1111's "Schedule type" (sd_schedulers.py).
enum class ScheduleType { Automatic, Uniform, Karras, Exponential, SgmUniform };

std::string_view schedule_label(ScheduleType type);  // "Automatic", "Karras", "SGM Uniform", ...
// Accepts the labels, A1111's internal names ("karras", "sgm_uniform") and alias "SGMUniform".
Result<ScheduleType> parse_schedule(std::string_view name);
const std::vector<ScheduleType>& all_schedules();

// The sigma table for `steps` steps (steps + 1 values, the last 0). Automatic means the
// denoiser's default spacing here; A1111's per-sampler choice is made by plan_sigmas (samplers.h).
std::vector<float> sigmas_for(ScheduleType type, const NoiseSchedule& schedule, int steps);

// k-diffusion get_sigmas_karras / get_sigmas_exponential (float32, with the trailing 0).
std::vector<float> karras_sigmas(int n, double sigma_min, double sigma_max, double rho = 7.0);
std::vector<float> exponential_sigmas(int n, double sigma_min, double sigma_max);
// torch.linspace for float32 (same arithmetic, so tables match torch's).
std::vector<float> linspace_f32(float start, float end, int n);

}  // namespace easel::sampling
