// The models a server offers: what is in --models-dir, in SD.Next's / A1111's folders
// (Stable-diffusion or checkpoints, VAE, VAE-approx, Lora, embeddings, LLM), scanned at start and on
// refresh. VAE-approx holds A1111's live preview decoders: TAESD decoders as .safetensors files
// (taesd_decoder.safetensors, ...) or diffusers AutoencoderTiny folders (config.json + weights).
// A checkpoint is a .safetensors / .ckpt / .pt / .gguf file or a diffusers folder (model_index.json).
//
// Load options a checkpoint's tensors cannot tell come from an optional sidecar
// `<checkpoint>.easel.json` (pipelines/sd_load_options.h).
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace easel::server {

struct ModelEntry {
  std::string name;                // file name relative to its folder ("sd15.safetensors")
  std::string title;               // A1111's title: "sd15.safetensors [0123456789]" once hashed, else the name
  std::string model_name;          // stem: "sd15"
  std::filesystem::path path;
  std::string hash;                // A1111 short hash (10 hex), computed on first load
};

class ModelCatalog {
 public:
  explicit ModelCatalog(std::filesystem::path models_dir);

  void refresh();  // rescans the folders
  std::vector<ModelEntry> checkpoints() const;
  std::vector<ModelEntry> vaes() const;
  std::vector<ModelEntry> vae_approx() const;  // candidate preview decoders, by name
  // By title, name, stem or short hash, as A1111's sd_model_checkpoint accepts them.
  std::optional<ModelEntry> find_checkpoint(const std::string& key) const;
  std::optional<ModelEntry> find_vae(const std::string& key) const;
  void set_hash(const std::filesystem::path& path, const std::string& hash);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  mutable std::mutex mutex_;
  std::vector<ModelEntry> checkpoints_, vaes_, vae_approx_;
};

}  // namespace easel::server
