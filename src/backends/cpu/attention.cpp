#include "backends/cpu/cpu_backend.h"

namespace easel {

void CpuBackend::attention(Context&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionParams&, Tensor&) {
  throw Exception("not implemented yet");
}

}  // namespace easel
