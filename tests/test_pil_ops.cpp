// src/imaging against real Pillow 13.0.0 and OpenCV 4.10 (golden set pil_ops, written by
// tools/refgen/pil_ops.py): every case of cases.json must match byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imaging/cv_gaussian_kernel.h"
#include "imaging/pil_ops.h"
#include "io/image.h"
#include "test_data.h"

namespace easel {
namespace {

using nlohmann::json;
namespace im = imaging;

// The PNGs hold L as gray and LA as gray+alpha, which read_image widens to RGB / RGBA; "RGBa"
// (premultiplied) is stored as its raw bytes in an RGBA PNG.
Image load(const std::filesystem::path& dir, const json& file) {
  Image png = read_image(dir / file["file"].get<std::string>()).value();
  const std::string mode = file["mode"];
  EXPECT_EQ(png.width, file["width"].get<int>());
  EXPECT_EQ(png.height, file["height"].get<int>());
  const std::map<std::string, int> channels = {{"L", 1}, {"LA", 2}, {"RGB", 3}, {"RGBA", 4}, {"RGBa", 4}};
  const int want = channels.at(mode);
  if (png.channels == want) return png;
  Image out{png.width, png.height, want, std::vector<uint8_t>(size_t(png.width) * png.height * want), {}};
  for (size_t i = 0; i < size_t(png.width) * png.height; ++i) {
    out.pixels[i * want] = png.pixels[i * png.channels];
    if (want == 2) out.pixels[i * 2 + 1] = png.pixels[i * png.channels + 3];
  }
  return out;
}

im::Resample filter_named(const std::string& name) {
  static const std::map<std::string, im::Resample> filters = {
      {"nearest", im::Resample::Nearest}, {"box", im::Resample::Box},
      {"bilinear", im::Resample::Bilinear}, {"hamming", im::Resample::Hamming},
      {"bicubic", im::Resample::Bicubic}, {"lanczos", im::Resample::Lanczos}};
  return filters.at(name);
}

Image convert(const Image& in, const std::string& from, const std::string& to) {
  if (to == "L") return im::to_luma(in);
  if (from == "RGBA" && to == "RGBa") return im::premultiply(in);
  if (from == "RGBa" && to == "RGBA") return im::unpremultiply(in);
  if (from == "RGBa" && to == "RGB") return im::premultiplied_to_rgb(in);
  if (from == "RGBA" && to == "RGB") return im::rgba_to_rgb(in);
  if (from == "RGB" && to == "RGBA") return im::rgb_to_rgba(in);
  if (from == "L" && to == "RGB") return im::gray_to_rgb(in);
  if (from == "L" && to == "RGBA") return im::gray_to_rgba(in);
  throw std::runtime_error("no conversion " + from + " -> " + to);
}

// Runs one image-producing case on our implementation.
Image run_image_case(const json& c, const std::vector<Image>& in) {
  const std::string op = c["op"];
  const json& p = c["params"];
  if (op == "resize") {
    std::optional<im::BoxF> box;
    if (p.contains("box")) box = im::BoxF{p["box"][0], p["box"][1], p["box"][2], p["box"][3]};
    return im::resize(in[0], p["width"], p["height"], filter_named(p["filter"]), box);
  }
  if (op == "gaussian_blur") return im::gaussian_blur(in[0], p["radius"].get<float>());
  if (op == "cv2_gaussian_blur")
    return im::cv2_gaussian_blur(in[0], p["kx"], p["ky"], p["sigma_x"], p.value("sigma_y", 0.0));
  if (op == "convert") return convert(in[0], c["inputs"][0]["mode"], p["mode"]);
  if (op == "paste") {
    Image dst = in[0];
    im::paste(dst, in[1], p["x"], p["y"], in.size() > 2 ? &in[2] : nullptr);
    return dst;
  }
  if (op == "alpha_composite") {
    Image dst = in[0];
    im::alpha_composite(dst, in[1]);
    return dst;
  }
  if (op == "crop") return im::crop(in[0], p["box"][0], p["box"][1], p["box"][2], p["box"][3]);
  if (op == "invert") return im::invert(in[0]);
  if (op == "point_threshold") return im::point_threshold(in[0], p["threshold"]);
  throw std::runtime_error("unknown op " + op);
}

// "" when equal, else the size mismatch or the max difference and the number of differing bytes.
std::string compare(const Image& got, const Image& want) {
  if (got.width != want.width || got.height != want.height || got.channels != want.channels)
    return cat("got ", got.width, "x", got.height, "x", got.channels, ", want ", want.width, "x",
               want.height, "x", want.channels);
  int max_diff = 0;
  size_t differing = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    const int d = std::abs(int(got.pixels[i]) - int(want.pixels[i]));
    max_diff = std::max(max_diff, d);
    differing += d != 0;
  }
  if (differing == 0) return "";
  return cat("max difference ", max_diff, ", ", differing, " of ", got.pixels.size(),
             " bytes differ");
}

json load_cases() {
  const auto path = testing::set_dir("pil_ops") / "cases.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return in.good() ? json::parse(in) : json::object();
}

TEST(PilOps, EveryCaseMatchesPillowAndOpenCVExactly) {
  const json cases = load_cases();
  ASSERT_TRUE(cases.contains("cases"));
  const auto dir = testing::set_dir("pil_ops");
  std::map<std::string, int> per_op, failed_per_op;
  for (const json& c : cases["cases"]) {
    const std::string name = c["name"], op = c["op"];
    SCOPED_TRACE(name);
    ++per_op[op];
    std::vector<Image> inputs;
    for (const json& f : c["inputs"]) inputs.push_back(load(dir, f));
    std::string failure;
    try {
      if (op == "getbbox") {
        const auto box = im::getbbox(inputs[0]);
        const json got = box ? json(std::vector<int>(box->begin(), box->end())) : json(nullptr);
        if (got != c["expected"]) failure = cat("got ", got.dump(), ", want ", c["expected"].dump());
      } else if (op == "cv2_gaussian_kernel") {
        const auto k = im::cv_gaussian_kernel(c["params"]["n"], c["params"]["sigma"]);
        const auto& want = c["expected"];
        size_t differing = 0;
        for (size_t i = 0; i < k.size() && i < want.size(); ++i) {
          char hex[17];
          std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)std::bit_cast<uint64_t>(k[i]));
          differing += want[i].get<std::string>() != hex;
        }
        if (k.size() != want.size() || differing)
          failure = cat(differing, " of ", want.size(), " taps differ in their bits");
      } else {
        failure = compare(run_image_case(c, inputs), load(dir, c["output"]));
      }
    } catch (const std::exception& e) {
      failure = cat("threw: ", e.what());
    }
    if (!failure.empty()) {
      ++failed_per_op[op];
      ADD_FAILURE() << name << " (" << op << "): " << failure;
    }
  }
  for (const auto& [op, n] : per_op)
    std::printf("  %-22s %3d cases, %d not exact\n", op.c_str(), n, failed_per_op[op]);
  EXPECT_GT(per_op.size(), 0u);
}

