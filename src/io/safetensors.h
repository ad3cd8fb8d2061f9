// safetensors checkpoints: https://github.com/huggingface/safetensors (format spec).
// The file is mapped and every tensor is a zero-copy view into it. Opening validates everything
// before any tensor is handed out: header length and JSON, dtypes, shape x dtype size = byte
// range, ranges inside the file and not overlapping. A truncated or corrupt file gives an error
// naming the file, the tensor and the numbers.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/mapped_file.h"

namespace easel {

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  size_t begin = 0;  // byte range within the data block (after the header)
  size_t end = 0;
};

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> open(const std::filesystem::path& path);
  // Parses an already mapped file (the name in errors is the file's path).
  static Result<SafetensorsFile> parse(std::shared_ptr<const MappedFile> file);

  const std::filesystem::path& path() const { return file_->path(); }
  // Entries in the order of their data in the file.
  const std::vector<TensorEntry>& entries() const { return entries_; }
  const TensorEntry* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Zero-copy, read-only view of an entry (copied only if its bytes are misaligned for the dtype).
  Tensor tensor(const TensorEntry& entry) const;
  Result<Tensor> get(std::string_view name) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  size_t data_start_ = 0;
  std::vector<TensorEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A set of tensors from one or more safetensors files: a single file, or a sharded checkpoint
// given by its `*.safetensors.index.json` ({"weight_map": {tensor name: shard file}}).
class Checkpoint {
 public:
  static Result<Checkpoint> open(const std::filesystem::path& path);
  static Result<Checkpoint> open_files(const std::vector<std::filesystem::path>& files);

  struct Item {
    const SafetensorsFile* file;
    const TensorEntry* entry;
  };
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  const Item* find(std::string_view name) const;
  Tensor tensor(const Item& item) const { return item.file->tensor(*item.entry); }
  Result<Tensor> get(std::string_view name) const;
  size_t size() const { return items_.size(); }
  uint64_t total_bytes() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // The path it was opened from (a file or an index).
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Item, std::less<>> items_;
};

// Writes tensors (any strides; host) to a safetensors file, via a temporary file and a rename so
// that a failure never leaves a half-written file behind.
Status write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace easel
