#include "models/sd_checkpoint.h"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/half.h"

namespace easel {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kUnetPrefix = "model.diffusion_model.";
constexpr std::string_view kVaePrefix = "first_stage_model.";
constexpr std::string_view kClipPrefix = "cond_stage_model.transformer.";  // SD1: transformers CLIPTextModel
constexpr std::string_view kOpenClipPrefix = "cond_stage_model.model.";    // SD2: open_clip

// Small tensors of any float dtype as f32 values (a bias, the noise schedule).
std::vector<float> to_floats(const Tensor& t) {
  std::vector<float> out;
  if (t.dtype() == DType::F32) return t.to_vector<float>();
  if (t.dtype() == DType::F64)
    for (double v : t.to_vector<double>()) out.push_back(float(v));
  if (t.dtype() == DType::F16)
    for (int16_t v : t.bitcast(DType::I16).to_vector<int16_t>()) out.push_back(f16_to_f32(uint16_t(v)));
  if (t.dtype() == DType::BF16)
    for (int16_t v : t.bitcast(DType::I16).to_vector<int16_t>()) out.push_back(bf16_to_f32(uint16_t(v)));
  return out;
}

float population_std(const std::vector<float>& v) {
  if (v.empty()) return 0;
  double mean = 0, var = 0;
  for (float x : v) mean += x;
  mean /= double(v.size());
  for (float x : v) var += (x - mean) * (x - mean);
  return float(std::sqrt(var / double(v.size())));
}

std::optional<int64_t> dim_of(const Checkpoint& ck, std::string_view name, int d) {
  const auto* item = ck.find(name);
  if (!item || int(item->entry->shape.size()) <= d) return std::nullopt;
  return item->entry->shape[d];
}

std::string variant_name(const SdCheckpointInfo& info) {
  std::string v = info.version == SdVersion::Sd1 ? "sd1" : "sd2";
  if (info.inpainting) return v + "-inpainting";
  if (info.prediction == Prediction::V) return v + "-v";
  return v;
}

// ComfyUI's rule for SD2 single files (supported_models.py, SD20.model_type): v-prediction
// training moved this bias far more than eps training did. A `v_pred` key marks v models of any version.
Prediction guess_prediction(const Checkpoint& ck, SdVersion version, bool inpainting) {
  if (ck.find("v_pred")) return Prediction::V;
  if (version != SdVersion::Sd2 || inpainting) return Prediction::Eps;
  const auto* bias = ck.find(std::string(kUnetPrefix) + "output_blocks.11.1.transformer_blocks.0.norm1.bias");
  if (bias && population_std(to_floats(ck.tensor(*bias))) > 0.09f) return Prediction::V;
  return Prediction::Eps;
}

// The first of the candidate files that exists in `dir`.
std::optional<fs::path> first_existing(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (std::error_code ec; fs::is_regular_file(dir / n, ec)) return dir / n;
  return std::nullopt;
}

Result<nlohmann::json> read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return Error(cat(path.string(), ": cannot open"));
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) return Error(cat(path.string(), ": not valid JSON"));
  return j;
}

}  // namespace

std::optional<SdCheckpointInfo> sd_recognize(const Checkpoint& ck) {
  const auto in_channels = dim_of(ck, std::string(kUnetPrefix) + "input_blocks.0.0.weight", 1);
  if (!in_channels) return std::nullopt;
  SdCheckpointInfo info;
  if (ck.find(std::string(kOpenClipPrefix) + "token_embedding.weight")) info.version = SdVersion::Sd2;
  else if (ck.find(std::string(kClipPrefix) + "text_model.embeddings.token_embedding.weight") ||
           ck.find(std::string(kClipPrefix) + "embeddings.token_embedding.weight"))
    info.version = SdVersion::Sd1;
  else
    return std::nullopt;  // SDXL (conditioner.embedders.*) and UNet-only files are other families
  info.inpainting = *in_channels == 9;
  info.prediction = guess_prediction(ck, info.version, info.inpainting);
  info.naming = SdNaming::Original;
  info.variant = variant_name(info);
  return info;
}

