#include "pipelines/latent_preview.h"

#include <algorithm>

#include "io/image_tensor.h"
#include "models/registry.h"
#include "ops/ops.h"

namespace easel {

namespace {

// A1111's single_sample_to_image on x in [-1, 1]: 255 * clamp(x * 0.5 + 0.5, 0, 1), truncated.
uint8_t to_byte(float x) {
  const float v = std::clamp(x * 0.5f + 0.5f, 0.0f, 1.0f) * 255.0f;
  return uint8_t(v);
}

}  // namespace

Image cheap_approximation_preview(const Tensor& latents) {
  EASEL_CHECK((latents.dim() == 4 || latents.dim() == 3) && latents.size(latents.dim() - 3) == 4,
              "cheap approximation: expected latents [N, 4, h, w], got ", latents.describe());
  const Tensor first = latents.dim() == 4 ? latents.select(0, 0) : latents;  // [4, h, w]
  const std::vector<float> v = first.to_vector<float>();
  const int h = int(first.size(1)), w = int(first.size(2));
  const size_t plane = size_t(h) * w;
  Image image{w, h, 3, std::vector<uint8_t>(plane * 3), {}};
  for (size_t i = 0; i < plane; ++i)
    for (int rgb = 0; rgb < 3; ++rgb) {
      float x = 0;  // einsum("lxy,lr -> rxy"): sum over the latent channels l
      for (int l = 0; l < 4; ++l) x += v[l * plane + i] * kCheapApproxSd1[l][rgb];
      image.pixels[i * 3 + rgb] = to_byte(x);
    }
  return image;
}

struct LatentPreviewer::Loaded {
  std::vector<Checkpoint> checkpoints;  // the decoder's weights map these files
  Taesd taesd;
};

Result<LatentPreviewer> LatentPreviewer::load_taesd(Context& ctx, const std::filesystem::path& path,
                                                    int latent_channels) {
  EASEL_TRY(auto checkpoints, open_checkpoints(path));
  std::vector<const Checkpoint*> decoders;
  for (const Checkpoint& ck : checkpoints)
    if (auto parts = taesd_recognize(ck); parts && parts->decoder && parts->config.latent_channels == latent_channels)
      decoders.push_back(&ck);
  if (decoders.empty())
    return Error(cat(path.string(), ": no TAESD decoder for ", latent_channels, "-channel latents"));
  EASEL_TRY(Taesd taesd, Taesd::load(ctx, {decoders.front()}));
  if (!taesd.has_decoder()) return Error(cat(path.string(), ": the TAESD has no decoder"));
  LatentPreviewer p;
  p.taesd_ = std::make_shared<const Loaded>(Loaded{std::move(checkpoints), std::move(taesd)});
  return p;
}

Image LatentPreviewer::preview(const Context& ctx, const Tensor& denoised) const {
  if (!taesd_) return cheap_approximation_preview(denoised);
  Context quiet = ctx;
  quiet.on_progress = nullptr;
  quiet.on_trace = nullptr;
  quiet.cancel_flag = nullptr;
  EASEL_CHECK(denoised.dim() == 4, "preview: expected latents [N, C, h, w], got ", denoised.describe());
  const Tensor first = ops::contiguous(quiet, denoised.narrow(0, 0, 1));
  const Tensor decoded = taesd_->taesd.decode(quiet, first);  // [1, 3, 8h, 8w] in [0, 1]
  // A1111: x = decoded * 2 - 1, then clamp(x * 0.5 + 0.5, 0, 1) * 255 truncated.
  return tensor_to_image(decoded, PixelRounding::Truncate).value();
}

}  // namespace easel
