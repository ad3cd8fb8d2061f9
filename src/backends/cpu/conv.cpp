#include "backends/cpu/cpu_backend.h"

namespace easel {

void CpuBackend::conv2d(Context&, const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&, Tensor&) {
  throw Exception("not implemented yet");
}

}  // namespace easel
