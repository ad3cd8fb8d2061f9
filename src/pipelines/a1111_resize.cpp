#include "pipelines/a1111_resize.h"

#include "imaging/pil_ops.h"

namespace easel {
namespace {

using imaging::Resample;

Image lanczos(const Image &im, int w, int h) { return imaging::resize(im, w, h, Resample::Lanczos); }

Image black(int w, int h, int channels) {
  Image out{w, h, channels, std::vector<uint8_t>(size_t(w) * size_t(h) * size_t(channels), 0), {}};
  return out;
}

}  // namespace

Image a1111_resize_image(ResizeMode mode, const Image &im, int width, int height) {
  EASEL_CHECK(width > 0 && height > 0, "resize_image: size must be positive, got ", width, "x", height);
  if (mode == ResizeMode::JustResize) return lanczos(im, width, height);
  // Python's float ratios and floor divisions, as resize_image computes them.
  const double ratio = double(width) / height, src_ratio = double(im.width) / im.height;
  if (mode == ResizeMode::CropAndResize) {
    const int src_w = ratio > src_ratio ? width : im.width * height / im.height;
    const int src_h = ratio <= src_ratio ? height : im.height * width / im.width;
    Image out = black(width, height, im.channels);
    imaging::paste(out, lanczos(im, src_w, src_h), width / 2 - src_w / 2, height / 2 - src_h / 2);
    return out;
  }
  // Resize and fill (A1111 takes every other mode here, latent upscale
  // included).
  const int src_w = ratio < src_ratio ? width : im.width * height / im.height;
  const int src_h = ratio >= src_ratio ? height : im.height * width / im.width;
  const Image resized = lanczos(im, src_w, src_h);
  Image out = black(width, height, im.channels);
  imaging::paste(out, resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
  // The empty bands get the edge row / column stretched over them: a resize
  // from a zero-height (zero-width) box on the edge, with Pillow's default
  // filter (A1111 passes none here: BICUBIC). An empty band is skipped (a
  // zero-size resize would fail).
  if (ratio < src_ratio) {
    const int fill_height = height / 2 - src_h / 2;
    if (fill_height > 0) {
      const int rh = resized.height;
      imaging::paste(
          out, imaging::resize(resized, width, fill_height, Resample::Bicubic, imaging::BoxF{0, 0, double(width), 0}),
          0, 0);
      imaging::paste(out,
                     imaging::resize(resized, width, fill_height, Resample::Bicubic,
                                     imaging::BoxF{0, double(rh), double(width), double(rh)}),
                     0, fill_height + src_h);
    }
  } else if (ratio > src_ratio) {
    const int fill_width = width / 2 - src_w / 2;
    if (fill_width > 0) {
      const int rw = resized.width;
      imaging::paste(
          out, imaging::resize(resized, fill_width, height, Resample::Bicubic, imaging::BoxF{0, 0, 0, double(height)}),
          0, 0);
      imaging::paste(out,
                     imaging::resize(resized, fill_width, height, Resample::Bicubic,
                                     imaging::BoxF{double(rw), 0, double(rw), double(height)}),
                     fill_width + src_w, 0);
    }
  }
  return out;
}

}  // namespace easel