Result<SdCheckpoint> SdCheckpoint::open(const fs::path& path, const std::optional<fs::path>& vae_path) {
  SdCheckpoint sd;
  sd.path_ = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) return Error(cat(path.string(), ": no such file or folder"));

  if (fs::is_directory(path, ec)) {
    // diffusers layout
    const auto unet_file = first_existing(path / "unet", {"diffusion_pytorch_model.safetensors",
                                                          "diffusion_pytorch_model.fp16.safetensors",
                                                          "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"});
    const auto vae_file = first_existing(path / "vae", {"diffusion_pytorch_model.safetensors",
                                                        "diffusion_pytorch_model.fp16.safetensors",
                                                        "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"});
    const auto text_file = first_existing(path / "text_encoder", {"model.safetensors", "model.fp16.safetensors",
                                                                  "pytorch_model.bin", "pytorch_model.fp16.bin"});
    if (!unet_file || !text_file || (!vae_file && !vae_path))
      return Error(cat(path.string(), ": not a Stable Diffusion checkpoint folder (a diffusers folder has unet/, vae/ "
                                      "and text_encoder/ with their weights)"));
    for (const fs::path& f : {*unet_file, *text_file}) {
      EASEL_TRY(auto ck, Checkpoint::open(f));
      sd.checkpoints_.push_back(std::move(ck));
    }
    const Checkpoint& unet = sd.checkpoints_[0];
    const Checkpoint& text = sd.checkpoints_[1];
    sd.unet_ = tensors_under({&unet}, "");
    sd.text_encoder_ = tensors_under({&text}, "");
    const auto in_channels = dim_of(unet, "conv_in.weight", 1);
    const auto width = dim_of(text, "text_model.embeddings.token_embedding.weight", 1);
    if (!in_channels) return Error(cat(unet_file->string(), ": has no UNet input convolution 'conv_in.weight'"));
    if (!width) return Error(cat(text_file->string(), ": is not a CLIP text encoder (no token embedding)"));
    sd.info_.version = *width >= 1024 ? SdVersion::Sd2 : SdVersion::Sd1;
    sd.info_.inpainting = *in_channels == 9;
    sd.info_.naming = SdNaming::Diffusers;
    if (auto sched = path / "scheduler" / "scheduler_config.json"; fs::exists(sched, ec)) {
      EASEL_TRY(auto j, read_json(sched));
      if (j.value("prediction_type", std::string("epsilon")) == "v_prediction") sd.info_.prediction = Prediction::V;
    }
    sd.info_.variant = variant_name(sd.info_);
    if (!vae_path) {
      EASEL_TRY(auto ck, Checkpoint::open(*vae_file));
      sd.checkpoints_.push_back(std::move(ck));
      sd.vae_ = tensors_under({&sd.checkpoints_.back()}, "");
    }
  } else {
    EASEL_TRY(auto ck, Checkpoint::open(path));
    auto info = sd_recognize(ck);
    if (!info) {
      if (ck.find("conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight") ||
          ck.find("conditioner.embedders.1.model.token_embedding.weight"))
        return Error(cat(path.string(), ": is an SDXL checkpoint; this version of easel runs SD 1.x and 2.x"));
      return Error(cat(path.string(), ": is not a Stable Diffusion 1.x/2.x checkpoint (no '", kUnetPrefix,
                       "input_blocks.0.0.weight' with a text encoder beside it); `easel inspect` shows what it holds"));
    }
    sd.info_ = *info;
    sd.checkpoints_.push_back(std::move(ck));
    const Checkpoint* c = &sd.checkpoints_.back();
    sd.unet_ = tensors_under({c}, kUnetPrefix);
    sd.text_encoder_ = tensors_under({c}, sd.info_.version == SdVersion::Sd1 ? kClipPrefix : kOpenClipPrefix);
    if (!vae_path) sd.vae_ = tensors_under({c}, kVaePrefix);
    if (const auto* ac = c->find("alphas_cumprod")) sd.alphas_cumprod_ = to_floats(c->tensor(*ac));
    if (!vae_path && sd.vae_.empty())
      return Error(cat(path.string(), ": holds no VAE ('", kVaePrefix, "*'); give one with --vae"));
  }

  if (vae_path) {
    EASEL_TRY(auto ck, Checkpoint::open(*vae_path));
    sd.checkpoints_.push_back(std::move(ck));
    const Checkpoint* c = &sd.checkpoints_.back();
    // A VAE file may hold its tensors bare or under the single-file prefix; training leftovers
    // (the loss's discriminator, EMA bookkeeping) are dropped as A1111 drops them.
    const bool prefixed = !tensors_under({c}, kVaePrefix).empty();
    for (auto& t : tensors_under({c}, prefixed ? kVaePrefix : ""))
      if (t.name.rfind("loss.", 0) != 0 && t.name.rfind("model_ema.", 0) != 0) sd.vae_.push_back(std::move(t));
    if (sd.vae_.empty()) return Error(cat(vae_path->string(), ": holds no VAE tensors"));
  }
  return sd;
}

}  // namespace easel
