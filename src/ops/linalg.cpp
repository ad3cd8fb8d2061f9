#include "ops/ops.h"

namespace easel::ops {

Tensor linear(Context&, const Tensor&, const Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor matmul(Context&, const Tensor&, const Tensor&, float) {
  throw Exception("not implemented yet");
}

Tensor conv2d(Context&, const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&) {
  throw Exception("not implemented yet");
}

Tensor attention(Context&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionParams&) {
  throw Exception("not implemented yet");
}

}  // namespace easel::ops
