// Image.resize as Pillow 13.0.0 computes it on 8-bit images.
//
// Sources: PIL/Image.py Image.resize (copy shortcut, RGBA -> RGBa round trip), _imaging.c
// _resize_impl (box checks, the crop shortcut, NEAREST as an affine transform),
// libImaging/Resample.c (filters, coefficients, 22-bit fixed point, pass order) and
// libImaging/Geometry.c ImagingScaleAffine (NEAREST).
//
// Every floating-point step below is one rounding step of Pillow's C code, in the same order:
// the compiler must not fuse a multiply and an add (-march=native enables FMA):
// cmake/source_properties.cmake compiles this file with -ffp-contract=off.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "imaging/image_checks.h"
#include "imaging/pil_ops.h"

namespace easel::imaging {
namespace {

// ---------------------------------------------------------------------------------------------
// Filters (Resample.c), each with its support radius in source pixels at scale 1.

double box_filter(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  // The constants are float literals in Pillow (0.54f, 0.46f), widened to double.
  return std::sin(x) / x * (double(0.54f) + double(0.46f) * std::cos(x));
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;  // Keys' cubic convolution with a = -0.5
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  // Truncated sinc, 3 lobes.
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct Filter {
  double (*fn)(double);
  double support;
};

Filter filter_for(Resample r) {
  switch (r) {
    case Resample::Box: return {box_filter, 0.5};
    case Resample::Bilinear: return {bilinear_filter, 1.0};
    case Resample::Hamming: return {hamming_filter, 1.0};
    case Resample::Bicubic: return {bicubic_filter, 2.0};
    case Resample::Lanczos: return {lanczos_filter, 3.0};
    case Resample::Nearest: break;
  }
  throw Exception("resize: NEAREST has no convolution filter");
}

// ---------------------------------------------------------------------------------------------
// Coefficients (Resample.c precompute_coeffs + normalize_coeffs_8bpc)

// 8 bits for the result, 2 for the overshoot of filters with negative lobes: 22 fraction bits.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coefficients {
  int ksize = 0;                 // coefficients per output pixel (padding with zeros)
  std::vector<int> first, count;  // source range of each output pixel
  std::vector<int32_t> k;        // out_size * ksize, fixed point with kPrecisionBits
};

Coefficients precompute_coeffs(int in_size, float in0, float in1, int out_size, Filter filter) {
  // Pillow subtracts the box edges as floats, then widens.
  double scale = double(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filterscale;
  Coefficients c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  const double inv_filterscale = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    int xmin = int(center - support + 0.5);  // truncation toward zero, as the C cast
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      w[x] = filter.fn((x + xmin - center + 0.5) * inv_filterscale);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      // normalize_coeffs_8bpc: round half away from zero to 22 fraction bits.
      c.k[size_t(xx) * c.ksize + x] =
          v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits)) : int32_t(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = std::max(xmax, 0);
  }
  return c;
}

// Resample.c clip8: the 22-bit sum to 0..255 (Pillow's lookup table covers -640..639 after the
// shift, the whole range 8-bit inputs can reach).
inline uint8_t clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return uint8_t(s < 0 ? 0 : s > 255 ? 255 : s);
}

constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

// Resample.c _ImagingResampleHorizontal_8bpc over source rows [row0, row0 + out.height).
void resample_horizontal(const Image& in, Image& out, int row0, const Coefficients& c) {
  const int ch = in.channels;
  for (int yy = 0; yy < out.height; ++yy) {
    // Pointer arithmetic, not operator[]: a range with no taps may start one past the end.
    const uint8_t* line = in.pixels.data() + size_t(yy + row0) * in.width * ch;
    uint8_t* dst = out.pixels.data() + size_t(yy) * out.width * ch;
    for (int xx = 0; xx < out.width; ++xx) {
      const int32_t* k = &c.k[size_t(xx) * c.ksize];
      const uint8_t* src = line + size_t(c.first[xx]) * ch;
      for (int b = 0; b < ch; ++b) {
        int32_t ss = kHalf;
        for (int x = 0; x < c.count[xx]; ++x) ss += src[x * ch + b] * k[x];
        dst[xx * ch + b] = clip8(ss);
      }
    }
  }
}

// Resample.c _ImagingResampleVertical_8bpc.
void resample_vertical(const Image& in, Image& out, const Coefficients& c) {
  const int ch = in.channels;
  const size_t stride = size_t(in.width) * ch;
  for (int yy = 0; yy < out.height; ++yy) {
    const int32_t* k = &c.k[size_t(yy) * c.ksize];
    const uint8_t* src = in.pixels.data() + size_t(c.first[yy]) * stride;  // may be the end: no taps
    uint8_t* dst = out.pixels.data() + size_t(yy) * stride;
    for (size_t i = 0; i < stride; ++i) {
      int32_t ss = kHalf;
      for (int y = 0; y < c.count[yy]; ++y) ss += src[y * stride + i] * k[y];
      dst[i] = clip8(ss);
    }
  }
}

