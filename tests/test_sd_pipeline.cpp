// Whole Stable Diffusion generations against set sd_pipeline_tiny: A1111's processing reproduced in
// Python on tiny SD 1.x / 2.x models (tools/refgen/sd_pipeline.py). Every case of cases.json runs
// from its A1111 request alone; the conditioning, the noise, every sampler step, the final latents,
// the decoded image and the PNG are compared. The models come in every layout users have (single
// .safetensors, .ckpt, diffusers folder), and the same request gives the same pixels from each.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "models/registry.h"
#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"
#include "test_data.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr float kTolerance = 1e-4f;  // relative, fp32

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// Head counts and group counts are not visible in tensor shapes: the set states them per model.
SdLoadOptions load_options(const json& model) {
  SdLoadOptions o;
  o.compute_model_hash = false;
  o.text_encoder_heads = model["text_encoder"]["heads"].get<int>();
  const json& att = model["unet"]["attention"];
  UnetOptions u;
  if (!att["num_heads"].is_null()) u.num_heads = att["num_heads"].get<int>();
  else u.head_dim = att["head_dim"].get<int>();
  u.norm_groups = model["unet"]["norm_groups"].get<int>();
  o.unet = u;
  o.vae_norm_groups = model["vae"]["norm_groups"].get<int>();
  o.prediction = model["prediction_type"] == "v" ? Prediction::V : Prediction::Eps;
  return o;
}

// The set's first SD 1.x model whose UNet takes `in_channels` (4: text-to-image, 9: inpainting),
// loaded; a test failure when the set has none.
std::optional<StableDiffusion> first_sd1_model(Context& ctx, const fs::path& dir, const json& info, int in_channels) {
  for (const auto& [file, model] : info["models"].items()) {
    if (model["family"] != "sd1" || model["unet"]["diffusers_config"]["in_channels"] != in_channels) continue;
    auto sd = StableDiffusion::load(ctx, dir / file, load_options(model));
    EXPECT_TRUE(sd.ok()) << file << ": " << sd.error().message();
    if (!sd.ok()) return std::nullopt;
    return std::move(*sd);
  }
  ADD_FAILURE() << "the set has no SD 1.x model with " << in_channels << " UNet input channels";
  return std::nullopt;
}

// The name of the set's first img2img case without a mask whose resize mode is not latent upscale
// (a mask with resize mode 3 is refused before it is looked at); "" (and a failure) when none.
std::string first_plain_img2img_case(const json& cases) {
  for (const auto& [name, c] : cases.items()) {
    const json& r = c["request"];
    if (r.contains("init_images") && !r.contains("mask") && r.value("resize_mode", 0) != 3) return name;
  }
  ADD_FAILURE() << "the set has no img2img case without a mask";
  return "";
}

// The set's tensors of one case that generation traces: every one but the schedule tables
// (`sigmas`, `sigmas_full`), which are no stage of the pipeline; each step that walks them is.
std::set<std::string> traced_stages(const Checkpoint& golden, const std::string& name) {
  std::set<std::string> keys;
  for (const std::string& key : golden.names()) {
    if (!key.starts_with(name + ".")) continue;
    const std::string stage = key.substr(name.size() + 1);
    if (stage != "sigmas" && stage != "sigmas_full") keys.insert(key);
  }
  return keys;
}

// A one-channel image of w x h, every pixel `value` (masks the tests make themselves).
Image flat_mask(int w, int h, uint8_t value) { return Image{w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3, value), {}}; }

// A small text-to-image request the tiny models run in milliseconds.
GenerationParams small_request(int steps, int64_t seed) {
  GenerationParams p;
  p.prompt = "a lighthouse at dusk";
  p.width = 48;
  p.height = 32;
  p.steps = steps;
  p.seed = seed;
  return p;
}

// The request's pictures, read from the set.
GenerationInputs request_inputs(const json& r, const fs::path& dir) {
  GenerationInputs in;
  if (r.contains("init_images")) in.init_image = read_image(dir / r["init_images"][0].get<std::string>()).value();
  if (r.contains("mask")) in.mask = read_image(dir / r["mask"].get<std::string>()).value();
  return in;
}

