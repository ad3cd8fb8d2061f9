// The CPU backend: the reference every other backend is tested against. GEMM and convolution go
// through oneDNN (it beat OpenBLAS, see gemm.cpp); the rest are our own kernels (Highway SIMD), parallel on the
// context's thread pool. Each group of methods is implemented in its own file.
#pragma once

#include "backends/backend.h"

namespace easel {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  ~CpuBackend() override;
  const char* name() const override { return "cpu"; }

  // cpu_backend.cpp: the CPU is the host, so transfers are copies and weights are used in place.
  Tensor upload(Context& ctx, const Tensor& host) override;
  Tensor download(Context& ctx, const Tensor& x) override;
  Tensor adopt_weight(Context& ctx, const Tensor& host) override;

  // gemm.cpp
  void linear(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) override;
  void matmul(Context& ctx, const Tensor& a, const Tensor& b, float alpha, Tensor& out) override;
  // conv.cpp
  void conv2d(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
              Tensor& out) override;
  // attention.cpp
  void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                 const AttentionParams& p, Tensor& out) override;
  // norm.cpp
  void group_norm(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias, int groups, float eps,
                  Tensor& out) override;
  void layer_norm(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                  Tensor& out) override;
  void rms_norm(Context& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  void softmax(Context& ctx, const Tensor& x, Tensor& out) override;
  // elementwise.cpp
  void unary(Context& ctx, UnaryOp op, const Tensor& x, float a, float b, Tensor& out) override;
  void binary(Context& ctx, BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  // layout.cpp
  void upsample_nearest2d(Context& ctx, const Tensor& x, Tensor& out) override;
  void copy(Context& ctx, const Tensor& src, Tensor& dst) override;
  void fill(Context& ctx, Tensor& dst, double value) override;

  // State private to the kernels (oneDNN engine/stream, primitive and weight caches).
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace easel
