#include "backends/cpu/cpu_backend.h"

namespace easel {

void CpuBackend::upsample_nearest2d(Context&, const Tensor&, Tensor&) {
  throw Exception("not implemented yet");
}

void CpuBackend::copy(Context&, const Tensor&, Tensor&) {
  throw Exception("not implemented yet");
}

void CpuBackend::fill(Context&, Tensor&, double) {
  throw Exception("not implemented yet");
}

}  // namespace easel
