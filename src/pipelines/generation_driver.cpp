#include "pipelines/generation_driver.h"

#include <chrono>
#include <optional>
#include <random>

#include "io/image_tensor.h"
#include "ops/ops.h"
#include "pipelines/img2img_images.h"
#include "pipelines/img2img_latents.h"
#include "pipelines/infotext.h"
#include "sampling/brownian_tree.h"
#include "sampling/guidance.h"
#include "sampling/image_rng.h"
#include "sampling/masked_denoiser.h"

namespace easel {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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

// Cond and uncond as one batch of 2B (each defined part concatenated), for one network call.
Conditioning batch_of_both(Context& ctx, const Conditioning& cond, const Conditioning& uncond) {
  const auto both = [&](const Tensor& a, const Tensor& b) {
    if (!a.defined()) return Tensor{};
    const Tensor parts[] = {a, b};
    return ops::concat(ctx, parts, 0);
  };
  return {both(cond.context, uncond.context), both(cond.pooled, uncond.pooled), both(cond.added, uncond.added)};
}

// The guided model output for the samplers (A1111's CFGDenoiser). Cond and uncond run as one
// batch when their token counts agree; otherwise as two calls, as A1111 does with
// pad_cond_uncond off.
sampling::ModelFn guided_model(const DiffusionFamily& family, const Conditioning& cond, const Conditioning& uncond,
                               const Conditioning& both, const Tensor& image_cond, float cfg_scale, float phi) {
  return [&family, &cond, &uncond, &both, &image_cond, cfg_scale, phi](Context& c, const Tensor& x_latent,
                                                                       float t) -> Tensor {
    const int64_t n = x_latent.size(0);
    Tensor x_in = x_latent;
    if (image_cond.defined()) {
      const Tensor parts[] = {x_latent, image_cond};
      x_in = ops::concat(c, parts, 1);
    }
    Tensor out_cond, out_uncond;
    if (both.context.defined()) {
      const Tensor xs[] = {x_in, x_in};
      const Tensor out = family.predict(c, ops::concat(c, xs, 0), ops::full(c, Shape{2 * n}, t), both);
      out_cond = out.narrow(0, 0, n);
      out_uncond = out.narrow(0, n, n);
    } else {
      const Tensor ts = ops::full(c, Shape{n}, t);
      out_cond = family.predict(c, x_in, ts, cond);
      out_uncond = family.predict(c, x_in, ts, uncond);
    }
    Tensor guided = sampling::cfg(c, out_uncond, out_cond, cfg_scale);
    return phi > 0 ? sampling::rescale_cfg(c, guided, out_cond, phi) : guided;
  };
}

}  // namespace

