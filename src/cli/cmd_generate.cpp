// easel generate --model FILE --prompt TEXT ... --output FILE
// Stable Diffusion 1.x / 2.x text-to-image with A1111's parameters, names and seeds.
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "io/image.h"
#include "pipelines/sd_load_options.h"
#include "pipelines/stable_diffusion.h"

namespace easel::cli {
namespace {

namespace fs = std::filesystem;

struct GenerateArgs {
  GenerationParams params;
  std::string model, vae, output, prediction, report;
  std::string init_image, mask;  // files, read here: the pipeline takes pictures
};

// out.png for one image; out-1.png, out-2.png, ... for several.
fs::path output_path(const fs::path& output, int index, int count) {
  if (count == 1) return output;
  fs::path p = output;
  p.replace_filename(cat(output.stem().string(), "-", index + 1, output.extension().string()));
  return p;
}

Status run(const GenerateArgs& a, int threads) {
  if (!image_format_from_extension(a.output))
    return Error(cat(a.output, ": the output must end in .png, .jpg or .webp"));
  EASEL_TRY_STATUS(validate(a.params));
  // The sidecar beside the checkpoint first (as `easel serve` reads it), then the flags.
  EASEL_TRY(SdLoadOptions options, load_options_for(a.model));
  if (!a.vae.empty()) options.vae = a.vae;
  if (a.prediction == "v") options.prediction = Prediction::V;
  if (a.prediction == "eps") options.prediction = Prediction::Eps;

  // The pictures first: a missing file fails before a model is loaded.
  GenerationInputs inputs;
  if (!a.init_image.empty()) {
    EASEL_TRY(inputs.init_image, read_image(a.init_image));
  }
  if (!a.mask.empty()) {
    EASEL_TRY(inputs.mask, read_image(a.mask));
  }

  EASEL_TRY(auto runtime, Runtime::create({.threads = threads}));
  Context ctx = runtime->context();
  const auto t0 = std::chrono::steady_clock::now();
  EASEL_TRY(auto sd, StableDiffusion::load(ctx, a.model, options));
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "%s: %s (%s-prediction)\n", a.model.c_str(), sd.info().variant.c_str(),
               sd.prediction() == Prediction::V ? "v" : "eps");

  ProgressBar bar;
  ctx.on_progress = [&](const Progress& p) {
    if (p.stage == "sample" || p.stage == "decode") bar.update(p);
  };
  const int count = a.params.batch_size * a.params.n_iter;
  int written = 0;
  Status write_status;
  const auto t1 = std::chrono::steady_clock::now();
  GenerationCallbacks callbacks;
  callbacks.on_image = [&](const GeneratedImage& image) {
    const fs::path path = output_path(a.output, written++, count);
    if (auto s = write_image(path, image.image); !s.ok() && write_status.ok()) write_status = s;
  };
  EASEL_TRY(auto result, sd.generate(ctx, a.params, inputs, callbacks));
  bar.finish();
  for (const std::string& comment : result.comments) std::fprintf(stderr, "note: %s\n", comment.c_str());
  EASEL_TRY_STATUS(write_status);
  const double generate_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  const auto& t = result.timings;
  std::fprintf(stderr, "%d image%s in %.1f s: %.2f s/step (%.2f it/s), VAE decode %.2f s, text encoder %.2f s\n",
               count, count > 1 ? "s" : "", generate_s, t.seconds_per_step(),
               t.seconds_per_step() > 0 ? 1.0 / t.seconds_per_step() : 0.0, t.decode_s, t.conditioning_s);
  for (int i = 0; i < count; ++i) std::printf("%s\n", output_path(a.output, i, count).string().c_str());
  if (!a.report.empty()) {
    nlohmann::json j{{"load_s", load_s},        {"generate_s", generate_s}, {"step_s", t.seconds_per_step()},
                     {"steps", t.steps},        {"vae_s", t.decode_s},      {"conditioning_s", t.conditioning_s},
                     {"seeds", nlohmann::json::array()}};
    for (const auto& im : result.images) j["seeds"].push_back(im.seed);
    std::ofstream(a.report) << j.dump(1) << "\n";
  }
  return {};
}

}  // namespace

