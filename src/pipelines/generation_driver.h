// A1111's generation loop (modules/processing.py process_images_inner), written once for every
// model family (diffusion_family.h):
//
//   prompt, negative -> the family's conditioning                 DiffusionFamily::condition
//   init image, mask -> A1111's img2img pictures, init latents    pipelines/img2img_*, the family's VAE
//   seeds -> per-image torch CPU generators -> initial noise       sampling/image_rng
//   sampler + schedule -> plan; CFG over the family's network      sampling/, DiffusionFamily::predict
//   per batch: sample (interrupt / skip), inpainting blend, decode, overlay, infotext
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "io/image.h"
#include "pipelines/diffusion_family.h"
#include "pipelines/generation_control.h"
#include "pipelines/generation_params.h"
#include "sampling/samplers.h"

namespace easel {

struct GeneratedImage {
  Image image;  // RGB, with the A1111 "parameters" text chunk
  int64_t seed = 0, subseed = 0;
  std::string infotext;
};

struct GenerationTimings {
  double conditioning_s = 0;  // text encoder
  double sampling_s = 0;      // all sampler steps of all batches
  int steps = 0;              // sampler steps run
  double decode_s = 0;        // VAE decode of all images
  double seconds_per_step() const { return steps ? sampling_s / steps : 0; }
};

struct GenerationResult {
  std::vector<GeneratedImage> images;
  GenerationTimings timings;
  // Why a requested option was not applied (A1111's model_hijack.comments), e.g. "only masked" with a
  // blank mask falling back to plain img2img.
  std::vector<std::string> comments;
};

// Who follows a generation, and how it is stopped early.
struct GenerationCallbacks {
  std::function<void(const GeneratedImage&)> on_image;  // each finished image (the server streams them)
  sampling::StepCallback on_step;  // each sampler step of each batch, with its x0 estimate (live previews)
  GenerationControl control;       // A1111's interrupt and skip
};

// txt2img, img2img (inputs.init_image) and inpaint (inputs.mask), every image of
// batch_size x n_iter. ctx reports progress and is polled for cancellation between steps.
Result<GenerationResult> generate(Context& ctx, const DiffusionFamily& family, const GenerationParams& p,
                                  const GenerationInputs& inputs = {}, const GenerationCallbacks& callbacks = {});

}  // namespace easel
