// The Context travels with every call into the engine: which backend runs ops, the thread pool,
// the activation allocator, the cancellation flag, and where progress and traced activations go.
// There is no global state: two contexts can run two models side by side.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>

#include "core/allocator.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace easel {

class Backend;

struct Progress {
  std::string_view stage;  // "decode", "step", ...
  int64_t done = 0;
  int64_t total = 0;
};

class Context {
 public:
  Context(Backend& backend, ThreadPool& pool, Allocator& allocator)
      : backend_(&backend), pool_(&pool), allocator_(&allocator) {}

  Backend& backend() const { return *backend_; }
  ThreadPool& pool() const { return *pool_; }
  Allocator& allocator() const { return *allocator_; }
  int threads() const { return pool_->size(); }

  Tensor empty(const Shape& shape, DType dtype = DType::F32) const { return Tensor::empty(*allocator_, shape, dtype); }

  // Long work calls progress() between units and stops early (with an error) once cancelled().
  std::function<void(const Progress&)> on_progress;
  const std::atomic<bool>* cancel_flag = nullptr;
  bool cancelled() const { return cancel_flag && cancel_flag->load(std::memory_order_relaxed); }

  void progress(std::string_view stage, int64_t done, int64_t total) const {
    if (on_progress) on_progress(Progress{stage, done, total});
  }

  // Models name their intermediates (`ctx.trace("decoder.3", h)`) so that a test or a debugging
  // session can compare them with the reference activation by activation. Free when unset.
  std::function<void(std::string_view name, const Tensor&)> on_trace;
  void trace(std::string_view name, const Tensor& t) const {
    if (on_trace) on_trace(name, t);
  }

 private:
  Backend* backend_;
  ThreadPool* pool_;
  Allocator* allocator_;
};

}  // namespace easel
