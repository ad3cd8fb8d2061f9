// What a user asks for, named as the A1111 / SD.Next API names it (txt2img and img2img request
// fields), so the CLI, the server and the infotext share one vocabulary; and the pictures an
// img2img request brings, decoded (the CLI and the server read the files, pipelines never do).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/error.h"
#include "io/image.h"

namespace easel {

struct GenerationParams {
  std::string prompt;
  std::string negative_prompt;
  int steps = 20;
  std::string sampler_name = "Euler";   // A1111 names; legacy "DPM++ 2M Karras" also accepted
  std::string scheduler = "Automatic";  // "Automatic", "Karras", "Exponential", "SGM Uniform"
  double cfg_scale = 7.0;
  double guidance_rescale = 0.0;  // phi of "Rescale CFG" (0 = off)
  int width = 512, height = 512;
  int batch_size = 1;  // images per sampler call
  int n_iter = 1;      // sampler calls ("batch count")
  int64_t seed = -1;   // -1: random
  int64_t subseed = -1;
  double subseed_strength = 0.0;
  int seed_resize_from_w = 0, seed_resize_from_h = 0;
  int clip_skip = 1;
  double eta = 1.0;  // ancestral / DDIM eta (A1111's defaults per sampler apply when unset by the user)
  double s_noise = 1.0;
  int64_t eta_noise_seed_delta = 0;

  // img2img / inpaint (the pictures themselves are GenerationInputs)
  double denoising_strength = 0.75;
  int resize_mode = 0;        // 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale
  int mask_blur = 4;
  int inpainting_fill = 1;    // 0 fill, 1 original, 2 latent noise, 3 latent nothing
  bool inpaint_full_res = false;  // "only masked"
  int inpaint_full_res_padding = 32;
  int inpainting_mask_invert = 0;
};

// The pictures of an img2img / inpaint request: an init image makes it img2img, a mask inpainting.
struct GenerationInputs {
  std::optional<Image> init_image;  // the starting picture; none for txt2img
  std::optional<Image> mask;        // white = repaint (an RGBA mask with transparency uses its alpha)

  bool is_img2img() const { return init_image.has_value(); }
};

// Limits a request must respect (a server lowers them for untrusted clients).
struct GenerationLimits {
  int max_side = 4096;           // pixels, each of width and height
  int64_t max_pixels = 4096LL * 4096;
  int max_steps = 1000;
  int max_batch_size = 64;
  int max_n_iter = 1000;
};

// Checks every field; the error names the field as the API does ("width: 513 is not a multiple of 8").
Status validate(const GenerationParams& p, const GenerationLimits& limits = {});
// A mask needs an init image.
Status validate(const GenerationInputs& inputs);

}  // namespace easel
