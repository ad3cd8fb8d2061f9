// Internal to src/sampling: the pieces the sampler files share.
#pragma once

#include <functional>
#include <span>

#include "ops/ops.h"
#include "sampling/samplers.h"
#include "sampling/tensor_arith.h"

namespace easel::sampling::detail {

// Thrown by Steps::done when the context is cancelled; sample() turns it into an Error.
struct Cancelled {};
// Thrown by Steps::done when the caller asks to stop early (A1111's interrupt or skip); sample()
// returns `latent`, the step's x0 estimate.
struct StoppedEarly {
  Tensor latent;
};

// Per-step bookkeeping: progress, the caller's callback, cancellation, stopping early.
struct Steps {
  Context& ctx;
  int total;
  const StepCallback& on_step;
  const std::function<bool()>& stop_early;
  void done(int i, const Tensor& x, const Tensor& denoised) const {
    ctx.progress("sample", i + 1, total);  // first, so a live preview of step i + 1 is seen at it
    if (on_step) on_step(StepInfo{i, total, x, denoised});
    if (ctx.cancelled()) throw Cancelled{};
    if (stop_early && stop_early()) throw StoppedEarly{denoised.defined() ? denoised : x};
  }
};

Tensor sample_ddim(Context& ctx, const Plan& plan, const TimestepModel& model, Tensor x, NoiseSource& noise, float eta,
                   const Steps& steps);
Tensor sample_plms(Context& ctx, const Plan& plan, const TimestepModel& model, Tensor x, const Steps& steps);
Tensor sample_unipc(Context& ctx, const Plan& plan, const TimestepModel& model, Tensor x, const Steps& steps);

}  // namespace easel::sampling::detail
