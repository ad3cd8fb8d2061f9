#include "backends/cpu/cpu_backend.h"

#include "backends/cpu/cpu_impl.h"

namespace easel {

CpuBackend::CpuBackend() : impl_(std::make_unique<Impl>()) {}
CpuBackend::~CpuBackend() = default;

}  // namespace easel
