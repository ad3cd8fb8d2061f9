#include "pipelines/img2img_images.h"

#include <algorithm>
#include <cmath>

#include "imaging/pil_ops.h"
#include "pipelines/a1111_resize.h"

namespace easel {
namespace {

// processing.create_binary_mask (mask_round on): the alpha of an RGBA mask that
// has transparency, thresholded at 128; any other mask is convert("L") as it is
// (soft masks stay soft).
Image binary_mask(const Image &mask) {
  bool has_transparency = false;
  if (mask.channels == 4)
    for (size_t i = 3; i < mask.pixels.size() && !has_transparency; i += 4) has_transparency = mask.pixels[i] != 255;
  if (!has_transparency) return imaging::to_luma(mask);
  Image alpha{mask.width, mask.height, 1, std::vector<uint8_t>(size_t(mask.width) * size_t(mask.height)), {}};
  for (size_t i = 0; i < alpha.pixels.size(); ++i) alpha.pixels[i] = mask.pixels[i * 4 + 3];
  return imaging::point_threshold(alpha, 128);
}

// The mask blur of init(): cv2.GaussianBlur with a (k, 1) kernel, then (1, k),
// k = 2 * int(2.5 * blur + 0.5) + 1.
Image blur_mask(const Image &mask, int blur) {
  const int k = 2 * int(2.5 * blur + 0.5) + 1;
  return imaging::cv2_gaussian_blur(imaging::cv2_gaussian_blur(mask, k, 1, blur), 1, k, blur);
}

// The overlay of init(): the image (premultiplied) pasted through the inverted
// overlay mask into transparent black, then unpremultiplied.
Image make_overlay(const Image &rgb, const Image &mask_for_overlay) {
  Image masked{rgb.width, rgb.height, 4, std::vector<uint8_t>(size_t(rgb.width) * size_t(rgb.height) * 4, 0), {}};
  const Image keep = imaging::invert(imaging::to_luma(mask_for_overlay));
  imaging::paste(masked, imaging::premultiply(imaging::rgb_to_rgba(rgb)), 0, 0, &keep);
  return imaging::unpremultiply(masked);
}

const char *masked_content_name(int fill) {
  switch (fill) {
    case 0:
      return "fill";
    case 2:
      return "latent noise";
    case 3:
      return "latent nothing";
    default:
      return nullptr;
  }
}

}  // namespace

Result<Img2ImgImages> prepare_img2img_images(const Image &init, const std::optional<Image> &mask,
                                             const GenerationParams &p) {
  if (mask && (mask->width != init.width || mask->height != init.height))
    return Error(cat("mask: is ", mask->width, "x", mask->height, ", the init image ", init.width, "x", init.height,
                     "; they must be the same size"));
  const auto mode = ResizeMode(p.resize_mode);
  if (mask && mode == ResizeMode::LatentUpscale)
    return Error(
        "resize_mode: 3 (latent upscale) cannot inpaint: A1111 fails "
        "on it too (its overlay stays at the "
        "init image's size and its latents at the request's); use "
        "resize_mode 0, 1 or 2 with a mask");
  // A1111 encodes the init image at its own size here; easel's VAE encoder takes whole latent pixels only.
  if (mode == ResizeMode::LatentUpscale && (init.width % 8 || init.height % 8))
    return Error(cat("resize_mode: 3 (latent upscale) encodes the init image at its own size, and easel needs its "
                     "sides to be multiples of 8 for that (it is ",
                     init.width, "x", init.height, "); use resize_mode 0, 1 or 2, or crop the image"));
  return catch_errors([&]() -> Result<Img2ImgImages> {
    Img2ImgImages out;
    out.latent_upscale = mode == ResizeMode::LatentUpscale;
    std::optional<Image> image_mask, mask_for_overlay;
    std::optional<CropRegion> crop;
    if (mask) {
      image_mask = binary_mask(*mask);
      if (p.inpainting_mask_invert) {
        image_mask = imaging::invert(*image_mask);
        out.infotext.emplace_back("Mask mode", "Inpaint not masked");
      }
      if (p.mask_blur > 0) {
        image_mask = blur_mask(*image_mask, p.mask_blur);
        out.infotext.emplace_back("Mask blur", std::to_string(p.mask_blur));
      }
      if (p.inpaint_full_res) {
        // Only masked: generate the mask's neighbourhood at full size, paste it
        // back afterwards.
        mask_for_overlay = image_mask;
        crop = mask_crop_region(*image_mask, p.inpaint_full_res_padding);
        if (crop) {
          crop = expand_crop_region(*crop, p.width, p.height, image_mask->width, image_mask->height);
          image_mask =
              a1111_resize_image(ResizeMode::ResizeAndFill,
                                 imaging::crop(*image_mask, crop->x1, crop->y1, crop->x2, crop->y2), p.width, p.height);
          out.paste_to = crop;
          out.infotext.emplace_back("Inpaint area", "Only masked");
          out.infotext.emplace_back("Masked area padding", std::to_string(p.inpaint_full_res_padding));
        } else {
          image_mask.reset();
          mask_for_overlay.reset();
          out.comments.push_back(
              "Unable to perform \"Inpaint Only mask\" because mask is blank, "
              "switch to img2img mode.");
        }
      } else {
        image_mask = a1111_resize_image(mode, *image_mask, p.width, p.height);
        mask_for_overlay = *image_mask;  // clip(mask * 2, 0, 255): the overlay
                                         // keeps only fully unmasked pixels
        for (uint8_t &v : mask_for_overlay->pixels) v = uint8_t(std::min(2 * int(v), 255));
      }
    }

    Image image = to_rgb(init);  // images.flatten of an RGB image
    image.text.clear();
    if (!crop && mode != ResizeMode::LatentUpscale) image = a1111_resize_image(mode, image, p.width, p.height);
    if (image_mask) {
      if (mask_for_overlay->width != image.width || mask_for_overlay->height != image.height)
        mask_for_overlay = a1111_resize_image(mode, *mask_for_overlay, image.width, image.height);
      out.overlay = make_overlay(image, *mask_for_overlay);
    }
    if (crop)
      image = a1111_resize_image(ResizeMode::ResizeAndFill,
                                 imaging::crop(image, crop->x1, crop->y1, crop->x2, crop->y2), p.width, p.height);
    if (image_mask) {
      // A1111 pre-fills the pixels for every mode but "original" (latent noise
      // / nothing too).
      if (p.inpainting_fill != 1) image = masked_content_fill(image, *image_mask);
      if (const char *name = masked_content_name(p.inpainting_fill)) out.infotext.emplace_back("Masked content", name);
    }
    out.image = std::move(image);
    out.mask = std::move(image_mask);
    return out;
  });
}

Tensor latent_mask(const Image &mask, int64_t channels, int64_t h, int64_t w) {
  // Pillow's default filter for an RGB resize is BICUBIC; the mask's three
  // channels are equal.
  const Image small = imaging::resize(imaging::to_luma(mask), int(w), int(h), imaging::Resample::Bicubic);
  std::vector<float> out;
  out.reserve(size_t(channels) * small.pixels.size());
  for (int64_t c = 0; c < channels; ++c)
    for (uint8_t v : small.pixels) out.push_back(std::nearbyint(float(v) / 255.0f));
  return Tensor::from_vector(out, {1, channels, h, w});
}

Tensor pixel_mask(const Image &mask) {
  const Image gray = imaging::to_luma(mask);
  std::vector<float> values(gray.pixels.size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::nearbyint(float(gray.pixels[i]) / 255.0f);
  return Tensor::from_vector(values, {1, 1, gray.height, gray.width});
}

Image apply_overlay(const Image &generated, const Img2ImgImages &images) {
  if (!images.overlay) return generated;
  const Image &overlay = *images.overlay;
  Image canvas;
  if (images.paste_to) {
    // uncrop: resize_image(1, result, crop size), pasted (opaque) into
    // transparent black at the crop.
    const CropRegion &r = *images.paste_to;
    canvas = Image{overlay.width, overlay.height, 4, std::vector<uint8_t>(overlay.pixels.size(), 0), {}};
    const Image placed = a1111_resize_image(ResizeMode::CropAndResize, generated, r.width(), r.height());
    imaging::paste(canvas, imaging::rgb_to_rgba(placed), r.x1, r.y1);
  } else {
    canvas = imaging::rgb_to_rgba(generated);
  }
  imaging::alpha_composite(canvas, overlay);
  return imaging::rgba_to_rgb(canvas);
}

}  // namespace easel
