// The one place that answers "which model is this?", from tensor names and shapes only (never
// from a file name). Each family contributes a recogniser; adding a family is one line here.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"

namespace easel {

struct ModelKind {
  std::string family;   // "taesd"
  std::string variant;  // "taef2"
  std::string detail;   // "encoder + decoder, 32 latent channels"
};

std::optional<ModelKind> recognize(const Checkpoint& checkpoint);

// Opens what a user points at: a .safetensors or PyTorch .ckpt/.pt/.pth file, a sharded
// *.safetensors.index.json, or a folder (every checkpoint in it, sorted by name; shards listed by
// an index count once).
Result<std::vector<Checkpoint>> open_checkpoints(const std::filesystem::path& path);

}  // namespace easel
