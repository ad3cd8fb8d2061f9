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
// Each value becomes uint8(trunc(f32(clamp(x, 0, 1)) * 255)) — that is
// torchvision's to_pil_image(t.clamp(0, 1)), whose float path is `pic.mul(255).byte()`: an f32
// multiply and a cast that truncates toward zero, not rounding. NaN becomes 0 (what the x86 cast
// gives torch). This is how the reference decoders (e.g. taesd) save their PNGs.
Result<Image> tensor_to_image(const Tensor& tensor);

}  // namespace easel