GenerationParams request_params(const json& r) {
  GenerationParams p;
  p.prompt = r.value("prompt", "");
  p.negative_prompt = r.value("negative_prompt", "");
  p.steps = r["steps"];
  p.sampler_name = r["sampler_name"];
  p.scheduler = r.value("scheduler", "Automatic");
  p.cfg_scale = r["cfg_scale"];
  p.width = r["width"];
  p.height = r["height"];
  p.batch_size = r.value("batch_size", 1);
  p.n_iter = r.value("n_iter", 1);
  p.seed = r["seed"];
  p.subseed = r.value("subseed", int64_t{-1});
  p.subseed_strength = r.value("subseed_strength", 0.0);
  if (r.contains("override_settings")) p.clip_skip = r["override_settings"].value("CLIP_stop_at_last_layers", 1);
  p.denoising_strength = r.value("denoising_strength", p.denoising_strength);
  p.resize_mode = r.value("resize_mode", p.resize_mode);
  p.mask_blur = r.value("mask_blur", p.mask_blur);
  p.inpainting_fill = r.value("inpainting_fill", p.inpainting_fill);
  p.inpaint_full_res = r.value("inpaint_full_res", p.inpaint_full_res);
  p.inpaint_full_res_padding = r.value("inpaint_full_res_padding", p.inpaint_full_res_padding);
  p.inpainting_mask_invert = r.value("inpainting_mask_invert", p.inpainting_mask_invert);
  return p;
}

TEST(SdPipeline, EveryCaseMatchesTheReference) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  const json info = read_json(dir / "info.json");
  const json cases = read_json(dir / "cases.json")["cases"];
  const Checkpoint golden = Checkpoint::open(dir / "cases.safetensors").value();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  std::map<std::string, StableDiffusion> models;
  int checked = 0;
  for (const auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    const GenerationParams p = request_params(c["request"]);
    const GenerationInputs inputs = request_inputs(c["request"], dir);
    const std::string model_file = c["model_file"];
    if (!models.count(model_file)) {
      auto sd = StableDiffusion::load(ctx, dir / model_file, load_options(info["models"][model_file]));
      ASSERT_TRUE(sd.ok()) << sd.error().message();
      models.emplace(model_file, std::move(*sd));
    }
    // Every stage the set has (cond, uncond, noise, x_start, stepN, denoisedN, latents, decoded,
    // init_latent, nmask, image_conditioning) is traced and compared: exactly the set's, as in the
    // UNet and VAE tests.
    std::set<std::string> compared;
    float worst_stage = 0;
    ctx.on_trace = [&](std::string_view stage, const Tensor& t) {
      const std::string key = name + "." + std::string(stage);
      if (!golden.find(key)) return;
      const float err = testing::max_rel_diff(t, golden.get(key).value());
      EXPECT_LE(err, kTolerance) << key;
      worst_stage = std::max(worst_stage, err);
      compared.insert(key);
    };
    auto result = models.at(model_file).generate(ctx, p, inputs);
    ctx.on_trace = nullptr;
    ASSERT_TRUE(result.ok()) << result.error().message();
    EXPECT_EQ(compared, traced_stages(golden, name)) << "every stage of the set is traced and compared";
    const size_t stages = compared.size();
    const auto images = c["images"].get<std::vector<std::string>>();
    ASSERT_EQ(result->images.size(), images.size());
    int worst_pixel = 0;
    for (size_t i = 0; i < images.size(); ++i) {
      const Image ref = read_image(dir / images[i]).value();
      const Image& got = result->images[i].image;
      ASSERT_EQ(got.width, ref.width);
      ASSERT_EQ(got.height, ref.height);
      int worst = 0;
      const Image ref_rgb = to_rgb(ref);
      for (size_t k = 0; k < got.pixels.size(); ++k) worst = std::max(worst, std::abs(int(got.pixels[k]) - int(ref_rgb.pixels[k])));
      EXPECT_LE(worst, 1) << images[i];
      worst_pixel = std::max(worst_pixel, worst);
      EXPECT_EQ(result->images[i].seed, c["all_seeds"][i].get<int64_t>());
      // The img2img / inpaint fields A1111 adds to the infotext (extra_generation_params), and no others.
      const Infotext info = parse_infotext(result->images[i].infotext);
      const json extra = c.value("infotext_extra", json::object());
      for (const auto& [key, value] : extra.items()) {
        const std::string* got_value = info.find(key);
        ASSERT_NE(got_value, nullptr) << key;
        EXPECT_EQ(*got_value, value.is_string() ? value.get<std::string>() : value.dump()) << key;
      }
      for (const char* key : {"Mask mode", "Mask blur", "Inpaint area", "Masked area padding", "Masked content"}) {
        if (!extra.contains(key)) {
          EXPECT_EQ(info.find(key), nullptr) << key;
        }
      }
    }
    std::printf("  %-28s %s: %zu stages, max rel err %.2e, max pixel diff %d/255\n", name.c_str(),
                model_file.c_str(), stages, worst_stage, worst_pixel);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// The same weights as a single .safetensors, a .ckpt and a diffusers folder give the same pixels.
TEST(SdPipeline, EveryLayoutOfOneModelGivesTheSameImage) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  const json info = read_json(dir / "info.json");
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  std::map<std::string, std::vector<std::string>> layouts;  // first file -> files with the same weights
  for (const auto& [file, m] : info["models"].items())
    if (m.contains("same_weights_as") && m["same_weights_as"].is_array())
      layouts[m["same_weights_as"][0].get<std::string>()].push_back(file);
  int compared = 0;
  for (const auto& [first, files] : layouts) {
    if (files.size() < 2) continue;
    const GenerationParams p = small_request(3, 77);
    std::vector<uint8_t> reference;
    for (const std::string& file : files) {
      SCOPED_TRACE(file);
      auto sd = StableDiffusion::load(ctx, dir / file, load_options(info["models"][file]));
      ASSERT_TRUE(sd.ok()) << sd.error().message();
      auto r = sd->generate(ctx, p);
      ASSERT_TRUE(r.ok()) << r.error().message();
      if (reference.empty()) reference = r->images[0].image.pixels;
      else EXPECT_EQ(r->images[0].image.pixels, reference);
      ++compared;
    }
  }
  EXPECT_GE(compared, 3);
}

