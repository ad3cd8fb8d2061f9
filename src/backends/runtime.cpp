#include "backends/runtime.h"

#include <charconv>

#include "backends/cpu/cpu_backend.h"

namespace easel {

DeviceRuntime::DeviceRuntime(std::unique_ptr<Backend> backend, std::unique_ptr<Allocator> allocator, int threads)
    : backend_(std::move(backend)), pool_(threads), allocator_(std::move(allocator)) {}

DeviceRuntime::~DeviceRuntime() = default;

Device DeviceRuntime::device() const { return backend_->device(); }

Result<Device> parse_device(std::string_view name) {
  if (name == "cpu") return Device{DeviceKind::CPU, 0};
  if (name.substr(0, 4) == "cuda") {
    std::string_view rest = name.substr(4);
    if (rest.empty()) return Device{DeviceKind::CUDA, 0};
    int index = -1;
    if (rest[0] == ':') {
      rest.remove_prefix(1);
      const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
      if (ec == std::errc() && end == rest.data() + rest.size() && !rest.empty() && index >= 0)
        return Device{DeviceKind::CUDA, index};
    }
  }
  return Error(cat("unknown device '", name, "': name 'cpu', 'cuda' or 'cuda:N'"));
}

Result<std::unique_ptr<Runtime>> Runtime::create(const RuntimeOptions& options) {
  if (options.threads < 0) return Error(cat("threads must be >= 0, got ", options.threads));
  if (options.devices.empty()) return Error("no devices: name at least one, e.g. 'cpu'");
  std::unique_ptr<Runtime> runtime(new Runtime());
  for (const std::string& name : options.devices) {
    EASEL_TRY(Device device, parse_device(name));
    if (runtime->has(device)) return Error(cat("device '", device.str(), "' is listed twice"));
    if (!device.is_cpu())
      return Error(
          cat("device '", device.str(), "' needs the CUDA backend, which this build does not have; use 'cpu'"));
    runtime->devices_.push_back(std::make_unique<DeviceRuntime>(std::make_unique<CpuBackend>(),
                                                                std::make_unique<HostAllocator>(), options.threads));
  }
  return runtime;
}

Runtime::~Runtime() = default;

std::vector<Device> Runtime::devices() const {
  std::vector<Device> out;
  for (const auto& d : devices_) out.push_back(d->device());
  return out;
}

DeviceRuntime* Runtime::find(Device device) const {
  for (const auto& d : devices_)
    if (d->device() == device) return d.get();
  return nullptr;
}

DeviceRuntime& Runtime::device(Device device) const {
  if (DeviceRuntime* d = find(device)) return *d;
  std::string have;
  for (const Device& d : devices()) have += cat(have.empty() ? "" : ", ", d.str());
  throw Exception(cat("this runtime has no device ", device.str(), " (it has ", have, ")"));
}

}  // namespace easel
