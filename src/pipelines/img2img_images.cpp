#include "pipelines/img2img_images.h"

#include <algorithm>
#include <cmath>

namespace easel {
namespace {

// 1-channel copy: Pillow's convert("L") of a gray image (RGB with equal channels is gray as
// decoded) or of an RGB one (ITU-R 601-2 luma, Pillow's integer rounding).
Image to_gray(const Image& im) {
  Image out{im.width, im.height, 1, std::vector<uint8_t>(size_t(im.width) * size_t(im.height)), {}};
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    const uint8_t* px = &im.pixels[i * size_t(im.channels)];
    out.pixels[i] = im.channels < 3 ? px[0]
                                    : uint8_t((px[0] * 19595u + px[1] * 38470u + px[2] * 7471u + 0x8000u) >> 16);
  }
  return out;
}

// masking.py create_binary_mask (round on): the alpha channel of an RGBA mask that has
// transparency, else its luma; then 255 where > 128, 0 elsewhere.
Image binary_mask(const Image& mask) {
  Image gray;
  bool has_transparency = false;
  if (mask.channels == 4)
    for (size_t i = 3; i < mask.pixels.size() && !has_transparency; i += 4) has_transparency = mask.pixels[i] != 255;
  if (has_transparency) {
    gray = Image{mask.width, mask.height, 1, std::vector<uint8_t>(size_t(mask.width) * size_t(mask.height)), {}};
    for (size_t i = 0; i < gray.pixels.size(); ++i) gray.pixels[i] = mask.pixels[i * 4 + 3];
  } else {
    gray = to_gray(mask);
  }
  for (uint8_t& v : gray.pixels) v = v > 128 ? 255 : 0;
  return gray;
}

// TEMPORARY: a float version of Pillow's antialiased bicubic resample of a 1-channel image, until
// the Pillow-exact resize lands. The latent mask is rounded afterwards, so this matches Pillow
// wherever no value lies near 0.5.
std::vector<float> resize_bicubic(const std::vector<float>& in, int iw, int ih, int ow, int oh) {
  auto cubic = [](double x) {
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
  };
  auto pass = [&](const std::vector<float>& src, int in_n, int out_n, int lines, bool horizontal) {
    std::vector<float> dst(size_t(out_n) * size_t(lines));
    const double scale = double(in_n) / out_n, fs = std::max(scale, 1.0), support = 2.0 * fs;
    for (int o = 0; o < out_n; ++o) {
      const double center = (o + 0.5) * scale;
      const int lo = std::max(int(center - support + 0.5), 0), hi = std::min(int(center + support + 0.5), in_n);
      std::vector<double> k;
      double sum = 0;
      for (int x = lo; x < hi; ++x) sum += k.emplace_back(cubic((x - center + 0.5) / fs));
      for (int l = 0; l < lines; ++l) {
        double acc = 0;
        for (int x = lo; x < hi; ++x)
          acc += k[size_t(x - lo)] * (horizontal ? src[size_t(l) * in_n + x] : src[size_t(x) * lines + l]);
        const float v = std::clamp(std::round(float(acc / sum)), 0.0f, 255.0f);
        (horizontal ? dst[size_t(l) * out_n + o] : dst[size_t(o) * lines + l]) = v;
      }
    }
    return dst;
  };
  return pass(pass(in, iw, ow, ih, true), ih, oh, ow, false);
}

}  // namespace

Result<Img2ImgImages> prepare_img2img_images(const Image& init, const std::optional<Image>& mask,
                                              const GenerationParams& p) {
  if (init.width != p.width || init.height != p.height)
    return Error(cat("init image: is ", init.width, "x", init.height, ", the request is ", p.width, "x", p.height,
                     "; resizing the init image (resize_mode) is not supported yet"));
  if (mask && (mask->width != init.width || mask->height != init.height))
    return Error(cat("mask: is ", mask->width, "x", mask->height, ", the init image ", init.width, "x", init.height));
  if (mask && (p.mask_blur != 0 || p.inpainting_fill != 1 || p.inpaint_full_res || p.inpainting_mask_invert))
    return Error("inpaint: mask blur, masked-content fill modes, 'only masked' and mask inversion are not supported yet");
  Img2ImgImages out;
  out.image = to_rgb(init);
  out.image.text.clear();
  if (!mask) return out;
  out.mask = binary_mask(*mask);
  // mask_for_overlay = clip(mask * 2, 0, 255); the overlay is the init image with alpha 255 - that.
  out.overlay = Image{init.width, init.height, 4, std::vector<uint8_t>(size_t(init.width) * size_t(init.height) * 4), {}};
  for (size_t i = 0; i < out.mask->pixels.size(); ++i) {
    const int alpha = 255 - std::min(2 * int(out.mask->pixels[i]), 255);
    for (int c = 0; c < 3; ++c) out.overlay->pixels[i * 4 + size_t(c)] = alpha ? out.image.pixels[i * 3 + size_t(c)] : 0;
    out.overlay->pixels[i * 4 + 3] = uint8_t(alpha);
  }
  return out;
}

Tensor latent_mask(const Image& mask, int64_t channels, int64_t h, int64_t w) {
  std::vector<float> values(mask.pixels.begin(), mask.pixels.end());
  values = resize_bicubic(values, mask.width, mask.height, int(w), int(h));
  std::vector<float> out;
  out.reserve(size_t(channels) * values.size());
  for (int64_t c = 0; c < channels; ++c)
    for (float v : values) out.push_back(std::nearbyint(v / 255.0f));
  return Tensor::from_vector(out, {1, channels, h, w});
}

Tensor pixel_mask(const Image& mask) {
  std::vector<float> values(mask.pixels.size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::nearbyint(float(mask.pixels[i]) / 255.0f);
  return Tensor::from_vector(values, {1, 1, mask.height, mask.width});
}

Image apply_overlay(const Image& generated, const Img2ImgImages& images) {
  if (!images.overlay) return generated;
  // TEMPORARY: exact for binary overlays (alpha 0 or 255) only, until Pillow's alpha_composite lands.
  Image out = generated;
  const Image& ov = *images.overlay;
  for (size_t i = 0; i < size_t(ov.width) * size_t(ov.height); ++i)
    if (ov.pixels[i * 4 + 3] == 255)
      for (int c = 0; c < 3; ++c) out.pixels[i * 3 + size_t(c)] = ov.pixels[i * 4 + size_t(c)];
  return out;
}

}  // namespace easel
