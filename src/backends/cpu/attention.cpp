// Scaled dot-product attention, flash style: each task takes a tile of kQTile queries of one
// (batch, head) and walks the keys kKTile at a time, keeping a running row max and sum (online
// softmax) so that only a kQTile x kKTile block of scores ever exists. Accumulation is f32.
// Tasks run in parallel on ctx.pool().
//
// Both products are register-blocked Highway microkernels, 6 query rows x 2 vectors:
//   S = Q Kᵀ:  for each d, two vectors of a transposed K tile times 6 broadcast q values;
//   O += P V:  for each key j, two vectors of V's row j times 6 broadcast probabilities.
// K is first transposed into tiles [D][kKTile] once per call (and V copied into padded rows
// when its rows are not plain vectors), in a parallel pre-pass; packing K inside every query tile
// instead would redo that transposition Nq / kQTile times. The packed copies are the size of k
// and v, never Nq x Nk.
//
// Scores are kept in log2 units (q is pre-scaled by scale·log2 e, the mask by log2 e), so the
// softmax needs 2^x, which a short polynomial gives (exp2_nonpositive): with head size 40 a
// general-purpose exp costs as much as both products together.
#include <hwy/highway.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_impl.h"

namespace easel {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int64_t kQTile = 48;   // queries per task: 8 blocks of kRows (a 64-row tile ran 5% slower)
constexpr int64_t kKTile = 128;  // keys per step: the score tile is 48 x 128 floats (24 KiB)
constexpr int kRows = 6;         // query rows per microkernel call (12 accumulators + 3 temporaries)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kLog2e = 1.4426950408889634f;

inline int64_t lanes() { return static_cast<int64_t>(hn::Lanes(DF())); }
inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// s[r][0 : 2L] = sum_d q[r][d] * kt[d][0 : 2L] for R rows.
template <int R>
HWY_INLINE void qk_kernel(const float* q, int64_t ldq, const float* kt, int64_t ldk, int64_t D, float* s,
                          int64_t lds) {
  const DF df;
  const int64_t L = lanes();
  VF acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = hn::Zero(df);
  for (int64_t d = 0; d < D; ++d) {
    const VF k0 = hn::LoadU(df, kt + d * ldk), k1 = hn::LoadU(df, kt + d * ldk + L);
    for (int r = 0; r < R; ++r) {
      const VF qv = hn::Set(df, q[r * ldq + d]);
      acc[r][0] = hn::MulAdd(qv, k0, acc[r][0]);
      acc[r][1] = hn::MulAdd(qv, k1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    hn::StoreU(acc[r][0], df, s + r * lds);
    hn::StoreU(acc[r][1], df, s + r * lds + L);
  }
}

// o[r][0 : C·L] += sum_j p[r][j] * v[j][0 : C·L] for R rows, j < nk.
template <int R, int C>
HWY_INLINE void pv_kernel(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t nk, float* o,
                          int64_t ldo) {
  const DF df;
  const int64_t L = lanes();
  VF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::LoadU(df, o + r * ldo + c * L);
  for (int64_t j = 0; j < nk; ++j) {
    VF vv[C];
    for (int c = 0; c < C; ++c) vv[c] = hn::LoadU(df, v + j * ldv + c * L);
    for (int r = 0; r < R; ++r) {
      const VF pv = hn::Set(df, p[r * ldp + j]);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(pv, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) hn::StoreU(acc[r][c], df, o + r * ldo + c * L);
}

// Calls kernel.template operator()<R>(row) for row blocks of kRows, then the remainder.
template <class Kernel>
HWY_INLINE void for_row_blocks(int64_t rows, Kernel&& kernel) {
  int64_t i = 0;
  for (; i + kRows <= rows; i += kRows) kernel.template operator()<kRows>(i);
  switch (rows - i) {
    case 5: kernel.template operator()<5>(i); break;
    case 4: kernel.template operator()<4>(i); break;
    case 3: kernel.template operator()<3>(i); break;
    case 2: kernel.template operator()<2>(i); break;
    case 1: kernel.template operator()<1>(i); break;
    default: break;
  }
}

// A 4-d f32 view with its strides at hand (Tensor::stride() checks its index: too slow per element).
struct View4 {
  const float* data = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  View4() = default;
  explicit View4(const Tensor& t)
      : data(t.data<float>()), s0(t.stride(0)), s1(t.stride(1)), s2(t.stride(2)), s3(t.stride(3)) {}
  const float* row(int64_t b, int64_t h, int64_t n) const { return data + b * s0 + h * s1 + n * s2; }
};

// K transposed into tiles: for (b, h) and key tile t, a [D][kKTile] block, zero past Nk.
struct PackedK {
  std::vector<float> data;
  int64_t tiles = 0, D = 0, H = 0;
  const float* tile(int64_t b, int64_t h, int64_t t) const {
    return data.data() + ((b * H + h) * tiles + t) * D * kKTile;
  }
};

// V rows as plain vectors of Dv padded to a whole number of vectors; or v itself when it is one.
struct VRows {
  std::vector<float> data;
  View4 v;      // v's own memory when not packed (v.data null otherwise)
  int64_t ld = 0, Dp = 0, Nk = 0, H = 0;  // ld: elements between rows
  const float* row(int64_t b, int64_t h, int64_t j) const {
    if (v.data) return v.row(b, h, j);
    return data.data() + ((b * H + h) * Nk + j) * ld;
  }
};

PackedK pack_k(Context& ctx, const Tensor& k) {
  const int64_t B = k.size(0), H = k.size(1), Nk = k.size(2), D = k.size(3);
  PackedK pk;
  pk.tiles = (Nk + kKTile - 1) / kKTile;
  pk.D = D;
  pk.H = H;
  pk.data.assign(static_cast<size_t>(B * H * pk.tiles * D * kKTile), 0.0f);
  const View4 src(k);
  ctx.pool().parallel_for(B * H * pk.tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t t = task % pk.tiles, bh = task / pk.tiles, b = bh / H, h = bh % H;
      float* dst = const_cast<float*>(pk.tile(b, h, t));
      const int64_t j0 = t * kKTile, nk = std::min(kKTile, Nk - j0);
      for (int64_t j = 0; j < nk; ++j) {
        const float* row = src.row(b, h, j0 + j);
        for (int64_t d = 0; d < D; ++d) dst[d * kKTile + j] = row[d * src.s3];
      }
    }
  });
  return pk;
}

VRows v_rows(Context& ctx, const Tensor& v) {
  const int64_t B = v.size(0), H = v.size(1), Nk = v.size(2), Dv = v.size(3);
  VRows vr;
  vr.Dp = round_up(Dv, lanes());
  if (v.stride(3) == 1 && Dv == vr.Dp) {  // rows are already whole vectors
    vr.v = View4(v);
    vr.ld = v.stride(2);
    return vr;
  }
  vr.ld = vr.Dp;
  vr.Nk = Nk;
  vr.H = H;
  vr.data.assign(static_cast<size_t>(B * H * Nk * vr.Dp), 0.0f);
  const View4 src(v);
  ctx.pool().parallel_for(B * H * Nk, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t j = r % Nk, bh = r / Nk;
      const float* row = src.row(bh / H, bh % H, j);
      float* dst = vr.data.data() + r * vr.Dp;
      for (int64_t c = 0; c < Dv; ++c) dst[c] = row[c * src.s3];
    }
  });
  return vr;
}

// Everything one task needs besides its scratch.
struct Problem {
  View4 q;
  View4 mask;  // data null without a mask; else [B, H, Nq, Nk]
  const PackedK& k;
  const VRows& v;
  int64_t B, H, Nq, Nk, D, Dv;
  float scale;
  bool causal;
  float* out;
};

// Scratch of one worker, reused across its tasks.
struct TileScratch {
  std::vector<float> q, s, o, m, l;
  explicit TileScratch(const Problem& pb)
      : q(kQTile * pb.D), s(kQTile * kKTile), o(kQTile * pb.v.Dp), m(kQTile), l(kQTile) {}
};

// Adds the mask and hides keys a row may not see (causal, or past Nk) in the score tile.
void mask_scores(const Problem& pb, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t nk,
                 int64_t width, float* s) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * kKTile;
    if (pb.mask.data) {  // scores are in log2 units, so is the mask
      const float* mrow = pb.mask.row(b, h, i0 + r) + j0 * pb.mask.s3;
      for (int64_t j = 0; j < nk; ++j) row[j] += mrow[j * pb.mask.s3] * kLog2e;
    }
    // Query i sees keys j <= i + (Nk - Nq): the causal mask aligned to the end of the keys.
    int64_t visible = nk;
    if (pb.causal) visible = std::clamp<int64_t>(i0 + r + (pb.Nk - pb.Nq) - j0 + 1, 0, nk);
    for (int64_t j = visible; j < width; ++j) row[j] = kNegInf;
  }
}

