#include "backends/cpu/cpu_backend.h"

#include "backends/cpu/cpu_impl.h"

namespace easel {

CpuBackend::CpuBackend() : Backend(Device{DeviceKind::CPU, 0}), impl_(std::make_unique<Impl>()) {}
CpuBackend::~CpuBackend() = default;

// Host to host: ops::to_device and ops::to_host never get here for the CPU (the tensor is
// already where it is wanted), but a caller that asks for a copy gets a contiguous one.
Tensor CpuBackend::upload(Context& ctx, const Tensor& host) {
  Tensor out = ctx.empty(host.shape(), host.dtype());
  copy(ctx, host, out);
  return out;
}

Tensor CpuBackend::download(Context& ctx, const Tensor& x) { return upload(ctx, x); }

// The mapped view itself: weights are read where the checkpoint lies (the kernels convert f16 /
// bf16 in panels), so loading a model costs no copy and no memory beyond the page cache.
Tensor CpuBackend::adopt_weight(Context&, const Tensor& host) { return host; }

}  // namespace easel
