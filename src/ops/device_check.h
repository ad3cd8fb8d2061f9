// The one check every op front end makes of its tensor operands: they live on the device the
// context runs on. A backend can then assume it (backends/backend.h), and a tensor left on the
// wrong device fails with a message that says which op, which operand and how to fix it, before
// any backend reads memory it cannot reach. Costs two loads and a compare per operand.
#pragma once

#include "backends/backend.h"
#include "core/context.h"
#include "core/tensor.h"

namespace easel::ops {

[[noreturn]] void refuse_device(const Context& ctx, const char* op, const char* operand, const Tensor& t);

// Undefined tensors (an absent bias) pass: their own checks say whether they may be absent.
inline void check_device(const Context& ctx, const char* op, const char* operand, const Tensor& t) {
  if (t.defined() && !(t.device() == ctx.backend().device())) [[unlikely]]
    refuse_device(ctx, op, operand, t);
}

}  // namespace easel::ops
