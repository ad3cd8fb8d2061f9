#include "pipelines/stable_diffusion.h"

#include <random>

#include "io/image_tensor.h"
#include "ops/ops.h"
#include "pipelines/img2img_images.h"
#include "pipelines/img2img_latents.h"
#include "pipelines/infotext.h"
#include "pipelines/prompt_conditioning.h"
#include "sampling/brownian_tree.h"
#include "sampling/guidance.h"
#include "sampling/image_rng.h"
#include "sampling/masked_denoiser.h"
#include "sampling/samplers.h"

namespace easel {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr float kLatentScale = 0.18215f;  // SD 1.x / 2.x VAE scaling_factor

// A1111's get_fixed_seed: -1 draws a random seed below 2^32 - 1.
int64_t fixed_seed(int64_t seed) {
  if (seed != -1) return seed;
  std::random_device rd;
  return int64_t(std::uniform_int_distribution<uint32_t>(0, 4294967293u)(rd));
}

// One copy of a [1, ...] tensor per batch image.
Tensor repeat_batch(Context& ctx, const Tensor& t, int batch) {
  const std::vector<Tensor> copies(size_t(batch), t);
  return ops::concat(ctx, copies, 0);
}

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
  sd.model_name_ = model.stem().string();
  if (options.compute_model_hash && std::filesystem::is_regular_file(model)) {
    EASEL_TRY(sd.model_hash_, a1111_model_hash(model));
  }
  if (options.vae) {
    sd.vae_name_ = options.vae->filename().string();
    if (options.compute_model_hash) {
      EASEL_TRY(sd.vae_hash_, a1111_model_hash(*options.vae));
    }
  }
  return sd;
}

Result<Tensor> StableDiffusion::conditioning(Context& ctx, const std::string& prompt, int batch, int clip_skip) const {
  const bool open_clip = checkpoint_.info().version == SdVersion::Sd2;
  // SD2 always uses the penultimate layer (A1111 ignores its CLIP-skip setting there): a single file
  // holds all 24 layers; a diffusers text_encoder was saved with 23.
  int skip = clip_skip;
  if (open_clip) skip = checkpoint_.info().naming == SdNaming::Original ? 2 : 1;
  const ChunkEncoder encoder = [&](Context& c, const Tensor& ids) {
    return ChunkEncoding{text_encoder_.encode(c, ids, skip), {}, {}};
  };
  PromptEncodeOptions options;
  options.pad_id = open_clip ? 0 : ClipTokenizer::kEos;
  const std::vector<std::string> prompts(size_t(batch), prompt);
  EASEL_TRY(auto cond, encode_prompts(ctx, tokenizer_, prompts, encoder, options));
  return cond.hidden;
}

Tensor StableDiffusion::encode_latents(Context& ctx, const Tensor& pixels) const {
  // A1111 samples the posterior with torch's global generator (not reproducible from the seed);
  // we take its mean, as diffusers' "argmax" mode does.
  const Tensor moments = vae_.encode_moments(ctx, pixels);
  return ops::affine(ctx, VaeKl::moments_mean(moments), kLatentScale, 0.0f);
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
  const Tensor parts[] = {mask_small, encode_latents(ctx, masked_image)};
  return ops::concat(ctx, parts, 1);
}

