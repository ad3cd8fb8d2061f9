#include "pipelines/a1111_masking.h"

#include <algorithm>

#include "imaging/pil_ops.h"

namespace easel {

std::optional<CropRegion> mask_crop_region(const Image &mask, int pad) {
  const auto box = imaging::getbbox(mask);
  if (!box) return std::nullopt;
  const auto [x1, y1, x2, y2] = *box;
  return CropRegion{std::max(x1 - pad, 0), std::max(y1 - pad, 0), std::min(x2 + pad, mask.width),
                    std::min(y2 + pad, mask.height)};
}

namespace {

// Python's int(float) truncates toward zero; // floors.
int floor_div2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// One axis of expand_crop_region: grow [c1, c2) by `diff`, then shift it back
// inside [0, limit).
void grow_axis(int &c1, int &c2, int diff, int limit) {
  c1 -= floor_div2(diff);
  c2 += diff - floor_div2(diff);
  if (c2 >= limit) {
    const int over = c2 - limit;
    c2 -= over;
    c1 -= over;
  }
  if (c1 < 0) {
    c2 -= c1;
    c1 = 0;
  }
  if (c2 >= limit) c2 = limit;
}

}  // namespace

CropRegion expand_crop_region(CropRegion r, int processing_width, int processing_height, int image_width,
                              int image_height) {
  const double ratio_crop_region = double(r.x2 - r.x1) / (r.y2 - r.y1);
  const double ratio_processing = double(processing_width) / processing_height;
  if (ratio_crop_region > ratio_processing) {
    const double desired_height = (r.x2 - r.x1) / ratio_processing;
    grow_axis(r.y1, r.y2, int(desired_height - (r.y2 - r.y1)), image_height);
  } else {
    const double desired_width = (r.y2 - r.y1) * ratio_processing;
    grow_axis(r.x1, r.x2, int(desired_width - (r.x2 - r.x1)), image_width);
  }
  return r;
}

Image masked_content_fill(const Image &rgb, const Image &mask) {
  // image_masked: the image premultiplied, pasted through the inverted mask
  // into transparent black.
  Image masked{rgb.width, rgb.height, 4, std::vector<uint8_t>(size_t(rgb.width) * size_t(rgb.height) * 4, 0), {}};
  const Image keep = imaging::invert(imaging::to_luma(mask));
  imaging::paste(masked, imaging::premultiply(imaging::rgb_to_rgba(rgb)), 0, 0, &keep);
  Image mod{rgb.width, rgb.height, 4, std::vector<uint8_t>(masked.pixels.size(), 0), {}};
  // (radius, repeats): blurred in the premultiplied form, unpremultiplied,
  // composited `repeats` times.
  constexpr std::pair<float, int> layers[] = {{256.f, 1}, {64.f, 1}, {16.f, 2}, {4.f, 4}, {2.f, 2}, {0.f, 1}};
  for (const auto &[radius, repeats] : layers) {
    const Image blurred = imaging::unpremultiply(imaging::gaussian_blur(masked, radius));
    for (int i = 0; i < repeats; ++i) imaging::alpha_composite(mod, blurred);
  }
  return imaging::rgba_to_rgb(mod);
}

}  // namespace easel
