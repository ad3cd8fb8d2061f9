// Live previews of a sampling run: the x0 estimate of a step ("denoised", in the scaled latent space
// the UNet works in) made into a small RGB image, cheaply enough to do on every step.
//
// Two ways, as A1111's "Live preview method" (modules/sd_samplers_common.py, samples_to_images_tensor):
//   TAESD         the tiny autoencoder's decoder (models/taesd.h): a full-size, recognisable image;
//                 tens of milliseconds for 64x64 latents on the CPU.
//   Approx cheap  a fixed linear map of the 4 SD 1.x/2.x latent channels to RGB, at latent size
//                 (an eighth of the image's width and height); costs nothing.
// Either way the image is A1111's single_sample_to_image: clamp(x * 0.5 + 0.5, 0, 1) * 255,
// truncated to uint8, with x in [-1, 1] (TAESD's [0, 1] output is x * 2 - 1 first).
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "io/image.h"
#include "models/taesd.h"

namespace easel {

// A1111 modules/sd_vae_approx.py, cheap_approximation(): rows are latent channels, columns R, G, B
// (from https://discuss.huggingface.co/t/decoding-latents-to-rgb-without-upscaling/23204/2).
inline constexpr std::array<std::array<float, 3>, 4> kCheapApproxSd1 = {{
    {0.298f, 0.207f, 0.208f},
    {0.187f, 0.286f, 0.173f},
    {-0.158f, 0.189f, 0.264f},
    {-0.184f, -0.271f, -0.473f},
}};

// The first image of a batch of latents [N, 4, h, w] (or one latent [4, h, w]) as an RGB image of
// w x h pixels by the cheap approximation.
Image cheap_approximation_preview(const Tensor& latents);

class LatentPreviewer {
 public:
  LatentPreviewer() = default;  // the cheap approximation
  // A TAESD decoder taking `latent_channels`-channel latents from a file or a folder (taesd naming
  // or diffusers' AutoencoderTiny), its weights on ctx's device; an error when it holds none.
  static Result<LatentPreviewer> load_taesd(Context& ctx, const std::filesystem::path& path, int latent_channels = 4);

  const char* method() const { return taesd_ ? "TAESD" : "Approx cheap"; }
  // The first image of `denoised` [N, C, h, w]. TAESD runs on a copy of ctx without its progress,
  // trace and cancel hooks (a preview is not a stage of the job and finishes once started).
  Image preview(const Context& ctx, const Tensor& denoised) const;

 private:
  struct Loaded;
  std::shared_ptr<const Loaded> taesd_;
};

}  // namespace easel
