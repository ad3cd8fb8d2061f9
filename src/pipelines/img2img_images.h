// What AUTOMATIC1111 makes of an img2img request's pictures before any model
// runs (modules/processing.py StableDiffusionProcessingImg2Img.init,
// modules/masking.py, modules/images.py resize_image): the image the VAE
// encodes, the inpainting mask at the generation size, and the overlay that
// pastes the untouched pixels back over each result (apply_overlay, with uncrop
// for "Inpaint area: Only masked").
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/image.h"
#include "pipelines/a1111_masking.h"
#include "pipelines/generation_params.h"

namespace easel {

struct Img2ImgImages {
  Image image;                  // RGB: what the VAE encodes: width x height (latent upscale: the init's size)
  std::optional<Image> mask;    // L, width x height, 255 = repaint (A1111's image_mask); none without a
                                // mask, or when "only masked" fell back to plain img2img
  std::optional<Image> overlay; // RGBA: the init pixels outside the mask, at the size of the final image
  std::optional<CropRegion> paste_to;  // "only masked": where each result goes back into the init image
  bool latent_upscale = false;  // resize mode 3: the init latents are resized instead of the image
  // The extra_generation_params A1111's init() adds, in its order ("Mask mode", "Mask blur",
  // "Inpaint area", "Masked area padding", "Masked content").
  std::vector<std::pair<std::string, std::string>> infotext;
  std::vector<std::string> comments;  // why a requested option was not applied (A1111 logs and shows these)
};

// `mask` is the uploaded mask (white = repaint; an RGBA mask with transparency uses its alpha).
// Errors: a mask of another size than the init image; resize mode 3 with a mask (A1111 fails there:
// its overlay and its latents end up at different sizes); resize mode 3 with an init image whose
// sides are not multiples of 8 (A1111 takes them; easel's VAE encoder does not yet).
Result<Img2ImgImages> prepare_img2img_images(const Image &init, const std::optional<Image> &mask,
                                             const GenerationParams &p);

// A1111's latent mask: the mask resized to the latent size (PIL bicubic of its
// RGB form), / 255, rounded to 0 or 1; f32 [1, channels, h, w], 1 = repaint
// (A1111's nmask).
Tensor latent_mask(const Image &mask, int64_t channels, int64_t h, int64_t w);

// The pixel mask the 9-channel inpainting UNet is conditioned on: round(mask /
// 255), f32 [1, 1, H, W].
Tensor pixel_mask(const Image &mask);

// apply_overlay: the generated RGB image (width x height) with the overlay
// composited over it; for "only masked" first uncrop: the result resized (crop
// and resize) to the crop region and pasted into a transparent image of the
// init's size. Returns the generated image when there is no overlay.
Image apply_overlay(const Image &generated, const Img2ImgImages &images);

}  // namespace easel