// "Only masked" with a blank mask: A1111 says why and runs plain img2img (no mask, no overlay).
TEST(SdPipeline, OnlyMaskedWithABlankMaskFallsBackToImg2Img) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  const json info = read_json(dir / "info.json");
  const json cases = read_json(dir / "cases.json")["cases"];
  const std::string name = first_plain_img2img_case(cases);
  ASSERT_FALSE(name.empty());
  SCOPED_TRACE(name);
  const json& c = cases[name];
  GenerationParams p = request_params(c["request"]);
  GenerationInputs inputs = request_inputs(c["request"], dir);
  inputs.mask = flat_mask(inputs.init_image->width, inputs.init_image->height, 0);
  p.inpaint_full_res = true;
  p.mask_blur = 0;
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto sd = StableDiffusion::load(ctx, dir / c["model_file"].get<std::string>(),
                                  load_options(info["models"][c["model_file"].get<std::string>()]));
  ASSERT_TRUE(sd.ok()) << sd.error().message();
  auto r = sd->generate(ctx, p, inputs);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->comments.size(), 1u);
  EXPECT_NE(r->comments[0].find("mask is blank"), std::string::npos) << r->comments[0];
  const auto images = c["images"].get<std::vector<std::string>>();
  ASSERT_EQ(r->images.size(), images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const Image ref = to_rgb(read_image(dir / images[i]).value());
    const Image& got = r->images[i].image;
    ASSERT_EQ(got.pixels.size(), ref.pixels.size()) << images[i];
    int worst = 0;
    for (size_t k = 0; k < got.pixels.size(); ++k) worst = std::max(worst, std::abs(int(got.pixels[k]) - int(ref.pixels[k])));
    EXPECT_LE(worst, 1) << images[i];
    EXPECT_EQ(parse_infotext(r->images[i].infotext).find("Inpaint area"), nullptr);
  }
}

