#include "models/registry.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "models/sd_checkpoint.h"
#include "models/clip_text.h"
#include "models/taesd.h"
#include "models/vae_kl.h"

namespace easel {
namespace {

std::optional<ModelKind> recognize_taesd(const Checkpoint& ck) {
  auto parts = taesd_recognize(ck);
  if (!parts) return std::nullopt;
  std::string what = parts->encoder && parts->decoder ? "encoder + decoder" : parts->encoder ? "encoder" : "decoder";
  return ModelKind{"taesd", parts->config.variant,
                   cat("tiny autoencoder ", what, ", ", parts->config.latent_channels, " latent channels")};
}

std::optional<ModelKind> recognize_sd(const Checkpoint& ck) {
  auto info = sd_recognize(ck);
  if (!info) return std::nullopt;
  std::string detail = info->version == SdVersion::Sd1 ? "Stable Diffusion 1.x" : "Stable Diffusion 2.x";
  if (info->inpainting) detail += " inpainting (9-channel UNet)";
  detail += info->prediction == Prediction::V ? ", v-prediction" : ", eps-prediction";
  return ModelKind{"stable-diffusion", info->variant, detail};
}

std::optional<ModelKind> recognize_clip_text(const Checkpoint& ck) {
  auto c = clip_text_recognize(ck);
  if (!c) return std::nullopt;
  return ModelKind{"clip_text", clip_text_variant(*c),
                   cat("CLIP text encoder (", c->naming == ClipNaming::OpenClip ? "open_clip" : "transformers",
                       " naming), width ", c->width, ", ", c->layers, " layers, vocabulary ", c->vocab_size,
                       c->projection_dim ? cat(", projection ", c->projection_dim) : std::string())};
}

std::optional<ModelKind> recognize_vae_kl(const Checkpoint& ck) {
  bool encoder = false, decoder = false;
  auto config = vae_kl_recognize(ck, &encoder, &decoder);
  if (!config) return std::nullopt;
  std::string levels;
  for (int ch : config->channels) levels += cat(levels.empty() ? "" : ", ", ch);
  std::string what = encoder && decoder ? "encoder + decoder" : encoder ? "encoder" : "decoder";
  // SD 1.x/2.x and SDXL VAEs share one architecture (only the weights and scaling_factor differ).
  return ModelKind{"vae_kl", config->latent_channels == 4 ? "sd/sdxl" : cat(config->latent_channels, "ch"),
                   cat("AutoencoderKL ", what, ", ", config->latent_channels, " latent channels, levels ", levels)};
}

using Recognizer = std::optional<ModelKind> (*)(const Checkpoint&);
constexpr Recognizer kRecognizers[] = {
    recognize_taesd,
    recognize_sd,
    recognize_clip_text,
    recognize_vae_kl,
};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::optional<ModelKind> recognize(const Checkpoint& checkpoint) {
  for (Recognizer r : kRecognizers)
    if (auto kind = r(checkpoint)) return kind;
  return std::nullopt;
}

Result<std::vector<Checkpoint>> open_checkpoints(const std::filesystem::path& path) {
  std::vector<Checkpoint> out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Error(cat(path.string(), ": no such file or folder"));
  if (!std::filesystem::is_directory(path, ec)) {
    EASEL_TRY(auto ck, Checkpoint::open(path));
    out.push_back(std::move(ck));
    return out;
  }
  std::vector<std::filesystem::path> indexes, files;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    const std::string name = e.path().filename().string();
    if (ends_with(name, ".safetensors.index.json")) indexes.push_back(e.path());
    else if (ends_with(name, ".safetensors") || ends_with(name, ".ckpt") || ends_with(name, ".pt") ||
             ends_with(name, ".pth"))
      files.push_back(e.path());
  }
  if (ec) return Error(cat(path.string(), ": cannot list the folder: ", ec.message()));
  std::sort(indexes.begin(), indexes.end());
  std::sort(files.begin(), files.end());
  std::set<std::filesystem::path> sharded;
  for (const auto& index : indexes) {
    EASEL_TRY(auto ck, Checkpoint::open(index));
    for (const auto& f : ck.files()) sharded.insert(f->path());
    out.push_back(std::move(ck));
  }
  for (const auto& f : files) {
    if (sharded.count(f)) continue;
    EASEL_TRY(auto ck, Checkpoint::open(f));
    out.push_back(std::move(ck));
  }
  if (out.empty()) return Error(cat(path.string(), ": the folder holds no checkpoint (.safetensors, .ckpt, .pt, .pth)"));
  return out;
}

}  // namespace easel
