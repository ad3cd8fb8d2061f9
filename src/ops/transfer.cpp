// Moving tensors between the host and the context's device, and the device check's message.
#include "ops/device_check.h"
#include "ops/ops.h"

namespace easel::ops {
namespace {

// Every transfer goes between the host and one device, run by that device's backend.
std::string how_to_move(Device from, Device to) {
  if (from.is_cpu()) return "move it with ops::to_device on this context";
  if (to.is_cpu()) return cat("bring it to the host with ops::to_host on a context of ", from.str());
  return cat("move it through the host: ops::to_host on a context of ", from.str(),
             ", then ops::to_device on this one");
}

}  // namespace

void refuse_device(const Context& ctx, const char* op, const char* operand, const Tensor& t) {
  const Device here = ctx.backend().device();
  throw Exception(cat(op, ": ", operand, " ", t.describe(), " is on ", t.device().str(), " but this context runs on ",
                      here.str(), "; ", how_to_move(t.device(), here)));
}

Tensor to_device(Context& ctx, const Tensor& x) {
  EASEL_CHECK(x.defined(), "to_device: input is undefined");
  const Device here = ctx.backend().device();
  if (x.device() == here) return x;
  EASEL_CHECK(x.device().is_cpu(), "to_device: ", x.describe(), " is on ", x.device().str(),
              " and this context runs on ", here.str(), "; ", how_to_move(x.device(), here));
  return ctx.backend().upload(ctx, x);
}

Tensor to_host(Context& ctx, const Tensor& x) {
  EASEL_CHECK(x.defined(), "to_host: input is undefined");
  if (x.device().is_cpu()) return x;
  const Device here = ctx.backend().device();
  EASEL_CHECK(x.device() == here, "to_host: ", x.describe(), " is on ", x.device().str(), " but this context runs on ",
              here.str(), "; use a context of ", x.device().str());
  return ctx.backend().download(ctx, x);
}

}  // namespace easel::ops
