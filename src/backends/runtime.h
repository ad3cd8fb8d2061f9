// The Runtime owns what the process has per device: for each, its backend, the thread pool its ops
// run on and the allocator of its activations. A program makes exactly one (`easel serve`, each
// CLI command; a test makes its own) and hands out contexts; model code only ever sees a Context.
//
//   auto runtime = Runtime::create({.threads = 8}).value();
//   Context ctx = runtime->context();  // the CPU; runtime->context(device) for another
//
// Every context of one device shares that device's pool and allocator, so two runners (image
// generation, chat) in one process do not each make their own. A context is a value: a job makes
// its own, and the callbacks it sets on it die with the job's frame.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/context.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace easel {

class Backend;

// What one device owns. Made by Runtime::create; contexts made for the device point into it, so
// it must outlive them (it lives as long as the Runtime).
class DeviceRuntime {
 public:
  DeviceRuntime(std::unique_ptr<Backend> backend, std::unique_ptr<Allocator> allocator, int threads);
  ~DeviceRuntime();
  DeviceRuntime(const DeviceRuntime&) = delete;
  DeviceRuntime& operator=(const DeviceRuntime&) = delete;

  Device device() const;
  Backend& backend() const { return *backend_; }
  ThreadPool& pool() { return pool_; }
  Allocator& allocator() const { return *allocator_; }
  // A new context on this device, with no callbacks or flags set.
  Context context() { return Context(*backend_, pool_, *allocator_); }

 private:
  std::unique_ptr<Backend> backend_;
  ThreadPool pool_;
  std::unique_ptr<Allocator> allocator_;
};

struct RuntimeOptions {
  // Devices by name: "cpu" (the host). "cuda" / "cuda:N" are reserved for the CUDA backend.
  std::vector<std::string> devices = {"cpu"};
  int threads = 0;  // threads of each device's pool; 0: all hardware threads
};

class Runtime {
 public:
  // Fails with a message naming the device when one is unknown, unsupported by this build, or
  // listed twice.
  static Result<std::unique_ptr<Runtime>> create(const RuntimeOptions& options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The devices, in the order the options listed them.
  std::vector<Device> devices() const;
  bool has(Device device) const { return find(device) != nullptr; }
  // The device's backend, pool and allocator; throws naming the devices there are when absent.
  DeviceRuntime& device(Device device = Device{}) const;
  // A new context for one job on `device` (the CPU by default).
  Context context(Device device = Device{}) const { return this->device(device).context(); }

 private:
  Runtime() = default;
  DeviceRuntime* find(Device device) const;
  std::vector<std::unique_ptr<DeviceRuntime>> devices_;
};

// "cpu" -> Device{CPU, 0}; "cuda" -> cuda:0; "cuda:1" -> cuda:1. Anything else is an error.
Result<Device> parse_device(std::string_view name);

}  // namespace easel