// The fixed-point kernels GaussianBlur uses always sum to exactly 1.0 (256).
TEST(PilOps, OpenCVFixedPointKernelsSumTo256) {
  for (int b : {1, 4, 11, 64}) {
    const int k = 2 * int(2.5 * b + 0.5) + 1;
    const auto fixed = im::cv_gaussian_kernel_fixed8(k, b);
    int sum = 0;
    for (uint16_t v : fixed) sum += v;
    EXPECT_EQ(sum, 256) << "b = " << b;
  }
}

// Bad input is an exception with a message (turned into an Error at the pipeline boundary), never
// a crash.
TEST(PilOps, BadInputThrowsWithAMessage) {
  const Image rgb{4, 3, 3, std::vector<uint8_t>(36, 7), {}};
  const Image gray{4, 3, 1, std::vector<uint8_t>(12, 7), {}};
  const Image broken{4, 3, 3, std::vector<uint8_t>(5, 7), {}};
  Image dst = rgb;
  EXPECT_THROW(im::paste(dst, gray, 0, 0), Exception);
  const Image small_mask{2, 2, 1, std::vector<uint8_t>(4, 1), {}};
  EXPECT_THROW(im::paste(dst, rgb, 0, 0, &small_mask), Exception);
  EXPECT_THROW(im::alpha_composite(dst, rgb), Exception);
  EXPECT_THROW(im::resize(broken, 2, 2, im::Resample::Bicubic), Exception);
  EXPECT_THROW(im::resize(rgb, 0, 2, im::Resample::Bicubic), Exception);
  EXPECT_THROW(im::resize(rgb, 2, 2, im::Resample::Bicubic, im::BoxF{0, 0, 5, 3}), Exception);
  EXPECT_THROW(im::resize(rgb, 2, 2, im::Resample::Bicubic, im::BoxF{3, 0, 1, 3}), Exception);
  EXPECT_THROW(im::gaussian_blur(rgb, -1), Exception);
  EXPECT_THROW(im::cv2_gaussian_blur(rgb, 3, 3, 1), Exception);
  EXPECT_THROW(im::cv2_gaussian_blur(gray, 4, 1, 1), Exception);
  EXPECT_THROW(im::premultiply(rgb), Exception);
  EXPECT_THROW(im::crop(rgb, 3, 0, 1, 2), Exception);
  EXPECT_THROW(im::invert(Image{1, 1, 4, {1, 2, 3, 4}, {}}), Exception);
  EXPECT_THROW(im::point_threshold(rgb, 128), Exception);
  try {
    im::paste(dst, gray, 0, 0);
  } catch (const Exception& e) {
    EXPECT_NE(std::string(e.what()).find("channels"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace easel
