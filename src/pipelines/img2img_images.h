// What AUTOMATIC1111 makes of an img2img request's pictures before any model runs
// (modules/processing.py StableDiffusionProcessingImg2Img.init, modules/masking.py): the image the
// VAE encodes, the inpainting mask at the generation size and at the latent size, and the overlay
// that pastes the untouched pixels back over each result (apply_overlay).
#pragma once

#include <array>
#include <optional>

#include "core/context.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/image.h"
#include "pipelines/generation_params.h"

namespace easel {

struct Img2ImgImages {
  Image image;                  // RGB, width x height: what the VAE encodes
  std::optional<Image> mask;    // 1 channel, width x height, 255 = repaint (A1111's image_mask)
  std::optional<Image> overlay; // RGBA at the output size: the init pixels outside the mask
};

// `mask` is the uploaded mask (white = repaint; an RGBA mask with transparency uses its alpha).
Result<Img2ImgImages> prepare_img2img_images(const Image& init, const std::optional<Image>& mask,
                                              const GenerationParams& p);

// A1111's latent mask: the mask resized to the latent size (PIL bicubic of its RGB form), / 255,
// rounded to 0 or 1; f32 [1, channels, h, w], 1 = repaint (A1111's nmask).
Tensor latent_mask(const Image& mask, int64_t channels, int64_t h, int64_t w);

// The pixel mask the 9-channel inpainting UNet is conditioned on: round(mask / 255), f32 [1, 1, H, W].
Tensor pixel_mask(const Image& mask);

// apply_overlay: the generated RGB image with the overlay composited over it.
Image apply_overlay(const Image& generated, const Img2ImgImages& images);

}  // namespace easel
