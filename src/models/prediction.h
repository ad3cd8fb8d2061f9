// What a diffusion network predicts: the noise (eps), the velocity v = alpha * eps - sigma * x0
// (SD 2.x 768-v), or the flow x1 - x0 of rectified-flow models. A property of the checkpoint,
// so it lives with the models; the samplers' denoisers read it.
#pragma once

namespace easel {

enum class Prediction { Eps, V };

}  // namespace easel
