// One file of named tensors, whatever its format (safetensors, a torch .ckpt/.pt archive). Opening
// validates the whole file; afterwards every entry can be turned into a tensor without failing.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace easel {

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  // Where the data is: for safetensors the byte range within the data block (after the header);
  // for a torch archive the file offset of the first element, and end - begin = the tensor's bytes.
  size_t begin = 0;
  size_t end = 0;
};

class TensorFile {
 public:
  virtual ~TensorFile() = default;
  virtual const std::filesystem::path& path() const = 0;
  virtual const std::vector<TensorEntry>& entries() const = 0;
  virtual const std::map<std::string, std::string>& metadata() const = 0;
  // Zero-copy, read-only view of one of this file's entries.
  virtual Tensor tensor(const TensorEntry& entry) const = 0;

 protected:
  TensorFile() = default;
  TensorFile(const TensorFile&) = default;
  TensorFile(TensorFile&&) = default;
  TensorFile& operator=(const TensorFile&) = default;
  TensorFile& operator=(TensorFile&&) = default;
};

}  // namespace easel
