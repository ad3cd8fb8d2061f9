#include "backends/cpu/cpu_backend.h"

namespace easel {

void CpuBackend::group_norm(Context&, const Tensor&, const Tensor&, const Tensor&, int, float, Tensor&) {
  throw Exception("not implemented yet");
}

void CpuBackend::layer_norm(Context&, const Tensor&, const Tensor&, const Tensor&, float, Tensor&) {
  throw Exception("not implemented yet");
}

void CpuBackend::rms_norm(Context&, const Tensor&, const Tensor&, float, Tensor&) {
  throw Exception("not implemented yet");
}

void CpuBackend::softmax(Context&, const Tensor&, Tensor&) {
  throw Exception("not implemented yet");
}

}  // namespace easel
