// The ops model code calls. Each checks its arguments (throwing easel::Exception with a readable
// message), allocates the output from the context and runs on the context's backend. Activations
// are f32; weights may stay in their stored f16/bf16 (linear, conv2d, norms' affine params).
// Names and semantics follow PyTorch so a model file reads like its reference. Every tensor
// operand must live on the context's device (a clear error otherwise): moving one is explicit.
#pragma once

#include <span>
#include <vector>

#include "backends/backend.h"
#include "core/context.h"
#include "core/tensor.h"

namespace easel::ops {

// --- linear algebra ---
// x [..., in] · w[out, in]ᵀ + bias[out] -> [..., out]   (torch.nn.functional.linear)
Tensor linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias = {});
// [..., M, K] · [..., K, N] -> [..., M, N] with batch broadcasting (torch.matmul for >= 2-d)
Tensor matmul(Context& ctx, const Tensor& a, const Tensor& b, float alpha = 1.0f);
// torch.nn.functional.conv2d
Tensor conv2d(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias = {}, const Conv2dParams& p = {});

// --- normalisation ---
Tensor group_norm(Context& ctx, const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                  float eps = 1e-5f);
Tensor layer_norm(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);
Tensor rms_norm(Context& ctx, const Tensor& x, const Tensor& weight, float eps = 1e-6f);
Tensor softmax(Context& ctx, const Tensor& x, int dim = -1);

// q [B, H, Nq, D], k [B, H, Nk, D], v [B, H, Nk, Dv] -> [B, H, Nq, Dv]
// (torch.nn.functional.scaled_dot_product_attention); mask optional, additive, broadcastable.
Tensor attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = {},
                 const AttentionParams& p = {});

// --- elementwise ---
Tensor relu(Context& ctx, const Tensor& x);
Tensor silu(Context& ctx, const Tensor& x);
Tensor gelu(Context& ctx, const Tensor& x, bool tanh_approximation = false);
Tensor tanh(Context& ctx, const Tensor& x);
Tensor sigmoid(Context& ctx, const Tensor& x);
Tensor exp(Context& ctx, const Tensor& x);
Tensor sqrt(Context& ctx, const Tensor& x);
Tensor affine(Context& ctx, const Tensor& x, float scale, float shift);  // x * scale + shift
Tensor clamp(Context& ctx, const Tensor& x, float lo, float hi);
// In-place variants for activations the model owns (saves an allocation in hot loops).
void relu_(Context& ctx, Tensor& x);
void silu_(Context& ctx, Tensor& x);

// Broadcasting binary ops (numpy rules).
Tensor add(Context& ctx, const Tensor& a, const Tensor& b);
Tensor sub(Context& ctx, const Tensor& a, const Tensor& b);
Tensor mul(Context& ctx, const Tensor& a, const Tensor& b);
Tensor div(Context& ctx, const Tensor& a, const Tensor& b);
Tensor maximum(Context& ctx, const Tensor& a, const Tensor& b);
Tensor minimum(Context& ctx, const Tensor& a, const Tensor& b);
// a += b (b broadcast to a's shape).
void add_(Context& ctx, Tensor& a, const Tensor& b);

// --- layout ---
Tensor upsample_nearest2d(Context& ctx, const Tensor& x, int scale);
Tensor concat(Context& ctx, std::span<const Tensor> xs, int dim);
Tensor contiguous(Context& ctx, const Tensor& x);  // returns x itself when already contiguous
Tensor permute(Context& ctx, const Tensor& x, std::initializer_list<int> dims);  // contiguous result
Tensor cast(Context& ctx, const Tensor& x, DType dtype);
// Pads the last dimensions: pads = {left, right, top, bottom, ...} as torch.nn.functional.pad.
Tensor pad(Context& ctx, const Tensor& x, std::span<const int64_t> pads, float value = 0.0f);
Tensor zeros(Context& ctx, const Shape& shape, DType dtype = DType::F32);
Tensor full(Context& ctx, const Shape& shape, float value, DType dtype = DType::F32);
void copy_(Context& ctx, const Tensor& src, Tensor& dst);

// --- devices ---
// x on the context's device: x itself when it is there already (zero copy; always so on the CPU),
// else a contiguous copy uploaded from the host. A tensor on another device must come through the
// host (to_host on a context of its device), as torch's .to(device) does.
Tensor to_device(Context& ctx, const Tensor& x);
// x in host memory: x itself when it is there already, else a contiguous copy downloaded from the
// context's device (x must be on it). For results leaving the engine (images, previews, tests).
Tensor to_host(Context& ctx, const Tensor& x);

}  // namespace easel::ops
