// Weights of one model under easel's naming, and the loader that fills a model's typed members
// from them. A family's name table turns a checkpoint's naming (original, diffusers, GGUF) into
// ours once, when the WeightMap is built; model code sees one naming only. Every weight a model
// takes is placed on its context's device (place_weight), so model files do not change when a
// device other than the CPU runs them.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/checkpoint.h"

namespace easel {

class WeightMap {
 public:
  struct Entry {
    Tensor tensor;
    std::string source;  // "taef2_decoder.safetensors: 3.conv.0.weight", for messages
  };
  // Fails when two checkpoint tensors map to the same name.
  Status add(const std::string& name, Tensor tensor, std::string source);
  const Entry* find(const std::string& name) const;
  const std::map<std::string, Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  std::map<std::string, Entry> entries_;
};

// A checkpoint tensor before a family's name table has renamed it. A single-file SD checkpoint
// holds several models under prefixes ("model.diffusion_model.", "first_stage_model.", ...); a
// pipeline hands each family the tensors under its prefix, the prefix removed.
struct SourceTensor {
  std::string name;    // as stored, without the component prefix
  Tensor tensor;
  std::string source;  // "v1-5.safetensors: model.diffusion_model.out.2.weight", for messages
};
// Every tensor of `checkpoints` whose name starts with `prefix` (all of them for ""), in name order.
std::vector<SourceTensor> tensors_under(const std::vector<const Checkpoint*>& checkpoints, std::string_view prefix);

// A checkpoint's weight (host memory, usually a view of the mapped file) on ctx's device, through
// the backend's adopt_weight: on the CPU the view itself (zero copy), on a device one upload.
Tensor place_weight(Context& ctx, const Tensor& host);

// Collects every missing, mis-shaped and unexpected tensor, so that one error lists them all.
class WeightLoader {
 public:
  // Weights take() returns are placed on ctx's device.
  WeightLoader(Context& ctx, const WeightMap& weights, std::string model_name)
      : ctx_(&ctx), weights_(weights), model_name_(std::move(model_name)) {}
  // Checks names and shapes and places nothing: take() returns the checkpoint's host views. For
  // recognising a checkpoint's family from its tensors, where nothing runs.
  static WeightLoader check_only(const WeightMap& weights, std::string model_name) {
    return WeightLoader(nullptr, weights, std::move(model_name));
  }

  // The tensor `name` with exactly `shape` (any float dtype), on the context's device. On a
  // problem, records it and returns an undefined tensor; finish() reports.
  Tensor take(const std::string& name, const Shape& shape);
  bool has(const std::string& name) const { return weights_.find(name) != nullptr; }
  // Ok when every take() succeeded and (unless allow_unused) every weight was taken.
  Status finish(bool allow_unused = false) const;

 private:
  WeightLoader(Context* ctx, const WeightMap& weights, std::string model_name)
      : ctx_(ctx), weights_(weights), model_name_(std::move(model_name)) {}

  Context* ctx_;  // null: check only
  const WeightMap& weights_;
  std::string model_name_;
  std::set<std::string> taken_;
  std::vector<std::string> problems_;
};

}  // namespace easel
