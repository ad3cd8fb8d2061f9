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
#include "io/checkpoint.h"  // Checkpoint, for the users that include this header
#include "io/mapped_file.h"
#include "io/tensor_file.h"

namespace easel {

class SafetensorsFile final : public TensorFile {
 public:
  static Result<SafetensorsFile> open(const std::filesystem::path& path);
  // Parses an already mapped file (the name in errors is the file's path).
  static Result<SafetensorsFile> parse(std::shared_ptr<const MappedFile> file);

  const std::filesystem::path& path() const override { return file_->path(); }
  // Entries in the order of their data in the file.
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  const TensorEntry* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }

  // Zero-copy, read-only view of an entry (copied only if its bytes are misaligned for the dtype).
  Tensor tensor(const TensorEntry& entry) const override;
  Result<Tensor> get(std::string_view name) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  size_t data_start_ = 0;
  std::vector<TensorEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any strides; host) to a safetensors file, via a temporary file and a rename so
// that a failure never leaves a half-written file behind.
Status write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace easel
