// Elementwise loops over strided views, shared by the CPU elementwise and layout kernels.
//
// K operands (by convention the output first) share one shape but each has its own strides.
// Size-1 dimensions are dropped and neighbouring dimensions that are contiguous in *every* operand
// are merged, so that the innermost loop is as long as possible and its strides tell the kernel
// which fast path applies:
//   - three contiguous tensors become one row with inner strides (1, 1, 1);
//   - a per-channel bias expanded over NCHW becomes [N, C, H*W] with the bias's inner stride 0;
//   - a row vector expanded over [M, N] becomes [M, N] with inner strides (1, 1, 1).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/context.h"
#include "core/shape.h"

namespace easel::cpu {

template <int K>
class StridedLoop {
 public:
  StridedLoop(const Shape& shape, const std::array<const Shape*, K>& strides) {
    for (int d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;  // contributes no offset: whatever its stride
      if (n_ > 0 && mergeable(shape, strides, d)) {
        shape_[n_ - 1] *= shape[d];
        for (int k = 0; k < K; ++k) strides_[k][n_ - 1] = (*strides[k])[d];
        continue;
      }
      shape_[n_] = shape[d];
      for (int k = 0; k < K; ++k) strides_[k][n_] = (*strides[k])[d];
      ++n_;
    }
    if (n_ == 0) {  // a scalar, or only size-1 dimensions: one row of one element
      shape_[0] = 1;
      for (int k = 0; k < K; ++k) strides_[k][0] = 0;
      n_ = 1;
    }
    numel_ = 1;
    for (int d = 0; d < n_; ++d) numel_ *= shape_[d];
  }

  int dims() const { return n_; }
  int64_t size(int d) const { return shape_[d]; }
  int64_t stride(int k, int d) const { return strides_[k][d]; }
  int64_t numel() const { return numel_; }
  int64_t inner() const { return shape_[n_ - 1]; }
  int64_t inner_stride(int k) const { return strides_[k][n_ - 1]; }

  // Calls fn(offsets, length) for every run along the innermost dimension that covers C-order
  // elements [begin, end): offsets[k] is operand k's element offset of the run's first element;
  // successive elements of the run are inner_stride(k) apart.
  template <class Fn>
  void for_each_run(int64_t begin, int64_t end, Fn&& fn) const {
    if (begin >= end) return;
    const int64_t inner = this->inner();
    int64_t row = begin / inner;
    int64_t col = begin % inner;
    int64_t index[kMaxDims] = {};
    std::array<int64_t, K> base{};
    for (int d = n_ - 2; d >= 0; --d) {
      index[d] = row % shape_[d];
      row /= shape_[d];
      for (int k = 0; k < K; ++k) base[k] += index[d] * strides_[k][d];
    }
    for (int64_t pos = begin; pos < end;) {
      const int64_t len = std::min(inner - col, end - pos);
      std::array<int64_t, K> offsets;
      for (int k = 0; k < K; ++k) offsets[k] = base[k] + col * strides_[k][n_ - 1];
      fn(offsets, len);
      pos += len;
      col = 0;
      // Next row: an odometer over the outer dimensions, keeping offsets incremental.
      for (int d = n_ - 2; d >= 0; --d) {
        for (int k = 0; k < K; ++k) base[k] += strides_[k][d];
        if (++index[d] < shape_[d]) break;
        for (int k = 0; k < K; ++k) base[k] -= strides_[k][d] * shape_[d];
        index[d] = 0;
      }
    }
  }

  // Runs for_each_run over the whole loop on the context's pool, `grain` elements at least per task.
  template <class Fn>
  void parallel_runs(Context& ctx, int64_t grain, Fn&& fn) const {
    ctx.pool().parallel_for(numel_, grain, [&](int64_t begin, int64_t end) { for_each_run(begin, end, fn); });
  }

 private:
  // Dimension d continues the last merged one when, for every operand, stepping the merged
  // dimension by one equals stepping d over its whole extent.
  bool mergeable(const Shape& shape, const std::array<const Shape*, K>& strides, int d) const {
    for (int k = 0; k < K; ++k)
      if (strides_[k][n_ - 1] != (*strides[k])[d] * shape[d]) return false;
    return true;
  }

  int n_ = 0;
  int64_t numel_ = 0;
  int64_t shape_[kMaxDims] = {};
  int64_t strides_[K][kMaxDims] = {};
};

// Elements per parallel task for streaming kernels: large enough that scheduling costs nothing
// next to the memory traffic (64K floats = 256 KiB).
constexpr int64_t kStreamGrain = int64_t(1) << 16;

}  // namespace easel::cpu