Result<GenerationResult> StableDiffusion::generate(Context& ctx, const GenerationParams& p,
                                                   const std::function<void(const GeneratedImage&)>& on_image,
                                                   const sampling::StepCallback& on_step) const {
  EASEL_TRY_STATUS(validate(p));
  EASEL_TRY(const auto choice, sampling::parse_sampler_and_schedule(p.sampler_name, p.scheduler));
  const SdCheckpointInfo& info = checkpoint_.info();
  if (p.is_img2img() && !vae_.has_encoder())
    return Error("img2img needs the VAE's encoder, and this checkpoint's VAE has none");
  std::optional<Img2ImgImages> images;
  if (p.is_img2img()) {
    EASEL_TRY(const Image init, read_image(p.init_image));
    std::optional<Image> mask;
    if (!p.mask.empty()) {
      EASEL_TRY(mask, read_image(p.mask));
    }
    EASEL_TRY(images, prepare_img2img_images(init, mask, p));
    // A1111's 9-channel conditioning encodes the init image at its own size and pairs it with a mask
    // at the request's: with latent upscale the two differ and A1111 fails.
    if (images->latent_upscale && info.inpainting)
      return Error("resize_mode: 3 (latent upscale) does not work with an inpainting model (A1111 fails on it "
                   "too); use resize_mode 0, 1 or 2");
  }

  return catch_errors([&]() -> Result<GenerationResult> {
    GenerationResult result;
    if (images) result.comments = images->comments;
    const int total = p.batch_size * p.n_iter;
    const int64_t seed = fixed_seed(p.seed), subseed = fixed_seed(p.subseed);
    std::vector<int64_t> all_seeds, all_subseeds;
    for (int i = 0; i < total; ++i) {
      all_seeds.push_back(seed + (p.subseed_strength == 0 ? i : 0));
      all_subseeds.push_back(subseed + i);
    }

    auto t0 = Clock::now();
    EASEL_TRY(Tensor cond, conditioning(ctx, p.prompt, p.batch_size, p.clip_skip));
    EASEL_TRY(Tensor uncond, conditioning(ctx, p.negative_prompt, p.batch_size, p.clip_skip));
    result.timings.conditioning_s = seconds_since(t0);
    // Named intermediates, so that tests compare them with the reference stage by stage.
    ctx.trace("cond", cond);
    ctx.trace("uncond", uncond);

    // The guided model output for the samplers. Cond and uncond run as one batch when their token
    // counts agree; otherwise as two calls, as A1111 does with pad_cond_uncond off.
    const int64_t c = unet_.config().out_channels, h = p.height / 8, w = p.width / 8;
    Tensor init;  // img2img: the init image's latents, one per batch image
    std::optional<sampling::LatentBlend> blend;  // inpainting: the latent mask (1 = repaint) and the blend
    Tensor source;  // the init image in [-1, 1] (A1111: x / 255 * 2 - 1)
    if (images) {
      source = ops::affine(ctx, image_to_tensor(images->image), 2.0f, -1.0f);
      Tensor latent = encode_latents(ctx, source);
      if (images->latent_upscale) latent = resize_latents_bilinear(latent, h, w);  // resize mode 3
      init = repeat_batch(ctx, latent, p.batch_size);
      if (images->mask) {
        const Tensor nmask = latent_mask(*images->mask, c, h, w);
        // Masked content "latent noise" / "latent nothing" (A1111 seeds the noise with the first batch's seeds).
        const std::vector<int64_t> first_seeds(all_seeds.begin(), all_seeds.begin() + p.batch_size);
        init = masked_content_latents(ctx, init, nmask, p.inpainting_fill, first_seeds);
        blend = sampling::LatentBlend{nmask, init};
        ctx.trace("nmask", nmask.select(0, 0));
      }
      ctx.trace("init_latent", init);
    }
    // 9-channel inpainting UNets see [x, mask, masked-image latents] (ldm "hybrid" conditioning).
    Tensor image_cond;
    if (info.inpainting) {
      const Image* mask = images && images->mask ? &*images->mask : nullptr;
      image_cond = repeat_batch(ctx, inpainting_conditioning(ctx, source, mask, h, w), p.batch_size);
      ctx.trace("image_conditioning", image_cond);
    }

    const float cfg_scale = float(p.cfg_scale), phi = float(p.guidance_rescale);
    const sampling::ModelFn model = [&](Context& c, const Tensor& x_latent, float t) -> Tensor {
      const int64_t n = x_latent.size(0);
      Tensor x_in = x_latent;
      if (image_cond.defined()) {
        const Tensor parts[] = {x_latent, image_cond};
        x_in = ops::concat(c, parts, 1);
      }
      const Tensor ts = ops::full(c, Shape{n}, t);
      Tensor out_cond, out_uncond;
      if (cond.size(1) == uncond.size(1)) {
        const Tensor xs[] = {x_in, x_in};
        const Tensor ctxs[] = {cond, uncond};
        const Tensor ts2 = ops::full(c, Shape{2 * n}, t);
        const Tensor out = unet_.forward(c, ops::concat(c, xs, 0), ts2, ops::concat(c, ctxs, 0));
        out_cond = out.narrow(0, 0, n);
        out_uncond = out.narrow(0, n, n);
      } else {
        out_cond = unet_.forward(c, x_in, ts, cond);
        out_uncond = unet_.forward(c, x_in, ts, uncond);
      }
      Tensor guided = sampling::cfg(c, out_uncond, out_cond, cfg_scale);
      return phi > 0 ? sampling::rescale_cfg(c, guided, out_cond, phi) : guided;
    };
    const sampling::CompVisDenoiser unmasked(schedule_, prediction_, model);
    // Inpainting: the blend at every model call.
    std::optional<sampling::MaskedDenoiser> masked;
    if (blend) masked.emplace(unmasked, *blend);
    const sampling::Denoiser& denoiser = masked ? static_cast<const sampling::Denoiser&>(*masked) : unmasked;
    const sampling::Plan plan = p.is_img2img()
                                    ? sampling::plan_img2img(choice, denoiser, p.steps, float(p.denoising_strength))
                                    : sampling::plan_txt2img(choice, denoiser, p.steps);
    sampling::SamplerOptions sampler_options;
    sampler_options.s_noise = float(p.s_noise);

    // A1111 writes the schedule "Automatic" resolved to (DPM++ 2M: Karras), or "Automatic" when
    // that is the model's own spacing.
    sampling::ScheduleType resolved_schedule = choice.schedule;
    if (resolved_schedule == sampling::ScheduleType::Automatic &&
        sampling::sampler_info(choice.sampler).automatic != sampling::ScheduleType::Uniform)
      resolved_schedule = sampling::sampler_info(choice.sampler).automatic;

    for (int iter = 0; iter < p.n_iter; ++iter) {
      // A1111 (process_images_inner): a skip ends only the batch it hit; an interrupt ends them all.
      if (ctx.skip_flag) ctx.skip_flag->store(false);
      if (ctx.interrupted()) break;
      sampling::SeedParams seeds;
      seeds.seeds.assign(all_seeds.begin() + iter * p.batch_size, all_seeds.begin() + (iter + 1) * p.batch_size);
      seeds.subseeds.assign(all_subseeds.begin() + iter * p.batch_size,
                            all_subseeds.begin() + (iter + 1) * p.batch_size);
      seeds.subseed_strength = p.subseed_strength;
      seeds.seed_resize_from_w = p.seed_resize_from_w;
      seeds.seed_resize_from_h = p.seed_resize_from_h;
      seeds.eta_noise_seed_delta = p.eta_noise_seed_delta;
      sampling::ImageRng noise(seeds);
      // A1111's SDE samplers draw from Brownian trees seeded with this batch's seeds.
      EASEL_TRY(auto brownian, sampling::a1111_noise_sampler(plan, seeds.seeds, Shape{c, h, w}));
      sampler_options.interval_noise = brownian.get();

      auto ts = Clock::now();
      const Tensor first_noise = noise.next(ctx, Shape{p.batch_size, c, h, w});
      ctx.trace("noise", first_noise);
      const Tensor x = plan.start(ctx, first_noise, init);
      ctx.trace("x_start", x);
      const sampling::StepCallback step_hook = [&](const sampling::StepInfo& s) {
        ctx.trace(cat("step", s.step + 1), s.x);
        if (s.denoised.defined()) ctx.trace(cat("denoised", s.step + 1), s.denoised);
        if (on_step) on_step(s);
      };
      EASEL_TRY(Tensor latents, sampling::sample(ctx, plan, denoiser, x, noise, sampler_options, step_hook));
      // Inpainting keeps the init latents outside the mask exactly (processing.py sample()).
      if (blend) latents = sampling::blend_latents(ctx, latents, init, blend->nmask);
      ctx.trace("latents", latents);
      result.timings.sampling_s += seconds_since(ts);
      result.timings.steps += plan.steps();

      auto td = Clock::now();
      const Tensor decoded = vae_.decode(ctx, ops::affine(ctx, latents, float(1.0 / double(kLatentScale)), 0.0f));
      ctx.trace("decoded", decoded);
      const Tensor pixels = ops::clamp(ctx, ops::affine(ctx, decoded, 0.5f, 0.5f), 0.0f, 1.0f);
      result.timings.decode_s += seconds_since(td);

      for (int i = 0; i < p.batch_size; ++i) {
        const int index = iter * p.batch_size + i;
        EASEL_TRY(Image image, tensor_to_image(pixels.select(0, i), PixelRounding::Truncate));
        if (images) image = apply_overlay(image, *images);
        ImageProvenance prov;
        prov.seed = all_seeds[size_t(index)];
        prov.subseed = all_subseeds[size_t(index)];
        prov.sampler = std::string(sampling::sampler_name(choice.sampler));
        prov.schedule = std::string(sampling::schedule_label(resolved_schedule));
        prov.model_hash = model_hash_;
        prov.model_name = model_name_;
        prov.vae_hash = vae_hash_;
        prov.vae_name = vae_name_;
        prov.inpainting_model = info.inpainting;
        if (images) prov.img2img_params = images->infotext;
        GeneratedImage out{std::move(image), prov.seed, prov.subseed, format_infotext(make_infotext(p, prov))};
        out.image.text.emplace_back("parameters", out.infotext);
        if (on_image) on_image(out);
        result.images.push_back(std::move(out));
      }
    }
    // Give the activations' memory back: an idle server should not hold a VAE decode's worth.
    ctx.allocator().trim();
    return result;
  });
}

}  // namespace easel