// Requests A1111 cannot run, or that make no sense, are errors that say what is wrong.
TEST(SdPipeline, ClearErrorsForBadImg2ImgRequests) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  const json info = read_json(dir / "info.json");
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto sd1 = first_sd1_model(ctx, dir, info, 4);
  auto inpainting = first_sd1_model(ctx, dir, info, 9);
  ASSERT_TRUE(sd1 && inpainting);
  // The init image of the set's first img2img case; the masks are made here, of its size and of another.
  const json cases = read_json(dir / "cases.json")["cases"];
  const std::string i2i = first_plain_img2img_case(cases);
  ASSERT_FALSE(i2i.empty());
  GenerationParams p;
  p.prompt = "a red ball";
  p.width = 48;
  p.height = 32;
  p.steps = 2;
  p.seed = 1;
  GenerationInputs init = request_inputs(cases[i2i]["request"], dir);
  const int w = init.init_image->width, h = init.init_image->height;
  auto error_of = [&](const StableDiffusion& sd, const GenerationParams& q, const GenerationInputs& in) {
    auto r = sd.generate(ctx, q, in);
    return r.ok() ? std::string("(no error)") : r.error().message();
  };
  GenerationInputs with_mask = init;
  with_mask.mask = flat_mask(w + 8, h + 16, 255);
  EXPECT_NE(error_of(*sd1, p, with_mask).find(cat("mask: is ", w + 8, "x", h + 16, ", the init image ", w, "x", h)),
            std::string::npos)
      << error_of(*sd1, p, with_mask);
  with_mask.mask = flat_mask(w, h, 255);
  GenerationParams q = p;
  q.resize_mode = 3;
  EXPECT_NE(error_of(*sd1, q, with_mask).find("resize_mode: 3"), std::string::npos) << error_of(*sd1, q, with_mask);
  GenerationInputs mask_only;
  mask_only.mask = with_mask.mask;
  EXPECT_NE(error_of(*sd1, p, mask_only).find("mask: inpainting needs an init image"), std::string::npos)
      << error_of(*sd1, p, mask_only);
  EXPECT_NE(error_of(*inpainting, q, init).find("inpainting model"), std::string::npos) << error_of(*inpainting, q, init);
  for (auto [field, bad] : std::initializer_list<std::pair<const char*, void (*)(GenerationParams&)>>{
           {"resize_mode", [](GenerationParams& g) { g.resize_mode = 4; }},
           {"mask_blur", [](GenerationParams& g) { g.mask_blur = -1; }},
           {"inpainting_fill", [](GenerationParams& g) { g.inpainting_fill = 5; }},
           {"inpaint_full_res_padding", [](GenerationParams& g) { g.inpaint_full_res_padding = -8; }},
           {"inpainting_mask_invert", [](GenerationParams& g) { g.inpainting_mask_invert = 2; }}}) {
    q = p;
    bad(q);
    EXPECT_EQ(error_of(*sd1, q, init).rfind(field, 0), 0u) << field << ": " << error_of(*sd1, q, init);
  }
}

// A1111 lists LCM among its samplers and runs it over its LCM denoiser (sd_samplers_lcm.py): text
// to image and inpainting (the LCM denoiser inside the inpainting blend) run, their infotext names
// the sampler, and LCM's few steps give another image than Euler's.
TEST(SdPipeline, LcmRunsOverA1111sLcmDenoiser) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto sd = first_sd1_model(ctx, dir, read_json(dir / "info.json"), 4);
  ASSERT_TRUE(sd);
  GenerationParams p = small_request(4, 3);
  p.sampler_name = "LCM";
  p.cfg_scale = 1.5;
  auto lcm = sd->generate(ctx, p);
  ASSERT_TRUE(lcm.ok()) << lcm.error().message();
  ASSERT_EQ(lcm->images.size(), 1u);
  EXPECT_NE(lcm->images[0].infotext.find("Sampler: LCM"), std::string::npos) << lcm->images[0].infotext;
  GenerationParams euler = p;
  euler.sampler_name = "Euler";
  auto other = sd->generate(ctx, euler);
  ASSERT_TRUE(other.ok()) << other.error().message();
  EXPECT_NE(lcm->images[0].image.pixels, other->images[0].image.pixels);

  GenerationInputs inpaint;
  inpaint.init_image = flat_mask(p.width, p.height, 128);
  inpaint.mask = flat_mask(p.width, p.height, 255);
  auto inpainted = sd->generate(ctx, p, inpaint);
  ASSERT_TRUE(inpainted.ok()) << inpainted.error().message();
  EXPECT_NE(inpainted->images[0].infotext.find("Sampler: LCM"), std::string::npos);
}

