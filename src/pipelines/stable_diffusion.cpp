#include "pipelines/stable_diffusion.h"

#include "ops/ops.h"
#include "pipelines/img2img_images.h"
#include "pipelines/infotext.h"
#include "pipelines/prompt_conditioning.h"

namespace easel {
namespace {

constexpr float kLatentScale = 0.18215f;  // SD 1.x / 2.x VAE scaling_factor

}  // namespace

Result<StableDiffusion> StableDiffusion::load(Context& ctx, const std::filesystem::path& model,
                                              const SdLoadOptions& options) {
  StableDiffusion sd;
  EASEL_TRY(sd.checkpoint_, SdCheckpoint::open(model, options.vae));
  const SdCheckpointInfo& info = sd.checkpoint_.info();
  const bool sd2 = info.version == SdVersion::Sd2;
  EASEL_TRY(sd.tokenizer_, ClipTokenizer::builtin(sd2 ? ClipFlavor::kOpenClip : ClipFlavor::kOpenAI));
  ClipTextOptions text_options;
  text_options.heads = options.text_encoder_heads;
  EASEL_TRY(sd.text_encoder_, ClipTextModel::load(ctx, sd.checkpoint_.text_encoder(), text_options));
  EASEL_TRY(sd.unet_, Unet::load(ctx, sd.checkpoint_.unet(),
                                 options.unet.value_or(sd2 ? UnetOptions::sd2() : UnetOptions::sd1())));
  VaeKlOptions vae_options;
  if (options.vae_norm_groups) vae_options.norm_groups = *options.vae_norm_groups;
  EASEL_TRY(sd.vae_, VaeKl::load(ctx, sd.checkpoint_.vae(), vae_options));
  if (!sd.vae_.has_decoder()) return Error(cat(model.string(), ": the VAE has no decoder"));
  const auto& ac = sd.checkpoint_.alphas_cumprod();
  // A1111 samples with the schedule stored in the checkpoint when it has one.
  sd.schedule_ = ac.size() == 1000 ? sampling::DiscreteSchedule::from_alphas_cumprod({ac.begin(), ac.end()})
                                   : sampling::DiscreteSchedule::scaled_linear();
  sd.prediction_ = options.prediction.value_or(info.prediction);
  sd.latent_format_.channels = int(sd.unet_.config().out_channels);
  sd.latent_format_.scale_factor = kLatentScale;
  ModelIdentity& id = sd.identity_;
  id.inpainting = info.inpainting;
  id.model_name = model.stem().string();
  if (options.compute_model_hash && std::filesystem::is_regular_file(model)) {
    EASEL_TRY(id.model_hash, a1111_model_hash(model));
  }
  if (options.vae) {
    id.vae_name = options.vae->filename().string();
    if (options.compute_model_hash) {
      EASEL_TRY(id.vae_hash, a1111_model_hash(*options.vae));
    }
  }
  return sd;
}

Result<Conditioning> StableDiffusion::condition(Context& ctx, const std::string& prompt, int batch,
                                                const GenerationParams& p) const {
  const bool open_clip = checkpoint_.info().version == SdVersion::Sd2;
  // SD2 always uses the penultimate layer (A1111 ignores its CLIP-skip setting there): a single file
  // holds all 24 layers; a diffusers text_encoder was saved with 23.
  int skip = p.clip_skip;
  if (open_clip) skip = checkpoint_.info().naming == SdNaming::Original ? 2 : 1;
  const ChunkEncoder encoder = [&](Context& c, const Tensor& ids) {
    return ChunkEncoding{text_encoder_.encode(c, ids, skip), {}, {}};
  };
  PromptEncodeOptions options;
  options.pad_id = open_clip ? 0 : ClipTokenizer::kEos;
  const std::vector<std::string> prompts(size_t(batch), prompt);
  EASEL_TRY(auto cond, encode_prompts(ctx, tokenizer_, prompts, encoder, options));
  return Conditioning{cond.hidden, {}, {}};
}

Tensor StableDiffusion::predict(Context& ctx, const Tensor& x_in, const Tensor& t, const Conditioning& c) const {
  return unet_.forward(ctx, x_in, t, c.context);
}

std::unique_ptr<sampling::Denoiser> StableDiffusion::denoiser(sampling::ModelFn model) const {
  return std::make_unique<sampling::CompVisDenoiser>(schedule_, prediction_, std::move(model));
}

Tensor StableDiffusion::encode(Context& ctx, const Tensor& pixels) const {
  const Tensor moments = vae_.encode_moments(ctx, pixels);
  return latent_format_.to_model(ctx, VaeKl::moments_mean(moments));
}

Tensor StableDiffusion::decode(Context& ctx, const Tensor& latents) const {
  return vae_.decode(ctx, latent_format_.to_vae(ctx, latents));
}

Tensor StableDiffusion::inpainting_conditioning(Context& ctx, const Tensor& source, const Image* mask, int64_t h,
                                                int64_t w) const {
  // processing.py inpainting_image_conditioning (inpainting_mask_weight 1): the image with the area
  // to repaint blacked out (0 in [-1, 1]), encoded, after the pixel mask nearest-downsampled to the
  // latent size. Without a mask (txt2img, plain img2img) the whole image is masked.
  Tensor mask_small, masked_image;
  if (mask) {
    const Tensor pixels = pixel_mask(*mask);
    masked_image = ops::mul(ctx, source, ops::affine(ctx, pixels, -1.0f, 1.0f));
    // F.interpolate(mode="nearest") to 1/8 size picks pixel (8i, 8j).
    std::vector<float> m = pixels.to_vector<float>(), small;
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) small.push_back(m[size_t(i * 8 * mask->width + j * 8)]);
    mask_small = Tensor::from_vector(small, {1, 1, h, w});
  } else {
    masked_image = ops::zeros(ctx, Shape{1, 3, h * 8, w * 8});
    mask_small = ops::full(ctx, Shape{1, 1, h, w}, 1.0f);
  }
  const Tensor parts[] = {mask_small, encode(ctx, masked_image)};
  return ops::concat(ctx, parts, 1);
}

}  // namespace easel