// Resample.c ImagingResampleInner: the two separable passes, in Pillow's order, each over only
// the source rows and columns it needs.
Image resample(const Image& in, int xsize, int ysize, Filter filter, const float box[4]) {
  const bool need_horizontal = xsize != in.width || box[0] != 0 || box[2] != xsize;
  const bool need_vertical = ysize != in.height || box[1] != 0 || box[3] != ysize;
  // Vertical pass first when the height shrinks more than twice as much as the width.
  const bool horizontal_first =
      !((in.height - ysize) > 0 && (in.height - ysize) > (in.width - xsize) * 2);

  Coefficients vert, horiz;
  if ((need_horizontal && horizontal_first) || need_vertical)
    vert = precompute_coeffs(in.height, box[1], box[3], ysize, filter);
  int ybox_first = 0, ybox_last = 0;
  if (need_horizontal) {
    if (horizontal_first) {
      // Only the source rows the vertical pass will read are resampled horizontally.
      ybox_first = vert.first[0];
      ybox_last = vert.first[ysize - 1] + vert.count[ysize - 1];
      for (int& f : vert.first) f -= ybox_first;
    }
    horiz = precompute_coeffs(in.width, box[0], box[2], xsize, filter);
  }

  Image current = in;
  current.text.clear();
  auto pass_horizontal = [&](int rows, int row0) {
    Image next = detail::blank_like(xsize, rows, in.channels);
    resample_horizontal(current, next, row0, horiz);
    current = std::move(next);
  };
  auto pass_vertical = [&] {
    Image next = detail::blank_like(current.width, ysize, in.channels);
    resample_vertical(current, next, vert);
    current = std::move(next);
  };
  if (horizontal_first) {
    if (need_horizontal) pass_horizontal(ybox_last - ybox_first, ybox_first);
    if (need_vertical) pass_vertical();
  } else {
    if (need_vertical) pass_vertical();
    if (need_horizontal) pass_horizontal(ysize, 0);
  }
  return current;
}

// Geometry.c ImagingScaleAffine (what _resize_impl runs for NEAREST): source positions step by a
// double increment from the first pixel centre; outside the source stays 0.
Image resize_nearest(const Image& in, int xsize, int ysize, const float box[4]) {
  const double a0 = double(box[2] - box[0]) / xsize, a2 = box[0];
  const double a4 = double(box[3] - box[1]) / ysize, a5 = box[1];
  auto coord = [](double v) { return v < 0.0 ? -1 : int(v); };  // Geometry.c COORD
  std::vector<int> src_x(xsize, -1);
  double xo = a2 + a0 * 0.5;
  for (int x = 0; x < xsize; ++x) {
    const int xin = coord(xo);
    if (xin >= 0 && xin < in.width) src_x[x] = xin;
    xo += a0;
  }
  const int ch = in.channels;
  Image out = detail::blank_like(xsize, ysize, ch);
  double yo = a5 + a4 * 0.5;
  for (int y = 0; y < ysize; ++y) {
    const int yi = coord(yo);
    yo += a4;
    if (yi < 0 || yi >= in.height) continue;
    const uint8_t* line = &in.pixels[size_t(yi) * in.width * ch];
    uint8_t* dst = &out.pixels[size_t(y) * xsize * ch];
    for (int x = 0; x < xsize; ++x)
      if (src_x[x] >= 0) std::copy_n(line + size_t(src_x[x]) * ch, ch, dst + size_t(x) * ch);
  }
  return out;
}

// _imaging.c _resize_impl on one image of the mode resize works in (no premultiply here).
Image resize_core(const Image& in, int xsize, int ysize, Resample filter, const float box[4]) {
  // A box of whole pixels the size of the output is a crop (any filter).
  if (box[0] - int(box[0]) == 0 && box[2] - box[0] == xsize && box[1] - int(box[1]) == 0 &&
      box[3] - box[1] == ysize)
    return crop(in, int(box[0]), int(box[1]), int(box[2]), int(box[3]));
  if (filter == Resample::Nearest) return resize_nearest(in, xsize, ysize, box);
  return resample(in, xsize, ysize, filter_for(filter), box);
}

}  // namespace

Image resize(const Image& im, int width, int height, Resample filter, std::optional<BoxF> box) {
  detail::check_image(im, "resize");
  EASEL_CHECK(width >= 1 && height >= 1, "resize: height and width must be > 0, got ", width, "x",
              height);
  const BoxF b = box.value_or(BoxF{0, 0, double(im.width), double(im.height)});
  // Image.resize: same size and the whole image is a copy (no RGBA -> RGBa -> RGBA round trip).
  if (width == im.width && height == im.height && b.x0 == 0 && b.y0 == 0 && b.x1 == im.width &&
      b.y1 == im.height) {
    Image out = im;
    out.text.clear();
    return out;
  }
  // _resize_impl parses the box as C floats ("(ffff)") and checks it.
  const float fbox[4] = {float(b.x0), float(b.y0), float(b.x1), float(b.y1)};
  EASEL_CHECK(fbox[0] >= 0 && fbox[1] >= 0, "resize: box offset can't be negative");
  EASEL_CHECK(fbox[2] <= im.width && fbox[3] <= im.height,
              "resize: box can't exceed original image size");
  EASEL_CHECK(fbox[2] - fbox[0] >= 0 && fbox[3] - fbox[1] >= 0, "resize: box can't be empty");
  // Image.resize: LA and RGBA are resampled premultiplied (La, RGBa) by every filter but NEAREST.
  const bool premultiplied = (im.channels == 2 || im.channels == 4) && filter != Resample::Nearest;
  if (!premultiplied) return resize_core(im, width, height, filter, fbox);
  return unpremultiply(resize_core(premultiply(im), width, height, filter, fbox));
}

}  // namespace easel::imaging
