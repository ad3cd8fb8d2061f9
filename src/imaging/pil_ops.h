// Image operations that give Pillow's and OpenCV's pixels bit for bit on 8-bit images, because
// AUTOMATIC1111's img2img / inpaint preprocessing is written with them and we must give its pixels.
//
// Images are easel::Image: 8-bit, interleaved, channels 1 = "L", 2 = "LA", 3 = "RGB", 4 = "RGBA"
// (or "RGBa", premultiplied, where a function says so). Each function names the Pillow / OpenCV
// call it reproduces; the .cpp files say which C source each rule comes from (Pillow 13.0.0
// libImaging, OpenCV 4.10 imgproc). Golden tests: tests/test_pil_ops.cpp on tests/data/pil_ops.
//
// Bad input (a channel count the operation does not take, mismatched sizes, a zero or negative
// size) throws easel::Exception with a message; the pipeline boundary (catch_errors) turns it into
// an Error, so nothing crashes. Pillow raises ValueError / OSError in the same cases.
#pragma once

#include <array>
#include <optional>

#include "io/image.h"

namespace easel::imaging {

// ---------------------------------------------------------------------------------------------
// Resampling (pil_resize.cpp)

enum class Resample { Nearest, Box, Bilinear, Hamming, Bicubic, Lanczos };

// Pillow's resize(box=...) source region, in source pixels. Pillow parses it as four C floats
// (PyArg "(ffff)"), so the values are rounded to float before use, as there.
struct BoxF {
  double x0, y0, x1, y1;
};

// Image.resize((width, height), resample, box) for L (1), LA (2), RGB (3) and RGBA (4).
// LA and RGBA are premultiplied (La / RGBa) before and unpremultiplied after, as Pillow does for
// every filter but NEAREST; an unchanged size with no box returns a copy (no premultiply round trip).
// Throws for width/height < 1 or a box outside the image or with negative extent (Pillow's
// ValueError); a zero-extent box is allowed (A1111 uses one).
Image resize(const Image& im, int width, int height, Resample filter, std::optional<BoxF> box = {});

// ---------------------------------------------------------------------------------------------
// Blur (pil_box_blur.cpp, cv_gaussian_blur.cpp)

// ImageFilter.GaussianBlur(radius): Pillow's ImagingGaussianBlur, 3 passes of an extended box blur
// in x then in y, on all bands as given (no premultiply: A1111 blurs an "RGBa" image and the
// caller converts). Radius 0 returns a copy. Any channel count 1..4. Throws for radius < 0.
Image gaussian_blur(const Image& im, float radius);

// cv2.GaussianBlur(src, (kx, ky), sigma_x, sigma_y) on an 8-bit single-channel image with the
// default border (BORDER_REFLECT_101): OpenCV's bit-exact fixed-point path for CV_8U (kernels
// from softdouble arithmetic, rounded to 8 fraction bits with error diffusion). kx, ky odd and
// > 0, or <= 0 to derive the size from sigma as OpenCV does.
Image cv2_gaussian_blur(const Image& gray, int kx, int ky, double sigma_x, double sigma_y = 0);

// ---------------------------------------------------------------------------------------------
// Mode conversions, Image.convert(mode) (pil_convert.cpp)

Image premultiply(const Image& rgba);    // "RGBA" -> "RGBa" (also "LA" -> "La")
Image unpremultiply(const Image& rgba);  // "RGBa" -> "RGBA" (also "La" -> "LA")
Image to_luma(const Image& im);          // convert("L") from L (copy), LA, RGB or RGBA (alpha ignored)
Image gray_to_rgb(const Image& l);       // "L" -> "RGB"
Image gray_to_rgba(const Image& l);      // "L" -> "RGBA" (alpha 255)
Image rgb_to_rgba(const Image& rgb);     // "RGB" -> "RGBA" (alpha 255)
Image rgba_to_rgb(const Image& rgba);    // "RGBA" -> "RGB" (drops alpha)
Image premultiplied_to_rgb(const Image& rgba_premultiplied);  // "RGBa" -> "RGB" (unpremultiplies)

// ---------------------------------------------------------------------------------------------
// Compositing and geometry (pil_composite.cpp)

// Image.paste(src, (x, y), mask): src (and the optional L mask, same size as src) clipped to dst.
// With a mask each band is blended as Pillow's BLEND macro rounds it. src and dst must have the
// same channel count (Pillow converts src first; do that with the functions above).
void paste(Image& dst, const Image& src, int x, int y, const Image* mask = nullptr);

// Image.alpha_composite(src): src over dst, both RGBA (or both LA) of the same size, with Pillow's
// AlphaComposite.c integer arithmetic.
void alpha_composite(Image& dst, const Image& src);

// Image.crop((x0, y0, x1, y1)): areas outside the image are 0. Throws if x1 < x0 or y1 < y0.
Image crop(const Image& im, int x0, int y0, int x1, int y1);

// Image.getbbox(): (left, upper, right, lower) of the non-zero pixels, or nothing when all are
// zero. With alpha (LA, RGBA, RGBa) only the alpha band counts (Pillow's default alpha_only=True);
// for RGB the three colour bands.
std::optional<std::array<int, 4>> getbbox(const Image& im);

// ---------------------------------------------------------------------------------------------
// Point operations (pil_convert.cpp)

Image invert(const Image& im);                         // ImageOps.invert: L or RGB (Pillow refuses others)
Image point_threshold(const Image& l, int threshold);  // l.point(lambda x: 255 if x > threshold else 0)

}  // namespace easel::imaging