// 2^t for t <= 0 (a score minus its row's running max, in log2 units). Round-to-nearest splits
// t = n + f with f in [-1/2, 1/2]; 2^f is a degree-6 Chebyshev fit (max error 2e-9, below f32
// rounding) and 2^n is built in the exponent bits. About a third of Highway's general Exp, which
// would otherwise cost as much as the two matrix products at head size 40. t is clamped at -126
// to keep 2^n a normal float: a hidden key (t = -inf) weighs 2^-126 ~ 1e-38, invisible next to
// the row's max key, which weighs 1. NaN stays NaN (Max returns its second operand on NaN).
HWY_INLINE VF exp2_nonpositive(VF t) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  t = hn::Max(hn::Set(df, -126.0f), t);
  // Adding 1.5·2^23 + 127 rounds t to an integer held in the low mantissa bits, biased by 127.
  const VF shifter = hn::Set(df, 12582912.0f + 127.0f);
  const VF biased = hn::Add(t, shifter);
  const VF f = hn::Sub(t, hn::Sub(biased, shifter));
  VF p = hn::Set(df, 1.546144469856913e-4f);
  p = hn::MulAdd(p, f, hn::Set(df, 1.3400428177615838e-3f));
  p = hn::MulAdd(p, f, hn::Set(df, 9.618056678524637e-3f));
  p = hn::MulAdd(p, f, hn::Set(df, 5.550327226670302e-2f));
  p = hn::MulAdd(p, f, hn::Set(df, 2.4022650922288757e-1f));
  p = hn::MulAdd(p, f, hn::Set(df, 6.931472067028326e-1f));
  p = hn::MulAdd(p, f, hn::Set(df, 1.0f));
  const VF scale = hn::BitCast(df, hn::ShiftLeft<23>(hn::BitCast(di, biased)));  // 2^n
  return hn::Mul(p, scale);
}

