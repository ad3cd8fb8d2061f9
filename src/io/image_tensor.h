// Images to and from the f32 tensors the models see, with torchvision's exact rounding rules, so
// that an image round-trips to the same bytes as the Python reference pipelines produce.
#pragma once

#include "core/tensor.h"
#include "io/image.h"

namespace easel {

// f32 [1, 3, H, W] in [0, 1], each value x / 255 (an f32 division, as torchvision's to_tensor:
// `img.to(torch.float32).div(255)`). Alpha is dropped; gray (1 or 2 channels) is repeated.
Tensor image_to_tensor(const Image& image);

// f32 [1, C, H, W] or [C, H, W] with C = 3 (RGB) or 4 (RGBA), on the CPU, any strides.
// Each value becomes uint8(round_half_to_even(f32(clamp(x, 0, 1)) * 255)): an f32 multiply, then
// rounding to nearest with ties to even; NaN becomes 0.
//
// Why this rule: it reproduces the golden PNGs bit for bit (set taef2_real, `<case>.decoded` ->
// `<case>.decoded.png`, every byte of both photos), and it is diffusers' numpy_to_pil
// (`(images * 255).round().astype("uint8")` on f32, numpy rounding half to even), i.e. what
// diffusers-based UIs (SD.Next) save. torchvision's to_pil_image in released versions does
// `pic.mul(255).byte()` instead, which TRUNCATES (0.9999 -> 254; pytorch/vision#8141, fix proposed
// in #9646 with np.rint, ties to even); truncation disagrees with the golden set on about half of
// all bytes, so it is not what the reference files were made with. (A1111 truncates too.)
enum class PixelRounding {
  NearestEven,  // diffusers / SD.Next, the golden PNGs above
  Truncate,     // A1111: `(255. * x).astype(np.uint8)` on float32 in [0, 1]
};
Result<Image> tensor_to_image(const Tensor& tensor, PixelRounding rounding = PixelRounding::NearestEven);

}  // namespace easel
