// Scaled dot-product attention, flash style: each task takes a tile of kQTile queries of one
// (batch, head) and walks the keys kKTile at a time, keeping a running row max and sum (online
// softmax) so that only a kQTile x kKTile block of scores ever exists. Accumulation is f32.
//
// Both products are register-blocked Highway microkernels, 6 query rows x 2 vectors:
//   S = Q Kᵀ:  for each d, two vectors of a transposed K tile times 6 broadcast q values;
//   O += P V:  for each key j, two vectors of V's row j times 6 broadcast probabilities.
// K is first transposed into tiles [D][kKTile] once per call (and V copied into padded rows
// when its rows are not plain vectors), in a parallel pre-pass; packing K inside every query tile
// instead would redo that transposition Nq / kQTile times. The packed copies are the size of k
// and v, never Nq x Nk.
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
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

constexpr int64_t kQTile = 64;   // queries per task
constexpr int64_t kKTile = 128;  // keys per step: the score tile is 64 x 128 floats (32 KiB)
constexpr int kRows = 6;         // query rows per microkernel call (12 accumulators + 3 temporaries)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

// Element offset of [b, h, n, d] in a 4-d view.
inline int64_t offset4(const Tensor& t, int64_t b, int64_t h, int64_t n, int64_t d) {
  return b * t.stride(0) + h * t.stride(1) + n * t.stride(2) + d * t.stride(3);
}

// K transposed into tiles: for (b, h) and key tile t, a [D][kKTile] block, zero past Nk.
struct PackedK {
  std::vector<float> data;
  int64_t tiles = 0, D = 0, H = 0;
  const float* tile(int64_t b, int64_t h, int64_t t) const { return data.data() + ((b * H + h) * tiles + t) * D * kKTile; }
};

// V rows as plain vectors of Dv padded to a whole number of vectors; or v itself when it is one.
struct VRows {
  std::vector<float> data;
  const float* base = nullptr;  // v's own memory when not packed
  int64_t ld = 0, Dp = 0, Nk = 0, H = 0;
  const Tensor* v = nullptr;
  const float* row(int64_t b, int64_t h, int64_t j) const {
    if (base) return base + offset4(*v, b, h, j, 0);
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
  const float* src = k.data<float>();
  ctx.pool().parallel_for(B * H * pk.tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t t = task % pk.tiles, bh = task / pk.tiles, b = bh / H, h = bh % H;
      float* dst = const_cast<float*>(pk.tile(b, h, t));
      const int64_t j0 = t * kKTile, nk = std::min(kKTile, Nk - j0);
      for (int64_t j = 0; j < nk; ++j) {
        const float* row = src + offset4(k, b, h, j0 + j, 0);
        for (int64_t d = 0; d < D; ++d) dst[d * kKTile + j] = row[d * k.stride(3)];
      }
    }
  });
  return pk;
}

VRows v_rows(Context& ctx, const Tensor& v) {
  const int64_t B = v.size(0), H = v.size(1), Nk = v.size(2), Dv = v.size(3);
  VRows vr;
  vr.v = &v;
  vr.Dp = round_up(Dv, lanes());
  if (v.stride(3) == 1 && Dv == vr.Dp) {  // rows are already whole vectors
    vr.base = v.data<float>();
    return vr;
  }
  vr.ld = vr.Dp;
  vr.Nk = Nk;
  vr.H = H;
  vr.data.assign(static_cast<size_t>(B * H * Nk * vr.Dp), 0.0f);
  const float* src = v.data<float>();
  ctx.pool().parallel_for(B * H * Nk, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t j = r % Nk, bh = r / Nk;
      const float* row = src + offset4(v, bh / H, bh % H, j, 0);
      float* dst = vr.data.data() + r * vr.Dp;
      for (int64_t c = 0; c < Dv; ++c) dst[c] = row[c * v.stride(3)];
    }
  });
  return vr;
}

// Everything one task needs besides its scratch.
struct Problem {
  const Tensor& q;
  const Tensor& mask;  // undefined, or [B, H, Nq, Nk]
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
    if (pb.mask.defined()) {
      const float* mrow = pb.mask.data<float>() + offset4(pb.mask, b, h, i0 + r, j0);
      const int64_t ms = pb.mask.stride(3);
      for (int64_t j = 0; j < nk; ++j) row[j] += mrow[j * ms];
    }
    // Query i sees keys j <= i + (Nk - Nq): the causal mask aligned to the end of the keys.
    int64_t visible = nk;
    if (pb.causal) visible = std::clamp<int64_t>(i0 + r + (pb.Nk - pb.Nq) - j0 + 1, 0, nk);
    for (int64_t j = visible; j < width; ++j) row[j] = kNegInf;
  }
}

// Online softmax step for one row of the score tile: turns scores into exp(s - m_new) in place,
// rescales the row's running sum and output by exp(m_old - m_new).
void softmax_row(float* s, int64_t width, float& m, float& l, float* o, int64_t dp) {
  const DF df;
  const int64_t L = lanes();
  VF vmax = hn::Set(df, kNegInf);
  for (int64_t j = 0; j < width; j += L) vmax = hn::Max(vmax, hn::LoadU(df, s + j));
  const float tile_max = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const float m_new = std::max(m, tile_max);
  if (m_new == kNegInf) {  // nothing visible yet: the tile contributes nothing
    for (int64_t j = 0; j < width; ++j) s[j] = 0.0f;
    return;
  }
  const VF vm = hn::Set(df, m_new);
  VF vsum = hn::Zero(df);
  for (int64_t j = 0; j < width; j += L) {
    const VF p = hn::Exp(df, hn::Sub(hn::LoadU(df, s + j), vm));  // exp(-inf) = 0 for hidden keys
    hn::StoreU(p, df, s + j);
    vsum = hn::Add(vsum, p);
  }
  const float alpha = m == kNegInf ? 0.0f : std::exp(m - m_new);
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
  // Q tile, scaled once here rather than every score.
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = pb.q.data<float>() + offset4(pb.q, b, h, i0 + r, 0);
    for (int64_t d = 0; d < D; ++d) sc.q[r * D + d] = src[d * pb.q.stride(3)] * pb.scale;
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
    const int64_t ldv = pb.v.base ? pb.v.v->stride(2) : pb.v.ld;
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
  const Problem pb{q, mask, pk, vr, B, H, Nq, Nk, D, Dv, scale, p.causal, out.data<float>()};
  const int64_t q_tiles = (Nq + kQTile - 1) / kQTile;
  ctx.pool().parallel_for(B * H * q_tiles, 1, [&](int64_t begin, int64_t end) {
    TileScratch scratch(pb);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bh = task / q_tiles, i0 = (task % q_tiles) * kQTile;
      attention_tile(pb, bh / H, bh % H, i0, std::min(kQTile, Nq - i0), scratch);
    }
  });
}

}  // namespace easel
