#include "core/allocator.h"

#include <bit>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace easel {
namespace {

constexpr size_t kAlignment = 64;

// Size classes: exact multiples of 64 bytes up to 4 KiB, then 4 steps per power of two, so a
// block is at most 25% larger than asked and repeated sizes always land in the same class.
size_t size_class(size_t bytes) {
  if (bytes <= 4096) return std::max<size_t>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  const size_t top = std::bit_floor(bytes);
  const size_t step = top / 4;
  return (bytes + step - 1) / step * step;
}

}  // namespace

struct HostAllocator::Pool {
  std::mutex mutex;
  std::multimap<size_t, std::byte*> free_blocks;  // size class -> block
  size_t max_cached;
  AllocatorStats stats;

  void release(std::byte* data, size_t size) {
    std::lock_guard lock(mutex);
    stats.in_use -= size;
    if (stats.cached + size <= max_cached) {
      free_blocks.emplace(size, data);
      stats.cached += size;
    } else {
      std::free(data);
    }
  }

  void release_all_cached() {
    for (auto& [size, data] : free_blocks) std::free(data);
    free_blocks.clear();
    stats.cached = 0;
  }
};

namespace {

class HostBlock final : public Storage {
 public:
  HostBlock(std::shared_ptr<HostAllocator::Pool> pool, std::byte* data, size_t size)
      : Storage(data, size, Device{}, false), pool_(std::move(pool)) {}
  ~HostBlock() override { pool_->release(data(), size()); }

 private:
  std::shared_ptr<HostAllocator::Pool> pool_;
};

}  // namespace

HostAllocator::HostAllocator(size_t max_cached) : pool_(std::make_shared<Pool>()) {
  pool_->max_cached = max_cached;
}

HostAllocator::~HostAllocator() {
  std::lock_guard lock(pool_->mutex);
  pool_->max_cached = 0;
  pool_->release_all_cached();
}

std::shared_ptr<Storage> HostAllocator::allocate(size_t bytes) {
  const size_t size = size_class(bytes);
  std::byte* data = nullptr;
  {
    std::lock_guard lock(pool_->mutex);
    auto it = pool_->free_blocks.find(size);
    if (it != pool_->free_blocks.end()) {
      data = it->second;
      pool_->free_blocks.erase(it);
      pool_->stats.cached -= size;
    }
  }
  if (!data) {
    data = static_cast<std::byte*>(std::aligned_alloc(kAlignment, size));
    if (!data) {
      // Give the cache back to the OS and try once more before failing.
      {
        std::lock_guard lock(pool_->mutex);
        pool_->release_all_cached();
      }
      data = static_cast<std::byte*>(std::aligned_alloc(kAlignment, size));
      if (!data) throw std::bad_alloc();
    }
  }
  {
    std::lock_guard lock(pool_->mutex);
    pool_->stats.in_use += size;
    pool_->stats.peak_in_use = std::max(pool_->stats.peak_in_use, pool_->stats.in_use);
  }
  return std::make_shared<HostBlock>(pool_, data, size);
}

AllocatorStats HostAllocator::stats() const {
  std::lock_guard lock(pool_->mutex);
  return pool_->stats;
}

void HostAllocator::release_cached() {
  std::lock_guard lock(pool_->mutex);
  pool_->release_all_cached();
}

}  // namespace easel