void add_generate_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
  auto* cmd = app.add_subcommand("generate", "Generate images with a Stable Diffusion 1.x/2.x checkpoint");
  auto a = std::make_shared<GenerateArgs>();
  GenerationParams& p = a->params;
  cmd->add_option("--model", a->model, "checkpoint: .safetensors / .ckpt single file or a diffusers folder")->required();
  cmd->add_option("--prompt", p.prompt, "what to draw; A1111 emphasis syntax (word:1.2), [word], BREAK")->required();
  cmd->add_option("--negative-prompt,--negative_prompt", p.negative_prompt, "what to avoid");
  cmd->add_option("--steps", p.steps, "sampling steps")->capture_default_str();
  cmd->add_option("--width", p.width, "image width, a multiple of 8")->capture_default_str();
  cmd->add_option("--height", p.height, "image height, a multiple of 8")->capture_default_str();
  cmd->add_option("--sampler,--sampler-name,--sampler_name", p.sampler_name,
                  "A1111 sampler name: Euler, Euler a, DPM++ 2M, DPM++ SDE, DDIM, UniPC, ... (legacy \"DPM++ 2M Karras\" too)")
      ->capture_default_str();
  cmd->add_option("--scheduler", p.scheduler, "schedule type: Automatic, Karras, Exponential, SGM Uniform")
      ->capture_default_str();
  cmd->add_option("--cfg-scale,--cfg_scale", p.cfg_scale, "classifier-free guidance scale")->capture_default_str();
  cmd->add_option("--guidance-rescale", p.guidance_rescale, "CFG rescale phi, 0..1")->capture_default_str();
  cmd->add_option("--seed", p.seed, "-1 for a random seed; image i of the batch uses seed + i")->capture_default_str();
  cmd->add_option("--subseed", p.subseed, "variation seed")->capture_default_str();
  cmd->add_option("--subseed-strength,--subseed_strength", p.subseed_strength, "variation strength 0..1")
      ->capture_default_str();
  cmd->add_option("--batch-size,--batch_size", p.batch_size, "images per batch")->capture_default_str();
  cmd->add_option("--n-iter,--n_iter,--batch-count", p.n_iter, "number of batches")->capture_default_str();
  cmd->add_option("--clip-skip,--clip_skip", p.clip_skip, "CLIP skip (SD 1.x)")->capture_default_str();
  cmd->add_option("--eta-noise-seed-delta", p.eta_noise_seed_delta, "A1111's ENSD")->capture_default_str();
  cmd->add_option("--init-image,--init_image", a->init_image, "img2img: the starting image");
  cmd->add_option("--mask", a->mask, "inpaint: white where to repaint");
  cmd->add_option("--denoising-strength,--denoising_strength", p.denoising_strength, "img2img strength 0..1")
      ->capture_default_str();
  cmd->add_option("--resize-mode,--resize_mode", p.resize_mode,
                  "init image to the request's size: 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale")
      ->capture_default_str();
  cmd->add_option("--mask-blur,--mask_blur", p.mask_blur, "inpaint: Gaussian blur of the mask, pixels")
      ->capture_default_str();
  cmd->add_option("--inpainting-fill,--inpainting_fill", p.inpainting_fill,
                  "inpaint, masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing")
      ->capture_default_str();
  cmd->add_option("--inpaint-full-res,--inpaint_full_res", p.inpaint_full_res,
                  "inpaint area: true = only masked (the mask's region generated at full size), false = whole picture")
      ->capture_default_str();
  cmd->add_option("--inpaint-full-res-padding,--inpaint_full_res_padding", p.inpaint_full_res_padding,
                  "only masked: pixels of context around the mask")
      ->capture_default_str();
  cmd->add_option("--inpainting-mask-invert,--inpainting_mask_invert", p.inpainting_mask_invert,
                  "inpaint: 1 = repaint what the mask leaves black")
      ->capture_default_str();
  cmd->add_option("--vae", a->vae, "a separate VAE file replacing the checkpoint's");
  cmd->add_option("--prediction", a->prediction, "override what the model predicts: eps or v")
      ->check(CLI::IsMember({"eps", "v"}));
  cmd->add_option("--output,-o", a->output, "output image (.png keeps the parameters; several images get -1, -2, ...)")
      ->required();
  cmd->add_option("--report", a->report, "write timings as JSON to this file (benchmarks)");
  cmd->callback([a, &global, &exit_code] {
    Status s = run(*a, global.threads);
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.error().message().c_str());
      exit_code = 1;
    }
  });
}

}  // namespace easel::cli
