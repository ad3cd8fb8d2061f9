// A Stable Diffusion 1.x / 2.x checkpoint as users have them, taken apart into its three models:
//
//   original single file (.safetensors / .ckpt)      diffusers folder
//   model.diffusion_model.*        -> UNet            unet/diffusion_pytorch_model[.fp16].safetensors
//   first_stage_model.*            -> VAE             vae/diffusion_pytorch_model[.fp16].safetensors
//   cond_stage_model.transformer.* -> CLIP ViT-L (SD1)  text_encoder/model[.fp16].safetensors
//   cond_stage_model.model.*       -> OpenCLIP ViT-H (SD2)
//
// The version and variant come from tensor names and shapes (never the file name): the text
// encoder's naming and width tell SD1 from SD2, the UNet's input channels tell the inpainting
// models (9) from the others (4). Whether an SD2 model predicts v (the 768-v models) or eps is not
// visible in shapes: a diffusers folder says so in scheduler/scheduler_config.json; for single files
// we use ComfyUI's rule (a `v_pred` key, or the spread of one bias that v-training moved) unless the
// user says otherwise.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/weights.h"
#include "models/prediction.h"

namespace easel {

enum class SdVersion { Sd1, Sd2 };
enum class SdNaming { Original, Diffusers };  // of the UNet and VAE tensors

struct SdCheckpointInfo {
  SdVersion version = SdVersion::Sd1;
  bool inpainting = false;  // 9-channel UNet input: latents + mask + masked-image latents
  Prediction prediction = Prediction::Eps;
  SdNaming naming = SdNaming::Original;
  std::string variant;  // "sd1", "sd1-inpainting", "sd2", "sd2-v", "sd2-inpainting"
};

class SdCheckpoint {
 public:
  // `path`: a single file or a diffusers folder. `vae_path`: an optional separate VAE file
  // (original or diffusers naming) that replaces the checkpoint's own.
  static Result<SdCheckpoint> open(const std::filesystem::path& path,
                                   const std::optional<std::filesystem::path>& vae_path = {});

  const SdCheckpointInfo& info() const { return info_; }
  // Each model's tensors with the component prefix removed, in the checkpoint's own naming.
  const std::vector<SourceTensor>& unet() const { return unet_; }
  const std::vector<SourceTensor>& vae() const { return vae_; }
  const std::vector<SourceTensor>& text_encoder() const { return text_encoder_; }
  // The DDPM noise schedule stored in original checkpoints (`alphas_cumprod`, 1000 values), which
  // A1111 samples with; empty when absent (diffusers folders: computed from the scheduler config).
  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }
  // The files whose bytes make up the model (the A1111 model hash is of the single file).
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<Checkpoint> checkpoints_;  // keep the mapped files alive
  SdCheckpointInfo info_;
  std::vector<SourceTensor> unet_, vae_, text_encoder_;
  std::vector<float> alphas_cumprod_;
};

// For the registry: what a single checkpoint file is, or nullopt when it is not SD 1.x/2.x.
std::optional<SdCheckpointInfo> sd_recognize(const Checkpoint& ck);

}  // namespace easel
