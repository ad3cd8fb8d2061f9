// Host memory for activations. A diffusion step allocates the same sizes over and over, so freed
// blocks are cached by size class and handed out again instead of going back to the OS.
#pragma once

#include <cstddef>
#include <memory>

#include "core/storage.h"

namespace easel {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual std::shared_ptr<Storage> allocate(size_t bytes) = 0;
};

struct AllocatorStats {
  size_t in_use = 0;       // bytes held by live tensors
  size_t cached = 0;       // bytes kept for reuse
  size_t peak_in_use = 0;  // high-water mark of in_use
};

class HostAllocator final : public Allocator {
 public:
  // Blocks freed beyond `max_cached` bytes are returned to the OS.
  explicit HostAllocator(size_t max_cached = size_t(2) << 30);
  ~HostAllocator() override;

  // 64-byte aligned, uninitialised. Throws std::bad_alloc when memory runs out.
  std::shared_ptr<Storage> allocate(size_t bytes) override;
  AllocatorStats stats() const;
  void release_cached();  // frees every cached block

  struct Pool;

 private:
  std::shared_ptr<Pool> pool_;  // shared with live blocks so they can outlive the allocator
};

}  // namespace easel
