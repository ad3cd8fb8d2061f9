// easel vae encode|decode|roundtrip --vae PATH IN OUT
// Images (PNG/JPEG/WebP) to latents (.safetensors) and back with a tiny autoencoder.
#include <cstdio>
#include <filesystem>

#include "backends/runtime.h"
#include "core/system_memory.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "io/image.h"
#include "io/image_tensor.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/taesd.h"
#include "ops/ops.h"

namespace easel::cli {
namespace {

namespace fs = std::filesystem;

struct VaeArgs {
  std::string mode, vae, input, output;
};

bool is_safetensors(const fs::path& p) { return p.extension() == ".safetensors"; }

// The autoencoder from a file, or from a folder holding its encoder and decoder files.
struct LoadedVae {
  std::vector<Checkpoint> checkpoints;
  Taesd taesd;
};

Result<LoadedVae> load_vae(Context& ctx, const fs::path& path) {
  EASEL_TRY(auto checkpoints, open_checkpoints(path));
  std::vector<const Checkpoint*> parts;
  for (const Checkpoint& ck : checkpoints)
    if (auto kind = recognize(ck); kind && kind->family == "taesd") parts.push_back(&ck);
  if (parts.empty())
    return Error(cat(path.string(), ": no tiny autoencoder (TAESD family) found; `easel inspect ", path.string(),
                     "` shows what it holds"));
  EASEL_TRY(Taesd taesd, Taesd::load(ctx, parts));
  return LoadedVae{std::move(checkpoints), std::move(taesd)};
}

// Pads by repeating the last row and column so both sides are multiples of 8 (the autoencoder's
// scale); the decoded image is cropped back to the original size.
Image pad_to_multiple_of_8(const Image& im) {
  const int w = (im.width + 7) / 8 * 8, h = (im.height + 7) / 8 * 8;
  if (w == im.width && h == im.height) return im;
  Image out{w, h, im.channels, std::vector<uint8_t>(size_t(w) * h * im.channels), im.text};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint8_t* src = &im.pixels[(size_t(std::min(y, im.height - 1)) * im.width + std::min(x, im.width - 1)) * im.channels];
      std::copy(src, src + im.channels, &out.pixels[(size_t(y) * w + x) * im.channels]);
    }
  return out;
}

Image crop(const Image& im, int width, int height) {
  if (width >= im.width && height >= im.height) return im;
  width = std::min(width, im.width);
  height = std::min(height, im.height);
  Image out{width, height, im.channels, std::vector<uint8_t>(size_t(width) * height * im.channels), {}};
  for (int y = 0; y < height; ++y)
    std::copy_n(&im.pixels[size_t(y) * im.width * im.channels], size_t(width) * im.channels,
                &out.pixels[size_t(y) * width * im.channels]);
  return out;
}

// The autoencoder runs at full resolution with 64 channels, and holds about four such f32
// activations at once. Refuse what cannot fit rather than be killed half way.
Status check_memory(int64_t width, int64_t height) {
  const uint64_t need = uint64_t(4) * 64 * sizeof(float) * uint64_t(width) * uint64_t(height);
  const auto available = available_memory_bytes();
  if (available && need > *available)
    return Error(cat("a ", width, "x", height, " image needs about ", human_bytes(need),
                     " for the autoencoder's activations, but only ", human_bytes(*available),
                     " of memory is available: use a smaller image"));
  return {};
}

struct Latents {
  Tensor tensor;
  int width = 0, height = 0;  // image size they came from, 0 when unknown
};

Result<Latents> read_latents(Context& ctx, const fs::path& path) {
  EASEL_TRY(auto st, SafetensorsFile::open(path));
  const TensorEntry* e = st.find("latents");
  if (!e && st.entries().size() == 1) e = &st.entries().front();
  if (!e) return Error(cat(path.string(), ": no tensor named 'latents' (and more than one tensor)"));
  Tensor t = st.tensor(*e);
  if (t.dim() == 3) t = t.unsqueeze(0);
  if (t.dim() != 4) return Error(cat(path.string(), ": latents must be [N, C, h, w], got ", t.describe()));
  if (!dtype_is_float(t.dtype())) return Error(cat(path.string(), ": latents are ", dtype_name(t.dtype())));
  Latents l;
  l.tensor = ops::cast(ctx, t, DType::F32);
  auto meta = [&](const char* key) {
    auto it = st.metadata().find(key);
    return it == st.metadata().end() ? 0 : std::atoi(it->second.c_str());
  };
  l.width = meta("easel.width");
  l.height = meta("easel.height");
  return l;
}

Status write_decoded(const Tensor& decoded, int width, int height, const fs::path& path) {
  EASEL_TRY(Image im, tensor_to_image(decoded.select(0, 0)));
  if (width > 0 && height > 0) im = crop(im, width, height);
  return write_image(path, im);
}

Status run(const VaeArgs& a, int threads) {
  const fs::path in(a.input), out(a.output);
  if (a.mode == "encode" && !is_safetensors(out))
    return Error(cat("encode writes latents: give OUT a .safetensors name (got ", a.output, ")"));
  if (a.mode == "decode" && !is_safetensors(in))
    return Error(cat("decode reads latents: IN must be a .safetensors file (got ", a.input, ")"));
  if (a.mode != "encode" && !image_format_from_extension(out))
    return Error(cat(a.output, ": OUT must end in .png, .jpg, .jpeg or .webp"));

  EASEL_TRY(auto runtime, Runtime::create({.threads = threads}));
  Context ctx = runtime->context();
  ProgressBar bar;
  ctx.on_progress = [&](const Progress& p) { bar.update(p); };
  EASEL_TRY(LoadedVae vae, load_vae(ctx, a.vae));

  return catch_errors([&]() -> Status {
    if (a.mode == "decode") {
      EASEL_TRY(Latents l, read_latents(ctx, in));
      EASEL_TRY_STATUS(check_memory(l.tensor.size(3) * 8, l.tensor.size(2) * 8));
      return write_decoded(vae.taesd.decode(ctx, l.tensor), l.width, l.height, out);
    }
    EASEL_TRY(Image source, read_image(in));
    source = to_rgb(source);
    EASEL_TRY_STATUS(check_memory(source.width, source.height));
    Tensor image = image_to_tensor(pad_to_multiple_of_8(source));
    Tensor latents = vae.taesd.encode(ctx, image);
    if (a.mode == "encode") {
      return write_safetensors(out, {{"latents", latents}},
                               {{"easel.vae", vae.taesd.config().variant},
                                {"easel.width", std::to_string(source.width)},
                                {"easel.height", std::to_string(source.height)}});
    }
    return write_decoded(vae.taesd.decode(ctx, latents), source.width, source.height, out);
  });
}

}  // namespace

void add_vae_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
  auto* cmd = app.add_subcommand("vae", "Encode images to latents and decode latents to images with a tiny autoencoder");
  auto args = std::make_shared<VaeArgs>();
  cmd->add_option("MODE", args->mode, "encode (image -> latents), decode (latents -> image) or roundtrip (image -> image)")
      ->required()
      ->check(CLI::IsMember({"encode", "decode", "roundtrip"}));
  cmd->add_option("--vae", args->vae, "the autoencoder: a weights file, or a folder holding its encoder and decoder files")
      ->required();
  cmd->add_option("IN", args->input, "input image (PNG/JPEG/WebP) or latents (.safetensors)")->required();
  cmd->add_option("OUT", args->output, "output image (.png/.jpg/.webp) or latents (.safetensors)")->required();
  cmd->callback([args, &global, &exit_code] {
    Status s = run(*args, global.threads);
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.error().message().c_str());
      exit_code = 1;
    }
  });
}

}  // namespace easel::cli