// Online softmax step for one row of the score tile (log2 units): turns scores into
// 2^(s - m_new) in place, and rescales the row's running sum and output by 2^(m_old - m_new).
void softmax_row(float* s, int64_t width, float& m, float& l, float* o, int64_t dp) {
  const DF df;
  const int64_t L = lanes();
  VF vmax = hn::Set(df, kNegInf);
  for (int64_t j = 0; j < width; j += L) vmax = hn::Max(vmax, hn::LoadU(df, s + j));
  const float tile_max = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const float m_new = std::max(m, tile_max);
  if (m_new == kNegInf) {  // nothing visible yet: the tile contributes nothing
    std::fill(s, s + width, 0.0f);
    return;
  }
  const VF vm = hn::Set(df, m_new);
  VF vsum = hn::Zero(df);
  for (int64_t j = 0; j < width; j += L) {
    const VF p = exp2_nonpositive(hn::Sub(hn::LoadU(df, s + j), vm));
    hn::StoreU(p, df, s + j);
    vsum = hn::Add(vsum, p);
  }
  const float alpha = m == kNegInf ? 0.0f : std::exp2(m - m_new);
  l = l * alpha + hn::GetLane(hn::SumOfLanes(df, vsum));
  m = m_new;
  if (alpha != 1.0f) {
    const VF va = hn::Set(df, alpha);
    for (int64_t c = 0; c < dp; c += L) hn::StoreU(hn::Mul(hn::LoadU(df, o + c), va), df, o + c);
  }
}

