// PyTorch checkpoints (.ckpt, .pt, .pth) as torch.save writes them since PyTorch 1.6: a zip archive
// holding `<name>/data.pkl` (a pickle of the state dict whose tensors refer to storages by key),
// `<name>/data/<key>` (each storage's raw little-endian bytes, stored uncompressed and 64-byte
// aligned) and `<name>/version`. See torch/serialization.py (_save, _load).
//
// The pickle is read by io/pickle.h and nothing in it is ever executed: only the callables torch
// itself writes for a state dict are accepted (tensor rebuilders, OrderedDict, storage types, and a
// few inert ones such as numpy scalars that are read as opaque values); anything else, such as
// os.system, refuses the whole file, naming the callable. Tensors are zero-copy views into the
// mapped archive, strided where the checkpoint saved a non-contiguous view; every storage, offset,
// shape and stride is checked against the archive before the file is accepted.
//
// Tensor names: nested dicts are joined with "."; when the top level has a "state_dict" dict (as
// in Stable Diffusion checkpoints) only its entries are tensors. Top-level numbers and strings
// (global_step, epoch) become metadata.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/mapped_file.h"
#include "io/tensor_file.h"

namespace easel {

// A zip archive, or a pre-1.6 torch file (which parse() refuses with advice).
bool looks_like_torch_checkpoint(std::span<const std::byte> bytes);

class TorchCheckpointFile final : public TensorFile {
 public:
  static Result<TorchCheckpointFile> open(const std::filesystem::path& path);
  static Result<TorchCheckpointFile> parse(std::shared_ptr<const MappedFile> file);

  const std::filesystem::path& path() const override { return file_->path(); }
  // Entries in the order the checkpoint lists them.
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  const TensorEntry* find(std::string_view name) const;
  // Zero-copy, read-only view (the storage is copied only if its bytes are misaligned).
  Tensor tensor(const TensorEntry& entry) const override;
  Result<Tensor> get(std::string_view name) const;

  struct StorageSpan {
    uint64_t offset = 0;  // in the file
    uint64_t bytes = 0;
  };
  struct Layout {
    size_t storage = 0;        // index into storages_
    uint64_t byte_offset = 0;  // of the first element within the storage
    Shape strides;             // elements
  };

 private:
  std::shared_ptr<const MappedFile> file_;
  std::vector<StorageSpan> storages_;
  std::vector<TensorEntry> entries_;
  std::vector<Layout> layouts_;  // parallel to entries_
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace easel
