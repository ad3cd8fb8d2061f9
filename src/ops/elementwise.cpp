#include "ops/ops.h"

namespace easel::ops {

Tensor relu(Context&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor silu(Context&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor gelu(Context&, const Tensor&, bool) {
  throw Exception("not implemented yet");
}

Tensor tanh(Context&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor sigmoid(Context&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor exp(Context&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor sqrt(Context&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor affine(Context&, const Tensor&, float, float) {
  throw Exception("not implemented yet");
}

Tensor clamp(Context&, const Tensor&, float, float) {
  throw Exception("not implemented yet");
}

void relu_(Context&, Tensor&) {
  throw Exception("not implemented yet");
}

void silu_(Context&, Tensor&) {
  throw Exception("not implemented yet");
}

Tensor add(Context&, const Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor sub(Context&, const Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor mul(Context&, const Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor div(Context&, const Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor maximum(Context&, const Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

Tensor minimum(Context&, const Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

void add_(Context&, Tensor&, const Tensor&) {
  throw Exception("not implemented yet");
}

}  // namespace easel::ops