// One task: queries [i0, i0 + rows) of (b, h) against every visible key tile.
void attention_tile(const Problem& pb, int64_t b, int64_t h, int64_t i0, int64_t rows, TileScratch& sc) {
  const int64_t L = lanes(), D = pb.D, dp = pb.v.Dp;
  // Q tile, scaled once here rather than every score (by scale·log2 e: scores in log2 units).
  const float q_scale = pb.scale * kLog2e;
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = pb.q.row(b, h, i0 + r);
    for (int64_t d = 0; d < D; ++d) sc.q[r * D + d] = src[d * pb.q.s3] * q_scale;
  }
  std::fill(sc.o.begin(), sc.o.begin() + rows * dp, 0.0f);
  std::fill(sc.m.begin(), sc.m.end(), kNegInf);
  std::fill(sc.l.begin(), sc.l.end(), 0.0f);

  // With the causal mask the last row sees keys up to i0 + rows - 1 + (Nk - Nq): later tiles are
  // skipped entirely.
  int64_t key_end = pb.Nk;
  if (pb.causal) key_end = std::clamp<int64_t>(i0 + rows + (pb.Nk - pb.Nq), 0, pb.Nk);
  for (int64_t t = 0, j0 = 0; j0 < key_end; ++t, j0 += kKTile) {
    const int64_t nk = std::min(kKTile, pb.Nk - j0);
    const int64_t width = round_up(nk, 2 * L);
    const float* kt = pb.k.tile(b, h, t);
    for (int64_t c = 0; c < width; c += 2 * L) {
      for_row_blocks(rows, [&]<int R>(int64_t i) {
        qk_kernel<R>(sc.q.data() + i * D, D, kt + c, kKTile, D, sc.s.data() + i * kKTile + c, kKTile);
      });
    }
    mask_scores(pb, b, h, i0, rows, j0, nk, width, sc.s.data());
    for (int64_t r = 0; r < rows; ++r)
      softmax_row(sc.s.data() + r * kKTile, width, sc.m[r], sc.l[r], sc.o.data() + r * dp, dp);

    const float* v0 = pb.v.row(b, h, j0);
    const int64_t ldv = pb.v.ld;
    int64_t c = 0;
    for (; c + 2 * L <= dp; c += 2 * L) {
      for_row_blocks(rows, [&]<int R>(int64_t i) {
        pv_kernel<R, 2>(sc.s.data() + i * kKTile, kKTile, v0 + c, ldv, nk, sc.o.data() + i * dp + c, dp);
      });
    }
    if (c < dp) {
      for_row_blocks(rows, [&]<int R>(int64_t i) {
        pv_kernel<R, 1>(sc.s.data() + i * kKTile, kKTile, v0 + c, ldv, nk, sc.o.data() + i * dp + c, dp);
      });
    }
  }

  // Normalise; a row that saw no key at all (fully masked) gives zeros.
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = pb.out + (((b * pb.H + h) * pb.Nq) + i0 + r) * pb.Dv;
    const float inv = sc.l[r] > 0 ? 1.0f / sc.l[r] : 0.0f;
    for (int64_t c = 0; c < pb.Dv; ++c) dst[c] = sc.o[r * dp + c] * inv;
  }
}

}  // namespace

void CpuBackend::attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                           const AttentionParams& p, Tensor& out) {
  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), D = q.size(3), Nk = k.size(2), Dv = v.size(3);
  if (out.numel() == 0) return;
  const PackedK pk = pack_k(ctx, k);
  const VRows vr = v_rows(ctx, v);
  const float scale = p.scale != 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(D));
  const Problem pb{View4(q), mask.defined() ? View4(mask) : View4(), pk, vr, B, H, Nq, Nk, D, Dv, scale, p.causal,
                   out.data<float>()};
  const int64_t q_tiles = (Nq + kQTile - 1) / kQTile, tasks = B * H * q_tiles;
  // One worker per thread, each taking query tiles one at a time from a shared counter: the
  // pool's own split (4 ranges a thread) left up to an eighth of the work on one thread at the
  // end, and causal tiles differ in cost.
  std::atomic<int64_t> next{0};
  ctx.pool().parallel_for(std::min<int64_t>(ctx.threads(), tasks), 1, [&](int64_t, int64_t) {
    TileScratch scratch(pb);
    for (int64_t task; (task = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      const int64_t bh = task / q_tiles, i0 = (task % q_tiles) * kQTile;
      attention_tile(pb, bh / H, bh % H, i0, std::min(kQTile, Nq - i0), scratch);
    }
  });
}

}  // namespace easel
