// Checkpoint: the set of tensors a model loads, from one file or a sharded set. The format is
// recognised by the file's first bytes, not its name: a zip archive is a PyTorch checkpoint
// (.ckpt/.pt/.pth, read without running its pickle, see io/torch_checkpoint.h), anything else is
// safetensors; a `*.safetensors.index.json` ({"weight_map": {tensor name: shard file}}) names shards.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/tensor_file.h"

namespace easel {

// Opens one file of tensors of either format.
Result<std::unique_ptr<TensorFile>> open_tensor_file(const std::filesystem::path& path);

class Checkpoint {
 public:
  static Result<Checkpoint> open(const std::filesystem::path& path);
  static Result<Checkpoint> open_files(const std::vector<std::filesystem::path>& files);

  struct Item {
    const TensorFile* file;
    const TensorEntry* entry;
  };
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  const Item* find(std::string_view name) const;
  Tensor tensor(const Item& item) const { return item.file->tensor(*item.entry); }
  Result<Tensor> get(std::string_view name) const;
  size_t size() const { return items_.size(); }
  uint64_t total_bytes() const;
  const std::vector<std::unique_ptr<TensorFile>>& files() const { return files_; }
  // The path it was opened from (a file or an index).
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::unique_ptr<TensorFile>> files_;
  std::map<std::string, Item, std::less<>> items_;
};

}  // namespace easel
