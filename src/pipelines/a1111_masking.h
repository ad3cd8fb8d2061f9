// AUTOMATIC1111's modules/masking.py: the region "Inpaint area: Only masked"
// works on, and the "Masked content: fill" pre-fill of the area to repaint.
#pragma once

#include <optional>

#include "io/image.h"

namespace easel {

// A rectangle (x1, y1) inclusive to (x2, y2) exclusive, as PIL boxes are.
struct CropRegion {
  int x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int width() const { return x2 - x1; }
  int height() const { return y2 - y1; }
  bool operator==(const CropRegion &) const = default;
};

// get_crop_region_v2(mask, pad): the bounding box of the mask's non-zero pixels
// (L image), grown by `pad` on every side and clipped to the image; nothing for
// an all-black mask.
std::optional<CropRegion> mask_crop_region(const Image &mask, int pad);

// expand_crop_region(region, width, height, image_width, image_height): the
// short side grown to the generation's aspect ratio (truncating, split half
// before / half after), shifted back inside the image when it sticks out. As
// A1111's, the result can still exceed the image when the image is too small
// for the ratio (PIL's crop then pads with black).
CropRegion expand_crop_region(CropRegion region, int processing_width, int processing_height, int image_width,
                              int image_height);

// fill(image, mask): the RGB image with its masked area (mask: L, 255 =
// repaint) filled from the unmasked pixels, blurred at radii 256, 64, 16, 4, 2
// and 0 and alpha-composited coarse to fine.
Image masked_content_fill(const Image &rgb, const Image &mask);

}  // namespace easel
