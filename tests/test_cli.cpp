// The `easel` command as a user runs it: real binary, real files, exit codes and messages.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/image.h"
#include "pipelines/infotext.h"
#include "server_test_support.h"
#include "test_data.h"

namespace easel {
namespace {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code;
  std::string output;  // stdout and stderr
};

RunResult run_easel(const std::string& args) {
  const std::string command = std::string(EASEL_CLI_PATH) + " " + args + " 2>&1";
  RunResult r{-1, {}};
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// One shell word: single-quoted, a quote inside written as '\''.
std::string quoted(const std::string& text) {
  std::string q = "'";  // (built by appending: GCC 12 warns falsely on "'" + string at -O3)
  for (char ch : text) {
    if (ch == '\'') q += "'\\''";
    else q += ch;
  }
  q += '\'';
  return q;
}

std::string quoted(const fs::path& p) { return quoted(p.string()); }

fs::path temp_dir() {
  auto dir = fs::temp_directory_path() / ("easel_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

// Acceptance: `easel vae roundtrip --vae <folder> photo.png out.png` gives the reference's decoded
// PNG to within 2/255 per channel, for every photo of the set.
TEST(Cli, VaeRoundTripMatchesReferenceImages) {
  const fs::path dir = testing::set_dir("taef2_real");
  std::ifstream in(dir / "info.json");
  ASSERT_TRUE(in);
  const auto info = nlohmann::json::parse(in);
  ASSERT_FALSE(info.empty());
  for (const auto& [name, entry] : info.items()) {
    const fs::path out = temp_dir() / (name + ".roundtrip.png");
    RunResult r = run_easel("vae roundtrip --vae " + quoted(dir) + " " + quoted(dir / (name + ".png")) + " " + quoted(out));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    Image ours = to_rgb(read_image(out).value());
    Image reference = to_rgb(read_image(dir / (name + ".decoded.png")).value());
    ASSERT_EQ(ours.width, reference.width);
    ASSERT_EQ(ours.height, reference.height);
    int worst = 0;
    for (size_t i = 0; i < ours.pixels.size(); ++i)
      worst = std::max(worst, std::abs(int(ours.pixels[i]) - int(reference.pixels[i])));
    EXPECT_LE(worst, 2) << name;
    std::cout << name << ": max difference to the reference decoded PNG " << worst << "/255\n";
  }
}

TEST(Cli, EncodeThenDecodeKeepsTheImageSize) {
  const fs::path dir = testing::set_dir("taef2_real");
  // An odd-sized image: the CLI pads to a multiple of 8 and crops back.
  Image im{13, 21, 3, std::vector<uint8_t>(13 * 21 * 3), {}};
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t(i * 7);
  const fs::path src = temp_dir() / "odd.png", latents = temp_dir() / "odd.safetensors", out = temp_dir() / "odd.out.webp";
  ASSERT_TRUE(write_image(src, im).ok());
  RunResult enc = run_easel("vae encode --vae " + quoted(dir) + " " + quoted(src) + " " + quoted(latents));
  ASSERT_EQ(enc.exit_code, 0) << enc.output;
  RunResult dec = run_easel("--threads 1 vae decode --vae " + quoted(dir) + " " + quoted(latents) + " " + quoted(out));
  ASSERT_EQ(dec.exit_code, 0) << dec.output;
  Image back = read_image(out).value();
  EXPECT_EQ(back.width, 13);
  EXPECT_EQ(back.height, 21);
}

TEST(Cli, ClearErrorsForBadInput) {
  const fs::path dir = testing::set_dir("taef2_real");
  RunResult missing = run_easel("vae roundtrip --vae " + quoted(dir) + " /no/such/photo.png " + quoted(temp_dir() / "x.png"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("/no/such/photo.png"), std::string::npos) << missing.output;

  // A folder with no autoencoder in it.
  const fs::path empty = temp_dir() / "not_a_vae";
  fs::create_directories(empty);
  std::ofstream(empty / "junk.safetensors") << "not a checkpoint";
  RunResult wrong = run_easel("vae roundtrip --vae " + quoted(empty) + " x.png y.png");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.output.find("junk.safetensors"), std::string::npos) << wrong.output;

  RunResult bad_out = run_easel("vae encode --vae " + quoted(dir) + " a.png b.png");
  EXPECT_EQ(bad_out.exit_code, 1);
  EXPECT_NE(bad_out.output.find(".safetensors"), std::string::npos) << bad_out.output;

  RunResult inspect = run_easel("inspect -q " + quoted(dir));
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("variant taef2"), std::string::npos) << inspect.output;

  RunResult help = run_easel("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("vae"), std::string::npos);
}

TEST(Cli, PngInfoShowsAndParsesTheParameters) {
  const fs::path png = temp_dir() / "with_parameters.png";
  Image im{2, 2, 3, std::vector<uint8_t>(12, 128), {}};
  const std::string parameters =
      "a cat\nNegative prompt: dog\nSteps: 4, Sampler: Euler a, CFG scale: 7.0, Seed: 5, Size: 2x2";
  im.text.emplace_back("parameters", parameters);
  ASSERT_TRUE(write_image(png, im).ok());
  RunResult raw = run_easel("pnginfo " + quoted(png));
  EXPECT_EQ(raw.exit_code, 0);
  EXPECT_EQ(raw.output, parameters + "\n");
  RunResult parsed = run_easel("pnginfo --json " + quoted(png));
  ASSERT_EQ(parsed.exit_code, 0) << parsed.output;
  const auto j = nlohmann::json::parse(parsed.output);
  EXPECT_EQ(j["prompt"], "a cat");
  EXPECT_EQ(j["negative_prompt"], "dog");
  EXPECT_EQ(j["Sampler"], "Euler a");

  im.text.clear();
  ASSERT_TRUE(write_image(png, im).ok());
  RunResult none = run_easel("pnginfo " + quoted(png));
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.output.find("no generation parameters"), std::string::npos) << none.output;
}

}  // namespace
}  // namespace easel

namespace easel {
namespace {

// `easel generate` reads the checkpoint's `.easel.json` sidecar as `easel serve` does: the tiny
// models of sd_pipeline_tiny need their head counts from it, and a checkpoint the server runs must
// run on the command line too.
TEST(Cli, GenerateReadsTheCheckpointsSidecarAsTheServerDoes) {
  const fs::path dir = temp_dir() / "generate_sidecar";
  fs::remove_all(dir);
  const std::string model = testing::make_tiny_models_dir(dir / "models");
  ASSERT_FALSE(model.empty()) << "the set has no SD 1.x checkpoint";
  const fs::path checkpoint = dir / "models" / "Stable-diffusion" / model;
  ASSERT_TRUE(fs::exists(checkpoint.string() + ".easel.json"));
  const fs::path out = dir / "out.png";
  const RunResult r = run_easel("generate --model " + quoted(checkpoint) + " --prompt 'a red ball' --steps 2 --width 48 " +
                                "--height 32 --seed 3 -o " + quoted(out));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto image = read_image(out);
  ASSERT_TRUE(image.ok()) << r.output;
  EXPECT_EQ(image->width, 48);
  EXPECT_EQ(image->height, 32);
  // A sidecar that cannot be read is an error naming it, not a silent default.
  std::ofstream(checkpoint.string() + ".easel.json") << "{not json";
  const RunResult bad = run_easel("generate --model " + quoted(checkpoint) + " --prompt x --steps 1 --width 48 --height 32 -o " +
                                  quoted(out));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find(".easel.json"), std::string::npos) << bad.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace easel

namespace easel {
namespace {

// An A1111 request of sd_pipeline_tiny's cases.json as `easel generate` flags.
std::string generate_flags(const nlohmann::json& r, const fs::path& set) {
  std::string flags = " --prompt " + quoted(r.value("prompt", std::string()));
  flags += " --negative-prompt " + quoted(r.value("negative_prompt", std::string()));
  const std::pair<const char*, const char*> numbers[] = {
      {"steps", "--steps"}, {"cfg_scale", "--cfg-scale"}, {"width", "--width"}, {"height", "--height"},
      {"seed", "--seed"}, {"subseed", "--subseed"}, {"subseed_strength", "--subseed-strength"},
      {"batch_size", "--batch-size"}, {"n_iter", "--n-iter"}, {"denoising_strength", "--denoising-strength"},
      {"resize_mode", "--resize-mode"}, {"mask_blur", "--mask-blur"}, {"inpainting_fill", "--inpainting-fill"},
      {"inpaint_full_res_padding", "--inpaint-full-res-padding"}, {"inpainting_mask_invert", "--inpainting-mask-invert"}};
  for (const auto& [field, flag] : numbers)
    if (r.contains(field)) flags += std::string(" ") + flag + " " + r[field].dump();
  flags += " --sampler " + quoted(r["sampler_name"].get<std::string>());
  flags += " --scheduler " + quoted(r.value("scheduler", std::string("Automatic")));
  if (r.contains("inpaint_full_res")) flags += std::string(" --inpaint-full-res ") + (r["inpaint_full_res"].get<bool>() ? "true" : "false");
  if (r.contains("override_settings") && r["override_settings"].contains("CLIP_stop_at_last_layers"))
    flags += " --clip-skip " + r["override_settings"]["CLIP_stop_at_last_layers"].dump();
  if (r.contains("init_images")) flags += " --init-image " + quoted(set / r["init_images"][0].get<std::string>());
  if (r.contains("mask")) flags += " --mask " + quoted(set / r["mask"].get<std::string>());
  return flags;
}

// `easel generate` against the reference images of sd_pipeline_tiny: every case of the set, its A1111
// request given as flags, its model (file or diffusers folder) copied beside the sidecar `easel serve`
// reads. Pixels to +-1 (as SdPipeline.EveryCaseMatchesTheReference), and each PNG's parameters carry
// the image's seed and the img2img / inpaint fields A1111 adds.
TEST(Cli, GenerateMatchesTheReferenceImages) {
  const fs::path set = testing::set_dir("sd_pipeline_tiny");
  std::ifstream info_in(set / "info.json"), cases_in(set / "cases.json");
  ASSERT_TRUE(info_in && cases_in);
  const auto info = nlohmann::json::parse(info_in);
  const auto cases = nlohmann::json::parse(cases_in)["cases"];
  const fs::path dir = temp_dir() / "generate_golden";
  fs::remove_all(dir);
  fs::create_directories(dir);
  int checked = 0;
  for (const auto& [name, c] : cases.items()) {
    SCOPED_TRACE(name);
    const std::string model_file = c["model_file"];
    const fs::path model = dir / model_file;
    if (!fs::exists(model)) {
      fs::copy(set / model_file, model, fs::copy_options::recursive);
      std::ofstream(fs::is_directory(model) ? model / "easel.json" : fs::path(model.string() + ".easel.json"))
          << testing::sd_sidecar(info["models"][model_file]).dump();
    }
    const fs::path out = dir / (name + ".png");
    const RunResult r = run_easel("--threads 1 generate --model " + quoted(model) + " -o " + quoted(out) + generate_flags(c["request"], set));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto images = c["images"].get<std::vector<std::string>>();
    for (size_t i = 0; i < images.size(); ++i) {
      const fs::path written = images.size() == 1 ? out : dir / cat(name, "-", i + 1, ".png");
      const auto ours = read_image(written);
      ASSERT_TRUE(ours.ok()) << ours.error().message() << "\n" << r.output;
      const Image reference = to_rgb(read_image(set / images[i]).value());
      const Image got = to_rgb(*ours);
      ASSERT_EQ(got.width, reference.width) << images[i];
      ASSERT_EQ(got.height, reference.height) << images[i];
      int worst = 0;
      for (size_t k = 0; k < got.pixels.size(); ++k)
        worst = std::max(worst, std::abs(int(got.pixels[k]) - int(reference.pixels[k])));
      EXPECT_LE(worst, 1) << images[i];
      std::string parameters;
      for (const auto& [key, text] : ours->text)
        if (key == "parameters") parameters = text;
      const Infotext infotext = parse_infotext(parameters);
      const std::string* seed = infotext.find("Seed");
      ASSERT_NE(seed, nullptr) << parameters;
      EXPECT_EQ(*seed, c["all_seeds"][i].dump());
      const nlohmann::json extra = c.value("infotext_extra", nlohmann::json::object());
      for (const auto& [key, value] : extra.items()) {
        const std::string* got_value = infotext.find(key);
        ASSERT_NE(got_value, nullptr) << key << " in " << parameters;
        EXPECT_EQ(*got_value, value.is_string() ? value.get<std::string>() : value.dump()) << key;
      }
      std::cout << name << " " << images[i] << ": max difference to the reference " << worst << "/255\n";
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace easel