// The SDE samplers' Brownian-tree noise is seeded per batch with that batch's seeds (A1111's
// current_iter_seeds): the second batch of "seed 5, 2 x 2 images" is the batch of "seed 7, 2 images".
TEST(SdPipeline, SdeNoiseFollowsEachBatchsSeeds) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto sd = first_sd1_model(ctx, dir, read_json(dir / "info.json"), 4);
  ASSERT_TRUE(sd);
  GenerationParams p = small_request(3, 5);
  p.sampler_name = "DPM++ 2M SDE";
  p.batch_size = 2;
  p.n_iter = 2;
  auto both = sd->generate(ctx, p);
  ASSERT_TRUE(both.ok()) << both.error().message();
  p.n_iter = 1;
  p.seed = 7;
  auto second = sd->generate(ctx, p);
  ASSERT_TRUE(second.ok()) << second.error().message();
  ASSERT_EQ(both->images.size(), 4u);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(both->images[2 + i].image.pixels, second->images[i].image.pixels) << i;
  EXPECT_NE(both->images[0].image.pixels, second->images[0].image.pixels);
}

// A1111's interrupt finishes the current batch from the sampler's last x0 estimate and runs no
// more batches; skip finishes the current batch the same way and goes on with the next.
TEST(SdPipeline, InterruptAndSkipFinishWithWhatTheyHave) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto sd = first_sd1_model(ctx, dir, read_json(dir / "info.json"), 4);
  ASSERT_TRUE(sd);
  GenerationParams p = small_request(4, 5);
  p.n_iter = 2;
  for (const bool skip : {false, true}) {
    SCOPED_TRACE(skip ? "skip" : "interrupt");
    std::atomic<bool> interrupt{false}, skip_flag{false};
    GenerationCallbacks callbacks;
    callbacks.control = {&interrupt, &skip_flag};
    int steps_seen = 0;
    ctx.on_progress = [&](const Progress& pr) {
      if (pr.stage == "sample" && ++steps_seen == 2) (skip ? skip_flag : interrupt) = true;
    };
    auto r = sd->generate(ctx, p, {}, callbacks);
    ctx.on_progress = nullptr;
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->images.size(), skip ? 2u : 1u);
    EXPECT_EQ(steps_seen, skip ? 2 + 4 : 2);  // the skipped batch stopped after 2 steps, the next ran all 4
  }
}

TEST(SdPipeline, ClearErrorsForWrongInput) {
  const fs::path dir = testing::set_dir("sd_pipeline_tiny");
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto missing = StableDiffusion::load(ctx, dir / "no_such_model.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("no such file"), std::string::npos);
  // A TAESD file is a checkpoint, but not a Stable Diffusion one.
  fs::path taesd;
  for (const auto& e : fs::directory_iterator(testing::set_dir("taef2_real"))) {
    auto ck = Checkpoint::open(e.path());
    if (ck.ok() && recognize(*ck) && recognize(*ck)->family == "taesd") taesd = e.path();
  }
  ASSERT_FALSE(taesd.empty()) << "no TAESD weights in taef2_real";
  auto wrong = StableDiffusion::load(ctx, taesd);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("not a Stable Diffusion"), std::string::npos) << wrong.error().message();
}

}  // namespace
}  // namespace easel
