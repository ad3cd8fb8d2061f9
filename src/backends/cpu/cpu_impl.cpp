#include "backends/cpu/cpu_impl.h"

#include <omp.h>

#include <hwy/highway.h>

#include <cstring>
#include <type_traits>

#include "core/half.h"

namespace easel::cpu {

namespace hn = hwy::HWY_NAMESPACE;

DnnlThreads::DnnlThreads(const Context& ctx) { omp_set_num_threads(ctx.threads()); }

// --- conversions -----------------------------------------------------------------------------

namespace {

template <class Half>
void promote(const Half* src, float* dst, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<Half, decltype(df)> dh;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, src + i)), df, dst + i);
  for (; i < n; ++i) {
    uint16_t bits;
    std::memcpy(&bits, src + i, sizeof bits);
    dst[i] = std::is_same_v<Half, hwy::float16_t> ? f16_to_f32(bits) : bf16_to_f32(bits);
  }
}

float scalar_to_f32(const std::byte* p, DType dtype) {
  uint16_t bits;
  switch (dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, p, sizeof f);
      return f;
    }
    case DType::F16:
      std::memcpy(&bits, p, sizeof bits);
      return f16_to_f32(bits);
    case DType::BF16:
      std::memcpy(&bits, p, sizeof bits);
      return bf16_to_f32(bits);
    default:
      throw Exception(cat("CPU kernels read f32, f16 or bf16, not ", dtype_name(dtype)));
  }
}

}  // namespace

void convert_to_f32(const void* src, DType dtype, float* dst, int64_t n) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
      promote(static_cast<const hwy::float16_t*>(src), dst, n);
      return;
    case DType::BF16:
      promote(static_cast<const hwy::bfloat16_t*>(src), dst, n);
      return;
    default:
      throw Exception(cat("CPU kernels read f32, f16 or bf16, not ", dtype_name(dtype)));
  }
}

void convert_to_f32(Context& ctx, const void* src, DType dtype, float* dst, int64_t n) {
  const size_t elem = dtype_size(dtype);
  // 64K elements a task: the conversion streams memory, so smaller tasks only add overhead.
  ctx.pool().parallel_for(n, int64_t(1) << 16, [&](int64_t begin, int64_t end) {
    convert_to_f32(static_cast<const std::byte*>(src) + begin * elem, dtype, dst + begin, end - begin);
  });
}

Tensor to_contiguous_f32(Context& ctx, const Tensor& t) {
  Tensor out = ctx.empty(t.shape(), DType::F32);
  if (t.numel() == 0) return out;
  if (t.is_contiguous()) {
    convert_to_f32(ctx, t.raw(), t.dtype(), out.data<float>(), t.numel());
    return out;
  }
  // Rows along the last dimension; each task walks its rows with an index odometer.
  const int nd = t.dim();
  const int64_t inner = nd ? t.size(-1) : 1;
  const int64_t inner_stride = nd ? t.stride(-1) : 0;
  const int64_t rows = t.numel() / inner;
  const size_t elem = dtype_size(t.dtype());
  const auto* base = static_cast<const std::byte*>(t.raw());
  float* dst = out.data<float>();
  ctx.pool().parallel_for(rows, std::max<int64_t>(1, 4096 / inner), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t rest = r, offset = 0;
      for (int d = nd - 2; d >= 0; --d) {
        offset += (rest % t.size(d)) * t.stride(d);
        rest /= t.size(d);
      }
      const std::byte* src = base + offset * static_cast<int64_t>(elem);
      float* row = dst + r * inner;
      if (inner_stride == 1) {
        convert_to_f32(src, t.dtype(), row, inner);
      } else {
        for (int64_t i = 0; i < inner; ++i) row[i] = scalar_to_f32(src + i * inner_stride * int64_t(elem), t.dtype());
      }
    }
  });
  return out;
}

const float* f32_vector(Context& ctx, const Tensor& t, Tensor& keep) {
  if (!t.defined()) return nullptr;
  if (t.dtype() == DType::F32 && t.is_contiguous()) return t.data<float>();
  keep = to_contiguous_f32(ctx, t);
  return keep.data<float>();
}

// --- oneDNN memory -------------------------------------------------------------------------------

Tensor scratch_bytes(Context& ctx, size_t bytes) {
  return ctx.empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::U8);
}

dnnl::memory wrap(const dnnl::memory::desc& desc, const dnnl::engine& engine, void* data) {
  return dnnl::memory(desc, engine, data);
}

dnnl::memory scratch_memory(Context& ctx, const dnnl::memory::desc& desc, const dnnl::engine& engine,
                            std::vector<Tensor>& keep) {
  keep.push_back(scratch_bytes(ctx, desc.get_size()));
  return wrap(desc, engine, keep.back().raw());
}

// --- packed weight cache -------------------------------------------------------------------------

PackedWeightCache::Key PackedWeightCache::key_of(const Tensor& w) {
  std::vector<int64_t> dims(w.shape().begin(), w.shape().end());
  dims.insert(dims.end(), w.strides().begin(), w.strides().end());
  return {static_cast<const std::byte*>(w.raw()), static_cast<int>(w.dtype()), std::move(dims)};
}

void PackedWeightCache::drop_expired_locked() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.owner.expired()) {
      used_ -= it->second.bytes;
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

dnnl::memory PackedWeightCache::find(const Tensor& w, const dnnl::memory::desc& layout) {
  if (!w.read_only()) return {};
  std::lock_guard lock(mutex_);
  auto [first, last] = entries_.equal_range(key_of(w));
  for (auto it = first; it != last; ++it) {
    // Same address but another storage: the old one is gone and its memory reused.
    if (it->second.owner.lock() != w.storage()) continue;
    if (it->second.layout == layout) return it->second.packed;
  }
  return {};
}

void PackedWeightCache::insert(const Tensor& w, const dnnl::memory::desc& layout, const dnnl::memory& packed) {
  if (!w.read_only()) return;
  const size_t bytes = layout.get_size();
  std::lock_guard lock(mutex_);
  drop_expired_locked();  // inserts are rare (once per weight): keep the books exact
  if (used_ + bytes > budget_) return;
  entries_.emplace(key_of(w), Entry{w.storage(), layout, packed, bytes});
  used_ += bytes;
}

bool PackedWeightCache::has_room(size_t bytes) {
  std::lock_guard lock(mutex_);
  if (used_ + bytes > budget_) drop_expired_locked();
  return used_ + bytes <= budget_;
}

size_t PackedWeightCache::bytes() const {
  std::lock_guard lock(mutex_);
  return used_;
}

void PackedWeightCache::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
  used_ = 0;
}

}  // namespace easel::cpu
