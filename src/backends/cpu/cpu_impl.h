// State private to the CPU kernels, shared by the files of the CPU backend: the oneDNN engine,
// caches of convolution primitives and of weights already laid out the way a primitive wants
// them, and a few helpers that gemm.cpp, conv.cpp and attention.cpp share (cpu_impl.cpp).
//
// Threading. Debian's libdnnl is built on OpenMP (DNNL_CPU_RUNTIME == OMP): a primitive runs an
// OpenMP parallel region on the calling thread, sized by that thread's omp_get_max_threads().
// Every oneDNN call goes through DnnlThreads, which sets that to ctx.threads() first, so GEMM and
// convolution use exactly the context's threads. While a primitive runs, our own ThreadPool
// workers sleep on their condition variable, so the two pools never compete for the cores. Our
// own kernels (attention, weight conversion) run on ctx.pool() instead.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "backends/cpu/cpu_backend.h"

namespace easel {

namespace cpu {

// Sets the OpenMP thread count oneDNN will use on this thread to the context's.
struct DnnlThreads {
  explicit DnnlThreads(const Context& ctx);
};

// Element-wise conversion of n contiguous f32/f16/bf16 values to f32 (vectorised, serial).
void convert_to_f32(const void* src, DType dtype, float* dst, int64_t n);
// Same, spread over the context's pool for large n.
void convert_to_f32(Context& ctx, const void* src, DType dtype, float* dst, int64_t n);
// Gathers any strided f32/f16/bf16 view into a new contiguous f32 tensor (parallel on ctx.pool()).
Tensor to_contiguous_f32(Context& ctx, const Tensor& t);
// A contiguous f32 copy of a small vector (bias) unless it already is one: returns its pointer,
// keeping any copy alive in `keep`.
const float* f32_vector(Context& ctx, const Tensor& t, Tensor& keep);

// Scratch bytes from the context's caching allocator (64-byte aligned), so that the large
// temporaries of a diffusion step are reused instead of page-faulted in on every call.
Tensor scratch_bytes(Context& ctx, size_t bytes);
// oneDNN memory over our own buffer: `desc`'s bytes at `data`.
dnnl::memory wrap(const dnnl::memory::desc& desc, const dnnl::engine& engine, void* data);
// oneDNN memory over `desc`, with its bytes taken from the allocator and kept alive by `keep`.
dnnl::memory scratch_memory(Context& ctx, const dnnl::memory::desc& desc, const dnnl::engine& engine,
                            std::vector<Tensor>& keep);

// Weights already converted to f32 and reordered into a primitive's layout, so that repeated
// calls skip the work. Only weights on read-only storage are cached: those come from a mapped
// checkpoint and cannot change, while a writable tensor may be rewritten between two calls under
// the same address. An entry holds its storage weakly and is dropped once the storage is gone,
// so a new tensor at a recycled address never hits a stale entry. The total is bounded: once the
// budget is used up, further weights are prepared per call into scratch instead (no eviction: a
// UNet step visits its weights in a cycle, which would make LRU evict every entry before reuse).
// Thread-safe: one backend may serve several contexts at once.
class PackedWeightCache {
 public:
  explicit PackedWeightCache(size_t budget_bytes) : budget_(budget_bytes) {}

  // The packed weight for `w` in `layout`, or an empty memory.
  dnnl::memory find(const Tensor& w, const dnnl::memory::desc& layout);
  // Keeps `packed` (in `layout`) for `w` when it is read-only and the budget allows.
  void insert(const Tensor& w, const dnnl::memory::desc& layout, const dnnl::memory& packed);
  // Whether insert() would keep `bytes` more for a read-only weight.
  bool has_room(size_t bytes);
  size_t bytes() const;
  void clear();

 private:
  using Key = std::tuple<const std::byte*, int, std::vector<int64_t>>;  // data, dtype, shape + strides
  struct Entry {
    std::weak_ptr<Storage> owner;
    dnnl::memory::desc layout;
    dnnl::memory packed;
    size_t bytes;
  };
  static Key key_of(const Tensor& w);
  void drop_expired_locked();

  mutable std::mutex mutex_;
  std::multimap<Key, Entry> entries_;
  size_t budget_;
  size_t used_ = 0;
};

// Convolution primitives by their parameters. oneDNN has its own cache of compiled kernels, but
// finding the implementation (the primitive descriptor) costs ~0.1 ms a call; this skips it.
struct ConvKey {
  std::vector<int64_t> dims;  // geometry, parameters, bias or not, thread count
  bool operator<(const ConvKey& o) const { return dims < o.dims; }
};

struct ConvPlan {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward primitive;
};

}  // namespace cpu

struct CpuBackend::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};

  // Prepared f32 conv weights of read-only checkpoints (see conv.cpp for which). A bound, not a
  // working set: preparing a weight per call costs most at 8x8 (SD's deepest UNet level), and
  // 256 MiB holds a few of those; a whole SD 1.5 UNet step at 512x512 measured the same with a
  // 1 GiB cache as with none (7.2 s), so more would only add to the memory a generation holds.
  cpu::PackedWeightCache conv_weights{size_t(256) << 20};

  // Convolutions whose blocked input or output would pass 4x this run in bands of output rows of
  // about this size (conv.cpp): a few dozen rows of a large image, enough for oneDNN's kernels to
  // run at full speed. Tests lower it to cut small convolutions into many bands.
  int64_t conv_band_bytes = int64_t(16) << 20;

  std::mutex conv_plans_mutex;
  std::map<cpu::ConvKey, std::shared_ptr<const cpu::ConvPlan>> conv_plans;
};

}  // namespace easel
