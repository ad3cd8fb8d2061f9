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
#include "sampling/model_sampling.h"
#include "sampling/schedules.h"

namespace easel::sampling {

// The network as samplers need it: its output (eps or v, already guided) for the model input
// x_in (x scaled by c_in, i.e. the DDPM-space latent) at timestep t (float: samplers may ask
// between integer timesteps; LCM and DDIM/PLMS always ask integers).
using ModelFn = std::function<Tensor(Context& ctx, const Tensor& x_in, float t)>;

// A1111's timestep samplers (DDIM, PLMS, UniPC) walk the integer timesteps of a DDPM-trained
// model: they need its training schedule and its eps for the DDPM latent x_t. Only such models
// have this view (Denoiser::timesteps()).
class TimestepModel {
 public:
  virtual ~TimestepModel() = default;
  // eps for the DDPM latent x_t at timestep t.
  virtual Tensor eps(Context& ctx, const Tensor& x_t, float t) const = 0;
  // The training schedule (alphas_cumprod) the timesteps index.
  virtual const DiscreteSchedule& training_schedule() const = 0;
};

// A sampler's view of the model.
class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // k-diffusion D(x, sigma): the denoised estimate of x at noise level sigma.
  virtual Tensor denoise(Context& ctx, const Tensor& x, float sigma) const = 0;
  // The noise levels samplers and schedules walk (sigma range, sigma <-> t).
  virtual const NoiseSchedule& noise_schedule() const = 0;
  // The prediction type's arithmetic, for where sampling starts (Plan::start).
  virtual ModelSampling model_sampling() const = 0;
  // The view the timestep samplers need, or null for a model that has none (flow matching):
  // those samplers then refuse it.
  virtual const TimestepModel* timesteps() const { return nullptr; }
};

// k-diffusion CompVisDenoiser (eps) / CompVisVDenoiser (v) and, for eps(),
// A1111's CompVisTimestepsDenoiser / CompVisTimestepsVDenoiser.
class CompVisDenoiser : public Denoiser, public TimestepModel {
 public:
  CompVisDenoiser(DiscreteSchedule schedule, Prediction prediction, ModelFn model)
      : schedule_(std::move(schedule)), sampling_{prediction}, model_(std::move(model)) {}

  Tensor denoise(Context& ctx, const Tensor& x, float sigma) const override;
  const NoiseSchedule& noise_schedule() const override { return schedule_; }
  ModelSampling model_sampling() const override { return sampling_; }
  const TimestepModel* timesteps() const override { return sampling_.prediction == Prediction::Flow ? nullptr : this; }
  Tensor eps(Context& ctx, const Tensor& x_t, float t) const override;
  const DiscreteSchedule& training_schedule() const override { return schedule_; }
  Prediction prediction() const { return sampling_.prediction; }

 private:
  DiscreteSchedule schedule_;
  ModelSampling sampling_;
  ModelFn model_;
};

// A1111's LCMCompVisDenoiser (sd_samplers_lcm.py): an eps model on the 50 LCM timesteps, with the
// LCM boundary-condition scalings (sigma_data 0.5, timestep x 10) applied to the denoised output.
class LcmDenoiser : public Denoiser, public TimestepModel {
 public:
  LcmDenoiser(DiscreteSchedule training, ModelFn model)
      : training_(std::move(training)), lcm_(training_), model_(std::move(model)) {}

  Tensor denoise(Context& ctx, const Tensor& x, float sigma) const override;
  const NoiseSchedule& noise_schedule() const override { return lcm_; }
  ModelSampling model_sampling() const override { return {Prediction::Eps}; }
  const TimestepModel* timesteps() const override { return this; }
  Tensor eps(Context& ctx, const Tensor& x_t, float t) const override;
  const DiscreteSchedule& training_schedule() const override { return training_; }

 private:
  DiscreteSchedule training_;
  LcmSchedule lcm_;
  ModelFn model_;
};

}  // namespace easel::sampling
