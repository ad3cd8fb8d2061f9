#include "backends/runtime.h"

#include "backends/cpu/cpu_backend.h"

namespace easel {

Runtime::Runtime(std::unique_ptr<Backend> backend, int threads)
    : backend_(std::move(backend)), pool_(threads), context_(*backend_, pool_, allocator_) {}

Runtime::~Runtime() = default;

Result<std::unique_ptr<Runtime>> Runtime::create(const RuntimeOptions& options) {
  if (options.device != "cpu")
    return Error(cat("unknown device '", options.device, "': this build supports 'cpu'"));
  if (options.threads < 0) return Error(cat("threads must be >= 0, got ", options.threads));
  return std::unique_ptr<Runtime>(new Runtime(std::make_unique<CpuBackend>(), options.threads));
}

}  // namespace easel