Result<GenerationResult> generate(Context& ctx, const DiffusionFamily& family, const GenerationParams& p,
                                  const GenerationInputs& inputs, const GenerationCallbacks& callbacks) {
  EASEL_TRY_STATUS(validate(p));
  EASEL_TRY_STATUS(validate(inputs));
  EASEL_TRY(const auto choice, sampling::parse_sampler_and_schedule(p.sampler_name, p.scheduler));
  const ModelIdentity& model = family.identity();
  const LatentFormat& format = family.latent_format();
  const bool img2img = inputs.is_img2img();
  if (img2img && !family.can_encode())
    return Error("img2img needs the VAE's encoder, and this checkpoint's VAE has none");
  std::optional<Img2ImgImages> images;
  if (img2img) {
    EASEL_TRY(images, prepare_img2img_images(*inputs.init_image, inputs.mask, p));
    // A1111's 9-channel conditioning encodes the init image at its own size and pairs it with a mask
    // at the request's: with latent upscale the two differ and A1111 fails.
    if (images->latent_upscale && model.inpainting)
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
    EASEL_TRY(const Conditioning cond, family.condition(ctx, p.prompt, p.batch_size, p));
    EASEL_TRY(const Conditioning uncond, family.condition(ctx, p.negative_prompt, p.batch_size, p));
    result.timings.conditioning_s = seconds_since(t0);
    // Named intermediates, so that tests compare them with the reference stage by stage.
    ctx.trace("cond", cond.context);
    ctx.trace("uncond", uncond.context);
    const Conditioning both =
        cond.context.size(1) == uncond.context.size(1) ? batch_of_both(ctx, cond, uncond) : Conditioning{};

    const int64_t c = format.channels, h = p.height / format.downscale, w = p.width / format.downscale;
    Tensor init;  // img2img: the init image's latents, one per batch image
    std::optional<sampling::LatentBlend> blend;  // inpainting: the latent mask (1 = repaint) and the blend
    Tensor source;  // the init image in [-1, 1] (A1111: x / 255 * 2 - 1)
    if (images) {
      source = ops::affine(ctx, image_to_tensor(images->image), 2.0f, -1.0f);
      Tensor latent = family.encode(ctx, source);
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
    // Inpainting models see [x, mask, masked-image latents] (ldm "hybrid" conditioning).
    Tensor image_cond;
    if (model.inpainting) {
      const Image* mask = images && images->mask ? &*images->mask : nullptr;
      image_cond = repeat_batch(ctx, family.inpainting_conditioning(ctx, source, mask, h, w), p.batch_size);
      ctx.trace("image_conditioning", image_cond);
    }

    const sampling::ModelFn guided =
        guided_model(family, cond, uncond, both, image_cond, float(p.cfg_scale), float(p.guidance_rescale));
    std::unique_ptr<sampling::Denoiser> unmasked = family.denoiser(guided);
    // A1111 runs its LCM sampler over its own LCMCompVisDenoiser whatever the checkpoint: the
    // network read as eps on LCM's 50 timesteps of the model's DDPM schedule.
    if (choice.sampler == sampling::SamplerKind::Lcm) {
      const sampling::TimestepModel* ddpm = unmasked->timesteps();
      if (!ddpm)
        return Error("sampler_name: LCM needs a model trained on a DDPM noise schedule, and this one is not; "
                     "use Euler, or another k-diffusion sampler");
      unmasked = std::make_unique<sampling::LcmDenoiser>(ddpm->training_schedule(), guided);
    }
    // Inpainting: the blend at every model call.
    std::optional<sampling::MaskedDenoiser> masked;
    if (blend) masked.emplace(*unmasked, *blend);
    const sampling::Denoiser& denoiser = masked ? static_cast<const sampling::Denoiser&>(*masked) : *unmasked;
    const sampling::Plan plan = img2img ? sampling::plan_img2img(choice, denoiser, p.steps, float(p.denoising_strength))
                                        : sampling::plan_txt2img(choice, denoiser, p.steps);
    const GenerationControl& control = callbacks.control;
    sampling::SamplerOptions sampler_options;
    sampler_options.s_noise = float(p.s_noise);
    if (control.interrupt || control.skip)
      sampler_options.stop_early = [&control] { return control.interrupted() || control.skipped(); };

    // A1111 writes the schedule "Automatic" resolved to (DPM++ 2M: Karras), or "Automatic" when
    // that is the model's own spacing.
    sampling::ScheduleType resolved_schedule = choice.schedule;
    if (resolved_schedule == sampling::ScheduleType::Automatic &&
        sampling::sampler_info(choice.sampler).automatic != sampling::ScheduleType::Uniform)
      resolved_schedule = sampling::sampler_info(choice.sampler).automatic;

    for (int iter = 0; iter < p.n_iter; ++iter) {
      // A1111 (process_images_inner): a skip ends only the batch it hit; an interrupt ends them all.
      if (control.skip) control.skip->store(false);
      if (control.interrupted()) break;
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
        if (callbacks.on_step) callbacks.on_step(s);
      };
      EASEL_TRY(Tensor latents, sampling::sample(ctx, plan, denoiser, x, noise, sampler_options, step_hook));
      // Inpainting keeps the init latents outside the mask exactly (processing.py sample()).
      if (blend) latents = sampling::blend_latents(ctx, latents, init, blend->nmask);
      ctx.trace("latents", latents);
      result.timings.sampling_s += seconds_since(ts);
      result.timings.steps += plan.steps();

      auto td = Clock::now();
      const Tensor decoded = family.decode(ctx, latents);
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
        prov.model_hash = model.model_hash;
        prov.model_name = model.model_name;
        prov.vae_hash = model.vae_hash;
        prov.vae_name = model.vae_name;
        prov.img2img = img2img;
        prov.inpainting_model = model.inpainting;
        if (images) prov.img2img_params = images->infotext;
        GeneratedImage out{std::move(image), prov.seed, prov.subseed, format_infotext(make_infotext(p, prov))};
        out.image.text.emplace_back("parameters", out.infotext);
        if (callbacks.on_image) callbacks.on_image(out);
        result.images.push_back(std::move(out));
      }
    }
    // Give the activations' memory back: an idle server should not hold a VAE decode's worth.
    ctx.allocator().trim();
    return result;
  });
}

}  // namespace easel
