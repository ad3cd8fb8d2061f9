#include "backends/cpu/cpu_backend.h"

namespace easel {

void CpuBackend::linear(Context&, const Tensor&, const Tensor&, const Tensor&, Tensor&) {
  throw Exception("not implemented yet");
}

void CpuBackend::matmul(Context&, const Tensor&, const Tensor&, float, Tensor&) {
  throw Exception("not implemented yet");
}

}  // namespace easel
