// What a diffusion network predicts: the noise (eps), the velocity v = alpha * eps - sigma * x0
// (SD 2.x 768-v), or the flow (noise - x0) of rectified-flow models (SD 3.x). A property of the
// checkpoint, so it lives with the models; sampling/model_sampling.h turns it into the
// arithmetic samplers need.
#pragma once

namespace easel {

enum class Prediction { Eps, V, Flow };

}  // namespace easel
