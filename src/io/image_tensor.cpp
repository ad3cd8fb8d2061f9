#include "io/image_tensor.h"

#include <cmath>

namespace easel {

Tensor image_to_tensor(const Image& image) {
  const int c = image.channels;
  const size_t plane = size_t(image.width) * size_t(image.height);
  EASEL_CHECK(c >= 1 && c <= 4 && image.width > 0 && image.height > 0 && image.pixels.size() == plane * size_t(c),
              "image_to_tensor: inconsistent image ", image.width, " x ", image.height, " x ", c, " with ",
              image.pixels.size(), " bytes");
  const bool gray = c <= 2;
  std::vector<float> values(3 * plane);
  for (size_t i = 0; i < plane; ++i) {
    const uint8_t* px = &image.pixels[i * size_t(c)];
    for (int ch = 0; ch < 3; ++ch) values[size_t(ch) * plane + i] = float(px[gray ? 0 : ch]) / 255.0f;
  }
  return Tensor::from_vector(values, {1, 3, image.height, image.width});
}

namespace {

// See tensor_to_image in the header for why this exact rule.
uint8_t to_byte(float x, PixelRounding rounding) {
  if (!(x > 0.0f)) return 0;  // also NaN
  if (x > 1.0f) x = 1.0f;
  // nearbyint rounds half to even in the default rounding mode, which nothing in easel changes.
  if (rounding == PixelRounding::NearestEven) return static_cast<uint8_t>(std::nearbyint(x * 255.0f));
  return static_cast<uint8_t>(255.0f * x);  // numpy: float32 multiply, then truncating cast
}

}  // namespace

Result<Image> tensor_to_image(const Tensor& tensor, PixelRounding rounding) {
  if (!tensor.defined()) return Error("tensor_to_image: undefined tensor");
  if (tensor.dtype() != DType::F32)
    return Error(cat("tensor_to_image: expected an f32 tensor, got ", tensor.describe()));
  if (!tensor.device().is_cpu())
    return Error(cat("tensor_to_image: tensor is on ", tensor.device().str(), "; copy it to the CPU first"));
  const int d = tensor.dim();
  const bool shape_ok = (d == 4 && tensor.size(0) == 1) || d == 3;
  const int64_t c = shape_ok ? tensor.size(-3) : 0;
  if (!shape_ok || (c != 3 && c != 4))
    return Error(cat("tensor_to_image: expected [1, 3 or 4, H, W] or [3 or 4, H, W], got ", tensor.describe()));
  const int64_t h = tensor.size(-2), w = tensor.size(-1);
  if (h <= 0 || w <= 0 || h > (int64_t(1) << 30) / w)
    return Error(cat("tensor_to_image: cannot make an image of ", tensor.describe()));

  const std::vector<float> values = tensor.to_vector<float>();  // C order, whatever the strides
  const size_t plane = size_t(h) * size_t(w);
  Image image{int(w), int(h), int(c), std::vector<uint8_t>(plane * size_t(c)), {}};
  for (size_t i = 0; i < plane; ++i)
    for (int64_t ch = 0; ch < c; ++ch) image.pixels[i * size_t(c) + size_t(ch)] = to_byte(values[size_t(ch) * plane + i], rounding);
  return image;
}

}  // namespace easel
