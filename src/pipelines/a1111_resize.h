// AUTOMATIC1111's images.resize_image, the one resize its img2img and inpaint
// preparation uses, with opts.upscaler_for_img2img unset (its default): every
// resample is Pillow's LANCZOS, pixel for pixel (src/imaging).
#pragma once

#include "io/image.h"

namespace easel {

// A1111's resize modes (the API's `resize_mode`).
enum class ResizeMode {
  JustResize = 0,     // stretch to width x height
  CropAndResize = 1,  // scale to cover, centre, cut what sticks out
  ResizeAndFill = 2,  // scale to fit, centre, stretch the outermost row / column
                      // over the empty bands
  LatentUpscale = 3,  // img2img only: the init latents are resized; resize_image
                      // treats it as 2
};

// images.resize_image(mode, im, width, height) for an L (1) or RGB (3) image.
// Modes 1 and 2 paste into a new black image, as A1111 does (its canvas is RGB:
// an L image keeps its one channel here, with the values A1111's equal RGB
// channels hold). Throws easel::Exception for a size < 1.
Image a1111_resize_image(ResizeMode mode, const Image &im, int width, int height);

}  // namespace easel
