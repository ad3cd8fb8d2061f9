#include "models/weights.h"

#include "backends/backend.h"

namespace easel {

Status WeightMap::add(const std::string& name, Tensor tensor, std::string source) {
  auto [it, inserted] = entries_.emplace(name, Entry{std::move(tensor), source});
  if (!inserted) return Error(cat("both ", it->second.source, " and ", source, " give weight '", name, "'"));
  return {};
}

const WeightMap::Entry* WeightMap::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

Tensor place_weight(Context& ctx, const Tensor& host) {
  EASEL_CHECK(host.device().is_cpu(), "place_weight: ", host.describe(), " is on ", host.device().str(),
              ", not in host memory");
  return ctx.backend().adopt_weight(ctx, host);
}

Tensor WeightLoader::take(const std::string& name, const Shape& shape) {
  const WeightMap::Entry* e = weights_.find(name);
  if (!e) {
    problems_.push_back(cat("missing ", name, " ", shape.str()));
    return {};
  }
  taken_.insert(name);
  if (!(e->tensor.shape() == shape)) {
    problems_.push_back(cat(e->source, " is ", e->tensor.shape().str(), ", expected ", shape.str()));
    return {};
  }
  if (!dtype_is_float(e->tensor.dtype())) {
    problems_.push_back(cat(e->source, " is ", dtype_name(e->tensor.dtype()), ", expected a float type"));
    return {};
  }
  return ctx_ ? place_weight(*ctx_, e->tensor) : e->tensor;
}

Status WeightLoader::finish(bool allow_unused) const {
  std::vector<std::string> problems = problems_;
  if (!allow_unused)
    for (const auto& [name, entry] : weights_.entries())
      if (!taken_.count(name)) problems.push_back(cat("unexpected ", entry.source));
  if (problems.empty()) return {};
  std::string msg = cat(model_name_, ": the weights do not fit (", problems.size(), " problem",
                        problems.size() > 1 ? "s" : "", "):");
  const size_t shown = std::min<size_t>(problems.size(), 12);
  for (size_t i = 0; i < shown; ++i) msg += "\n  " + problems[i];
  if (shown < problems.size()) msg += cat("\n  ... and ", problems.size() - shown, " more");
  return Error(msg);
}

std::vector<SourceTensor> tensors_under(const std::vector<const Checkpoint*>& checkpoints, std::string_view prefix) {
  std::vector<SourceTensor> out;
  for (const Checkpoint* ck : checkpoints)
    for (const std::string& name : ck->names())
      if (std::string_view(name).substr(0, prefix.size()) == prefix)
        out.push_back({name.substr(prefix.size()), ck->tensor(*ck->find(name)),
                       cat(ck->path().filename().string(), ": ", name)});
  return out;
}

}  // namespace easel
