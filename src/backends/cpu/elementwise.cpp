#include "backends/cpu/cpu_backend.h"

namespace easel {

void CpuBackend::unary(Context&, UnaryOp, const Tensor&, float, float, Tensor&) {
  throw Exception("not implemented yet");
}

void CpuBackend::binary(Context&, BinaryOp, const Tensor&, const Tensor&, Tensor&) {
  throw Exception("not implemented yet");
}

}  // namespace easel
