// State private to the CPU kernels, shared by the files of the CPU backend.
#pragma once

#include "backends/cpu/cpu_backend.h"

namespace easel {

struct CpuBackend::Impl {};

}  // namespace easel
