// Weights of one model under easel's naming, and the loader that fills a model's typed members
// from them. A family's name table turns a checkpoint's naming (original, diffusers, GGUF) into
// ours once, when the WeightMap is built; model code sees one naming only.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

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

// Collects every missing, mis-shaped and unexpected tensor, so that one error lists them all.
class WeightLoader {
 public:
  WeightLoader(const WeightMap& weights, std::string model_name)
      : weights_(weights), model_name_(std::move(model_name)) {}

  // The tensor `name` with exactly `shape` (any float dtype). On a problem, records it and
  // returns an undefined tensor; finish() reports.
  Tensor take(const std::string& name, const Shape& shape);
  bool has(const std::string& name) const { return weights_.find(name) != nullptr; }
  // Ok when every take() succeeded and (unless allow_unused) every weight was taken.
  Status finish(bool allow_unused = false) const;

 private:
  const WeightMap& weights_;
  std::string model_name_;
  std::set<std::string> taken_;
  std::vector<std::string> problems_;
};

}  // namespace easel
