#include "core/allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <set>

namespace easel {
namespace {

constexpr size_t kAlignment = 64;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

size_t page_size() { return size_t(sysconf(_SC_PAGESIZE)); }

// Under AddressSanitizer every block comes from the system allocator, so that ASan keeps its
// red zones around each tensor and reports overflows between neighbours.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kArena = false;
#else
constexpr bool kArena = true;
#endif

}  // namespace

struct HostAllocator::Pool {
  std::mutex mutex;
  std::byte* base = nullptr;  // the reserved range (nullptr: system allocator only)
  size_t capacity = 0;
  size_t top = 0;                            // offsets below top are blocks or free ranges
  std::map<size_t, size_t> free_by_offset;   // offset -> size, no two adjacent
  std::set<std::pair<size_t, size_t>> free_by_size;  // (size, offset), for best fit
  AllocatorStats stats;

  ~Pool() {
    if (base) munmap(base, capacity);
  }

  bool owns(const std::byte* p) const { return base && p >= base && p < base + capacity; }

  void add_free(size_t offset, size_t size) {
    free_by_offset.emplace(offset, size);
    free_by_size.emplace(size, offset);
  }
  void remove_free(std::map<size_t, size_t>::iterator it) {
    free_by_size.erase({it->second, it->first});
    free_by_offset.erase(it);
  }

  // Best fit among the free ranges, else from the top (joining a free range that ends there).
  std::byte* carve(size_t size) {
    auto fit = free_by_size.lower_bound({size, 0});
    size_t offset;
    if (fit != free_by_size.end()) {
      const auto [free_size, free_offset] = *fit;
      remove_free(free_by_offset.find(free_offset));
      if (free_size > size) add_free(free_offset + size, free_size - size);
      offset = free_offset;
      stats.cached -= size;
    } else {
      offset = top;
      if (!free_by_offset.empty()) {
        auto last = std::prev(free_by_offset.end());
        if (last->first + last->second == top) {
          offset = last->first;
          stats.cached -= last->second;
          remove_free(last);
        }
      }
      if (offset + size > capacity) {  // out of reserved space: give the range back, use malloc
        if (offset != top) {
          add_free(offset, top - offset);
          stats.cached += top - offset;
        }
        return nullptr;
      }
      top = offset + size;
    }
    return base + offset;
  }

  void release(std::byte* data, size_t size) {
    std::lock_guard lock(mutex);
    stats.in_use -= size;
    if (!owns(data)) {
      std::free(data);
      return;
    }
    size_t offset = size_t(data - base);
    stats.cached += size;
    // Merge with the free neighbours on both sides.
    auto next = free_by_offset.lower_bound(offset);
    if (next != free_by_offset.end() && next->first == offset + size) {
      size += next->second;
      next = std::next(next);
      remove_free(std::prev(next));
    }
    if (next != free_by_offset.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == offset) {
        offset = prev->first;
        size += prev->second;
        remove_free(prev);
      }
    }
    add_free(offset, size);
  }

  // Unmaps the pages of every free range (they read as zero when touched again) and lowers the top
  // past a free range that ends there.
  void trim_locked() {
    if (!base) return;
    const size_t page = page_size();
    if (!free_by_offset.empty()) {
      auto last = std::prev(free_by_offset.end());
      if (last->first + last->second == top) {
        top = last->first;
        stats.cached -= last->second;
        remove_free(last);
      }
    }
    for (const auto& [offset, size] : free_by_offset) {
      const size_t begin = round_up(offset, page), end = (offset + size) / page * page;
      if (end > begin) madvise(base + begin, end - begin, MADV_DONTNEED);
    }
    const size_t mapped_top = round_up(top, page);
    if (capacity > mapped_top) madvise(base + mapped_top, capacity - mapped_top, MADV_DONTNEED);
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

// Address space only: pages are backed when first written. Halves the request until the system
// agrees (strict overcommit accounting may refuse a large one).
std::pair<std::byte*, size_t> reserve(size_t bytes) {
  const size_t page = page_size();
  for (size_t size = round_up(bytes, page); size >= (size_t(256) << 20); size /= 2) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) return {static_cast<std::byte*>(p), size};
  }
  return {nullptr, 0};
}

}  // namespace

HostAllocator::HostAllocator(size_t reserve_bytes) : pool_(std::make_shared<Pool>()) {
  if (!kArena) return;
  if (reserve_bytes == 0) reserve_bytes = 2 * size_t(sysconf(_SC_PHYS_PAGES)) * page_size();
  std::tie(pool_->base, pool_->capacity) = reserve(reserve_bytes);
}

HostAllocator::~HostAllocator() {
  std::lock_guard lock(pool_->mutex);
  pool_->trim_locked();
}

std::shared_ptr<Storage> HostAllocator::allocate(size_t bytes) {
  const size_t size = round_up(std::max<size_t>(bytes, 1), kAlignment);
  std::byte* data = nullptr;
  {
    std::lock_guard lock(pool_->mutex);
    if (pool_->base) data = pool_->carve(size);
  }
  if (!data) {
    data = static_cast<std::byte*>(std::aligned_alloc(kAlignment, size));
    if (!data) throw std::bad_alloc();
  }
  std::lock_guard lock(pool_->mutex);
  AllocatorStats& s = pool_->stats;
  s.in_use += size;
  s.peak_in_use = std::max(s.peak_in_use, s.in_use);
  return std::make_shared<HostBlock>(pool_, data, size);
}

void HostAllocator::trim() {
  std::lock_guard lock(pool_->mutex);
  pool_->trim_locked();
}

AllocatorStats HostAllocator::stats() const {
  std::lock_guard lock(pool_->mutex);
  AllocatorStats s = pool_->stats;
  s.extent = pool_->top;
  return s;
}

}  // namespace easel
