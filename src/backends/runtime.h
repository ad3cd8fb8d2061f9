// Owns what a Context points to: the backend, the thread pool and the activation allocator.
// The CLI, the server and tests create one; model code only ever sees the Context.
#pragma once

#include <memory>
#include <string>

#include "core/allocator.h"
#include "core/context.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace easel {

struct RuntimeOptions {
  std::string device = "cpu";
  int threads = 0;  // 0: all hardware threads
};

class Runtime {
 public:
  static Result<std::unique_ptr<Runtime>> create(const RuntimeOptions& options = {});
  ~Runtime();

  Context& context() { return context_; }
  HostAllocator& allocator() { return allocator_; }

 private:
  Runtime(std::unique_ptr<Backend> backend, int threads);
  std::unique_ptr<Backend> backend_;
  ThreadPool pool_;
  HostAllocator allocator_;
  Context context_;
};

}  // namespace easel
