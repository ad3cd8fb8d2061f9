// A1111's "infotext": the generation parameters written into every image (PNG text chunk
// `parameters`) and read back by A1111, SD.Next, Civitai and easel itself:
//
//   a photo of a cat
//   Negative prompt: blurry
//   Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 1, Size: 512x512, ...
//
// Formatting follows A1111's create_infotext (processing.py): "key: value" joined by ", ", values
// with ',' ':' or a newline JSON-quoted, the negative line omitted when empty. Parsing follows
// parse_generation_parameters (infotext_utils.py): the last line is the parameter line when it holds
// at least three "key: value" pairs.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "pipelines/generation_params.h"

namespace easel {

struct Infotext {
  std::string prompt;
  std::string negative_prompt;
  std::vector<std::pair<std::string, std::string>> params;  // in order, values unquoted

  const std::string* find(std::string_view key) const;
};

std::string format_infotext(const Infotext& info);
Infotext parse_infotext(std::string_view text);

// What the infotext says about one image of a generation, besides the request.
struct ImageProvenance {
  int64_t seed = 0, subseed = 0;       // this image's
  std::string sampler, schedule;       // resolved names: "DPM++ 2M", "Karras"
  std::string model_hash, model_name;  // A1111 short hash (10 hex digits), file stem
  std::string vae_hash, vae_name;      // empty when the checkpoint's own VAE is used
  bool img2img = false;                // adds "Denoising strength"
  bool inpainting_model = false;       // with img2img, adds "Conditional mask weight"
  // img2img / inpaint: what A1111's StableDiffusionProcessingImg2Img.init adds to
  // extra_generation_params ("Mask mode", "Mask blur", "Inpaint area", ...), in its order.
  std::vector<std::pair<std::string, std::string>> img2img_params;
  std::string version = "easel 0.1.0";
};

// The infotext A1111's create_infotext writes for this request and image (keys in its order,
// None-valued keys left out).
Infotext make_infotext(const GenerationParams& p, const ImageProvenance& image);

// A1111's "Model hash" of a checkpoint file: the first 10 hex digits of its SHA-256
// (modules/hashes.py sha256 -> shorthash), as Civitai and SD.Next also show it.
Result<std::string> a1111_model_hash(const std::filesystem::path& file);

// A value as A1111 writes it: unchanged unless it holds ',' ':' or '\n', then JSON-quoted.
std::string infotext_quote(std::string_view value);
// A float as Python's str() prints it ("7.0", "0.75", "1e-05"): A1111 writes floats that way.
std::string python_float(double value);

}  // namespace easel
