// The interface every compute backend implements. Model code never sees it: it calls the op
// front ends in ops/ops.h, which check shapes and dtypes once, allocate the output and call the
// backend of the context. So a backend method may assume its arguments are valid:
//   - activations are f32 (weights may be f32, f16 or bf16 where noted);
//   - `out` is allocated, contiguous, of the right shape, and does not alias an input
//     unless the method says so;
//   - inputs may be any strided view unless the method says "contiguous";
//   - every tensor argument lives on this backend's device (the front ends refuse others, see
//     ops/device_check.h), except where a transfer method below says "host".
//
// Devices: a backend runs on one device, fixed when it is made. Tensors reach it from the host
// through the transfer methods (ops::to_device / ops::to_host, and adopt_weight for a
// checkpoint's weights), always between the host and this device: a backend never needs to know
// another device's memory. The CPU is the host, so its transfers are plain copies.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace easel {

enum class UnaryOp {
  Relu,
  Silu,
  GeluErf,   // 0.5 x (1 + erf(x / sqrt 2)), torch's default
  GeluTanh,  // the tanh approximation
  Tanh,
  Sigmoid,
  Exp,
  Sqrt,
  Affine,  // a * x + b
  Clamp,   // min(max(x, a), b)
};

enum class BinaryOp { Add, Sub, Mul, Div, Max, Min };

struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;  // zero padding on both sides
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
  bool relu = false;  // apply ReLU to the output in the same pass (an explicit fusion)
};

struct AttentionParams {
  float scale = 0.0f;  // 0: 1 / sqrt(head_dim)
  bool causal = false; // query i sees keys j <= i + (Nk - Nq)
};

class Backend {
 public:
  explicit Backend(Device device) : device_(device) {}
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // Not virtual: every op front end compares it with each operand's device, so it must cost one load.
  Device device() const { return device_; }
  virtual const char* name() const = 0;

  // --- transfers between the host and this device ---
  // A contiguous copy of `host` (host memory, any strides, any dtype) on this device, from ctx's
  // allocator. A CUDA backend copies host to device on the context's stream.
  virtual Tensor upload(Context& ctx, const Tensor& host) = 0;
  // A contiguous host copy of `x` (on this device, any strides). A CUDA backend copies device to
  // host, into pinned memory of its own if it likes, and waits for the copy.
  virtual Tensor download(Context& ctx, const Tensor& x) = 0;
  // A weight of a checkpoint (host memory, usually a read-only view of the mapped file) made
  // usable on this device for as long as the returned tensor lives. Called once per weight when a
  // model loads (models/weights.h). The CPU returns `host` itself: zero copy, the weights stay in
  // the page cache. A CUDA backend uploads it once, into memory it keeps for weights rather than
  // the activation allocator, and may convert it to a layout its kernels prefer.
  virtual Tensor adopt_weight(Context& ctx, const Tensor& host) = 0;

  // out[M, N] = x[M, K] · w[N, K]ᵀ + bias[N]. x contiguous f32; w contiguous f32/f16/bf16 (never
  // inflated to a full f32 copy); bias optional, f32/f16/bf16.
  virtual void linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) = 0;
  // out[b, M, N] = alpha · a[b, M, K] · b[b, K, N]; a and b are 3-d views (batch stride may be 0).
  virtual void matmul(Context& ctx, const Tensor& a, const Tensor& b, float alpha, Tensor& out) = 0;
  // x [N, C, H, W] f32; w [O, C/groups, kh, kw] f32/f16/bf16; bias [O] optional; out [N, O, Ho, Wo].
  virtual void conv2d(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                      Tensor& out) = 0;

  // x [N, C, *]: normalise over each group of C/groups channels and all of *; affine per channel.
  virtual void group_norm(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias, int groups,
                          float eps, Tensor& out) = 0;
  // Normalise over the last dimension; weight/bias [D] optional.
  virtual void layer_norm(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                          Tensor& out) = 0;
  virtual void rms_norm(Context& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // Softmax over the last dimension.
  virtual void softmax(Context& ctx, const Tensor& x, Tensor& out) = 0;
  // q [B, H, Nq, D], k [B, H, Nk, D], v [B, H, Nk, Dv] (strided views), mask optional additive f32
  // broadcast view [B, H, Nq, Nk]; out [B, H, Nq, Dv]. Computed in tiles with an online softmax:
  // memory O(tile), never the full Nq x Nk matrix.
  virtual void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const AttentionParams& p, Tensor& out) = 0;

  // Elementwise. `out` may alias `x` (in place). a, b parameterise Affine and Clamp.
  virtual void unary(Context& ctx, UnaryOp op, const Tensor& x, float a, float b, Tensor& out) = 0;
  // a and b are already broadcast to out's shape (stride-0 views). `out` may alias a.
  virtual void binary(Context& ctx, BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // x [N, C, H, W] -> out [N, C, H*sh, W*sw], nearest neighbour.
  virtual void upsample_nearest2d(Context& ctx, const Tensor& x, Tensor& out) = 0;
  // dst = src element by element (same shape), converting between f32/f16/bf16/f64 and integer
  // types; both may be strided views (dst must not be read-only). Backs contiguous, cast,
  // permute, concat and pad.
  virtual void copy(Context& ctx, const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Context& ctx, Tensor& dst, double value) = 0;

 private:
  Device device_;
};

}  // namespace easel
