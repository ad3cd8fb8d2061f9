// Vectorised f32 math for the CPU kernels (Highway, static dispatch: the build targets the host).
#pragma once

#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

namespace easel::cpu::vec {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
inline constexpr DF kDF;

// Each function here is accurate to about one or two ulp over the whole float range (checked
// by tests/test_ops_elementwise.cpp against double precision). Polynomial coefficients are our
// own near-minimax (Chebyshev) fits, made with mpmath.

// e^x. Highway's Exp (1 ulp) is only valid up to ln(FLT_MAX) and returns 0 for NaN; clamping
// keeps the result an honest +inf beyond that, and NaN stays NaN.
inline VF exp_f32(VF x) {
  const VF y = hn::Exp(kDF, hn::Min(x, hn::Set(kDF, 88.75f)));
  return hn::IfThenElse(hn::IsNaN(x), x, y);
}

// tanh x. Near zero, x + x^3 P(x^2) (fitted on |x| < 0.625); beyond, 1 - 2 / (e^2|x| + 1), whose
// cancellation is harmless once tanh x > 0.55.
inline VF tanh_f32(VF x) {
  const VF ax = hn::Abs(x);
  const VF s = hn::Mul(x, x);
  VF p = hn::Set(kDF, 0.0022927448161781423f);
  p = hn::MulAdd(p, s, hn::Set(kDF, -0.008343945515839152f));
  p = hn::MulAdd(p, s, hn::Set(kDF, 0.021768918651028210f));
  p = hn::MulAdd(p, s, hn::Set(kDF, -0.053959259577204543f));
  p = hn::MulAdd(p, s, hn::Set(kDF, 0.13333303556915742f));
  p = hn::MulAdd(p, s, hn::Set(kDF, -0.33333333172140362f));
  const VF small = hn::MulAdd(hn::Mul(x, s), p, x);
  const VF e = exp_f32(hn::Add(ax, ax));
  const VF large = hn::Sub(hn::Set(kDF, 1.0f), hn::Div(hn::Set(kDF, 2.0f), hn::Add(e, hn::Set(kDF, 1.0f))));
  return hn::IfThenElse(hn::Lt(ax, hn::Set(kDF, 0.625f)), small, hn::CopySign(large, x));
}

// e^-(s + s_lo) for s >= 0 (s_lo a small correction to s) without a subnormal result: when
// s > 80 the value returned is e^(44 - s - s_lo), i.e. the true one times e^44, and `scaled` is
// set; the caller multiplies by kExpNeg44 last, once nothing can underflow before the end.
// (A subnormal intermediate keeps only a few bits: 50 ulp lost in silu(-91) otherwise.)
// 44 - s is exact for s > 80: both are multiples of ulp(s) and the difference is no smaller.
inline constexpr float kExpNeg44 = 7.7811322411337965e-20f;

struct ScaledExp {
  VF value;
  hn::Mask<DF> scaled;
};

inline ScaledExp exp_neg_scaled(VF s, VF s_lo) {
  const auto scaled = hn::Gt(s, hn::Set(kDF, 80.0f));
  const VF e = exp_f32(hn::IfThenElse(scaled, hn::Sub(hn::Set(kDF, 44.0f), s), hn::Neg(s)));
  const VF lo = hn::IfThenElseZero(hn::IsFinite(s_lo), s_lo);  // s = inf leaves no finite correction
  return {hn::NegMulAdd(e, lo, e), scaled};                    // e^-(s + lo) = e^-s (1 - lo)
}

// m * sigmoid(v + v_lo), without overflow on either side: with e = e^-|v| <= 1,
//   v >= 0: m / (1 + e)       v < 0: m e / (1 + e)
// (the textbook 1 / (1 + e^-v) overflows to 0 for v < -88 where the true value is still normal).
// v_lo optionally extends v for arguments computed in higher precision.
inline VF mul_sigmoid_f32(VF m, VF v, VF v_lo = hn::Zero(kDF)) {
  const auto neg = hn::Lt(v, hn::Zero(kDF));
  const ScaledExp e = exp_neg_scaled(hn::Abs(v), hn::IfThenElse(neg, hn::Neg(v_lo), v_lo));
  const VF me = hn::Mul(m, e.value);
  const VF num = hn::IfThenElse(neg, hn::IfThenElse(e.scaled, hn::Mul(me, hn::Set(kDF, kExpNeg44)), me), m);
  // A scaled e is below e^-80: 1 + e is exactly 1.
  const VF den = hn::Add(hn::Set(kDF, 1.0f), hn::IfThenElseZero(hn::Not(e.scaled), e.value));
  return hn::Div(num, den);
}

inline VF sigmoid_f32(VF x) { return mul_sigmoid_f32(hn::Set(kDF, 1.0f), x); }
inline VF silu_f32(VF x) { return mul_sigmoid_f32(x, x); }

// x Φ(x) = x/2 (1 + erf z), z = x/√2, from two approximations of a = |z|:
//   erf a  = a P(a^2)                           (P fitted on a in [0, 1])
//   erfc a = e^(-a^2) t Q(t - 29/60), t = 2 / (2 + a)   (Q fits e^(a^2) erfc(a) / t on a in [0.5, 10];
//            dividing by t keeps Q away from zero, so Horner's rule does not cancel)
// Each side avoids cancellation: x >= 0 uses 1 + erf a below a = 1 and 2 - erfc a above; x < 0
// uses 1 - erf a below a = 0.5 and erfc a above. e^(-a^2) is so sensitive to its argument (its
// relative error is 2a^2 times that of a) that a^2 = x^2 / 2 is kept as an exact float pair.
inline VF gelu_erf_f32(VF x) {
  const VF one = hn::Set(kDF, 1.0f), half = hn::Set(kDF, 0.5f);
  // Beyond |x| = 15.5 the bracket is exactly 0 or 2; clamping keeps x^2 finite for x = inf.
  const VF ax = hn::Min(hn::Abs(x), hn::Set(kDF, 15.5f));
  const VF a = hn::Mul(ax, hn::Set(kDF, 0.70710678118654752f));
  const VF sq = hn::Mul(ax, ax);
  const VF s = hn::Mul(half, sq), s_lo = hn::Mul(half, hn::MulSub(ax, ax, sq));  // s + s_lo = a^2

  VF p = hn::Set(kDF, 0.000078758750626854883f);
  p = hn::MulAdd(p, s, hn::Set(kDF, -0.00080168642871658695f));
  p = hn::MulAdd(p, s, hn::Set(kDF, 0.0051890874234339740f));
  p = hn::MulAdd(p, s, hn::Set(kDF, -0.026854212010626412f));
  p = hn::MulAdd(p, s, hn::Set(kDF, 0.11283594715160218f));
  p = hn::MulAdd(p, s, hn::Set(kDF, -0.37612626666720331f));
  p = hn::MulAdd(p, s, hn::Set(kDF, 1.1283791658483509f));
  const VF erf_a = hn::Mul(a, p);

  const VF t = hn::Div(hn::Set(kDF, 2.0f), hn::Add(a, hn::Set(kDF, 2.0f)));
  const VF w = hn::Sub(t, hn::Set(kDF, 29.0f / 60.0f));
  VF q = hn::Set(kDF, -0.025484492979583481f);
  q = hn::MulAdd(q, w, hn::Set(kDF, -0.065005322736236035f));
  q = hn::MulAdd(q, w, hn::Set(kDF, 0.065053859164349179f));
  q = hn::MulAdd(q, w, hn::Set(kDF, 0.090511907759010482f));
  q = hn::MulAdd(q, w, hn::Set(kDF, -0.11323156592860045f));
  q = hn::MulAdd(q, w, hn::Set(kDF, -0.1629914345790906f));
  q = hn::MulAdd(q, w, hn::Set(kDF, 0.15694441810323453f));
  q = hn::MulAdd(q, w, hn::Set(kDF, 0.55137319618756997f));
  q = hn::MulAdd(q, w, hn::Set(kDF, 0.668653831479187f));
  q = hn::MulAdd(q, w, hn::Set(kDF, 0.49949325011591972f));
  q = hn::Mul(q, t);  // e^(a^2) erfc a
  const ScaledExp e = exp_neg_scaled(s, s_lo);

  const VF hx = hn::Mul(half, x);
  // x >= 0. A scaled e means erfc a < e^-80: 2 - erfc a is exactly 2.
  const VF erfc_a = hn::IfThenElseZero(hn::Not(e.scaled), hn::Mul(e.value, q));
  const VF pos = hn::Mul(hx, hn::IfThenElse(hn::Lt(a, one), hn::Add(one, erf_a), hn::Sub(hn::Set(kDF, 2.0f), erfc_a)));
  // x < 0: (x/2 Q) e^(-a^2), multiplied in an order that never passes through a subnormal.
  VF tail = hn::Mul(hn::Mul(hx, q), e.value);
  tail = hn::IfThenElse(e.scaled, hn::Mul(tail, hn::Set(kDF, kExpNeg44)), tail);
  tail = hn::IfThenElseZero(hn::Lt(hn::Abs(x), hn::Set(kDF, 15.5f)), tail);  // clamped: underflows to 0
  const VF neg = hn::IfThenElse(hn::Lt(a, half), hn::Mul(hx, hn::Sub(one, erf_a)), tail);
  return hn::IfThenElse(hn::Lt(x, hn::Zero(kDF)), neg, pos);
}

// x/2 (1 + tanh u) with u = √(2/π) (x + 0.044715 x³), written as x sigmoid(2u): the same
// function without the cancellation of 1 + tanh u for negative x. The result's relative error
// is |2u| times that of 2u, so 2u is evaluated in double and passed on as a float pair.
inline VF gelu_tanh_f32(VF x) {
  using DD = hn::Repartition<double, DF>;
  using DH = hn::Rebind<float, DD>;  // half a float vector: one float per double lane
  const DD dd;
  const DH dh;
  const auto two_u = [&](hn::Vec<DH> xh) {
    const auto xd = hn::PromoteTo(dd, xh);
    const auto inner = hn::MulAdd(hn::Mul(hn::Set(dd, 0.044715), xd), hn::Mul(xd, xd), xd);
    return hn::Mul(hn::Set(dd, 1.5957691216057307593), inner);  // 2 √(2/π)
  };
  const auto lo = two_u(hn::LowerHalf(dh, x)), hi = two_u(hn::UpperHalf(dh, x));
  const auto lo_f = hn::DemoteTo(dh, lo), hi_f = hn::DemoteTo(dh, hi);
  const VF v = hn::Combine(kDF, hi_f, lo_f);
  const VF v_lo = hn::Combine(kDF, hn::DemoteTo(dh, hn::Sub(hi, hn::PromoteTo(dd, hi_f))),
                              hn::DemoteTo(dh, hn::Sub(lo, hn::PromoteTo(dd, lo_f))));
  return mul_sigmoid_f32(x, v, v_lo);
}

}  // namespace easel::cpu::vec
