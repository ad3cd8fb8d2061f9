// What samplers ask of a model, and the wrappers that turn a discrete-time network (eps or v
// prediction) into it: k-diffusion's CompVisDenoiser / CompVisVDenoiser, A1111's timestep
// denoisers (DDIM, PLMS, UniPC) and A1111's LCM denoiser. Classifier-free guidance lives in the
// ModelFn the pipeline supplies (see cfg() / rescale_cfg() in guidance.h).
#pragma once

#include <functional>
#include <memory>

#include "core/context.h"
#include "core/tensor.h"
#include "models/prediction.h"
#include "sampling/schedules.h"

namespace easel::sampling {

// The network as samplers need it: its output (eps or v, already guided) for the model input
// x_in (x scaled by c_in, i.e. the DDPM-space latent) at timestep t (float: samplers may ask
// between integer timesteps; LCM and DDIM/PLMS always ask integers).
using ModelFn = std::function<Tensor(Context& ctx, const Tensor& x_in, float t)>;

// A sampler's view of the model.
class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // k-diffusion D(x, sigma): the denoised estimate of x = x0 + sigma * eps.
  virtual Tensor denoise(Context& ctx, const Tensor& x, float sigma) const = 0;
  // A1111's timestep samplers: eps for the DDPM latent x_t at timestep t.
  virtual Tensor eps(Context& ctx, const Tensor& x_t, float t) const = 0;
  // The noise levels samplers and schedules walk (sigma range, sigma <-> t).
  virtual const NoiseSchedule& noise_schedule() const = 0;
  // The training schedule (alphas_cumprod) the timestep samplers use.
  virtual const DiscreteSchedule& training_schedule() const = 0;
};

// k-diffusion CompVisDenoiser (eps) / CompVisVDenoiser (v) and, for eps(),
// A1111's CompVisTimestepsDenoiser / CompVisTimestepsVDenoiser.
class CompVisDenoiser : public Denoiser {
 public:
  CompVisDenoiser(DiscreteSchedule schedule, Prediction prediction, ModelFn model)
      : schedule_(std::move(schedule)), prediction_(prediction), model_(std::move(model)) {}

  Tensor denoise(Context& ctx, const Tensor& x, float sigma) const override;
  Tensor eps(Context& ctx, const Tensor& x_t, float t) const override;
  const NoiseSchedule& noise_schedule() const override { return schedule_; }
  const DiscreteSchedule& training_schedule() const override { return schedule_; }
  Prediction prediction() const { return prediction_; }

 private:
  DiscreteSchedule schedule_;
  Prediction prediction_;
  ModelFn model_;
};

// A1111's LCMCompVisDenoiser (sd_samplers_lcm.py): an eps model on the 50 LCM timesteps, with the
// LCM boundary-condition scalings (sigma_data 0.5, timestep x 10) applied to the denoised output.
class LcmDenoiser : public Denoiser {
 public:
  LcmDenoiser(DiscreteSchedule training, ModelFn model)
      : training_(std::move(training)), lcm_(training_), model_(std::move(model)) {}

  Tensor denoise(Context& ctx, const Tensor& x, float sigma) const override;
  Tensor eps(Context& ctx, const Tensor& x_t, float t) const override;
  const NoiseSchedule& noise_schedule() const override { return lcm_; }
  const DiscreteSchedule& training_schedule() const override { return training_; }

 private:
  DiscreteSchedule training_;
  LcmSchedule lcm_;
  ModelFn model_;
};

}  // namespace easel::sampling
