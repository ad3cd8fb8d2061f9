#include "server/sd_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "io/image.h"
#include "pipelines/sd_load_options.h"
#include "server/a1111_request.h"
#include "server/job_files.h"

namespace easel::server {

namespace fs = std::filesystem;

namespace {

std::string today() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace

std::string processed_comments(const std::vector<std::string>& comments) {
  // A1111 keeps them as the keys of a dict (p.comment(text): comments[text] = 1).
  std::set<std::string> seen;
  std::string out;
  for (const std::string& c : comments)
    if (seen.insert(c).second) out += c + "\n";
  return out;
}

SdJobRunner::SdJobRunner(ModelCatalog& catalog, Runtime& runtime, SdRunnerOptions options)
    : catalog_(catalog), runtime_(runtime), options_(std::move(options)), preview_every_(std::max(0, options_.preview_every)) {
  const auto all = catalog_.checkpoints();
  if (!all.empty()) current_ = all.front().name;
}

std::string SdJobRunner::current_checkpoint() const {
  std::lock_guard lock(mutex_);
  return current_;
}

Status SdJobRunner::select_checkpoint(const std::string& key) {
  auto entry = catalog_.find_checkpoint(key);
  if (!entry) return Error(cat("no checkpoint named '", key, "' in ", catalog_.dir().string()));
  std::lock_guard lock(mutex_);
  current_ = entry->name;
  return {};
}

void SdJobRunner::unload() {
  std::lock_guard lock(mutex_);
  loaded_.reset();
  loaded_path_.clear();
}

const StableDiffusion& SdJobRunner::model_for(const std::string& key) {
  std::string name = key;
  if (name.empty()) name = current_checkpoint();
  if (name.empty()) throw std::runtime_error(cat("no checkpoint: put a Stable Diffusion model in ",
                                                 (catalog_.dir() / "Stable-diffusion").string(), " and refresh"));
  auto entry = catalog_.find_checkpoint(name);
  if (!entry) throw std::runtime_error(cat("no checkpoint named '", name, "'"));
  std::lock_guard lock(mutex_);
  if (loaded_ && loaded_path_ == entry->path) return *loaded_;
  loaded_.reset();  // one model in memory at a time
  auto options = load_options_for(entry->path);
  if (!options.ok()) throw std::runtime_error(options.error().message());
  Context ctx = runtime_.context();
  auto sd = StableDiffusion::load(ctx, entry->path, *options);
  if (!sd.ok()) throw std::runtime_error(sd.error().message());
  loaded_.emplace(std::move(*sd));
  loaded_path_ = entry->path;
  if (!loaded_->model_hash().empty()) catalog_.set_hash(entry->path, loaded_->model_hash());
  return *loaded_;
}

// A TAESD decoder for SD 1.x/2.x latents from models/VAE-approx, else the cheap approximation.
// taesd and taesdxl have the same shapes, so names decide the order: taesd_decoder before the
// files named for other families (taesdxl, taesd3, taef1, taef2).
const LatentPreviewer& SdJobRunner::previewer() {
  auto entries = catalog_.vae_approx();
  const auto other_family = [](const ModelEntry& e) {
    std::string n = e.name;
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return n.find("taesdxl") != std::string::npos || n.find("taesd3") != std::string::npos ||
           n.find("taef") != std::string::npos;
  };
  std::stable_sort(entries.begin(), entries.end(),
                   [&](const ModelEntry& a, const ModelEntry& b) { return !other_family(a) && other_family(b); });
  for (const ModelEntry& e : entries) {
    if (previewer_failed_.count(e.path)) continue;
    if (e.path == previewer_path_) return previewer_;
    Context ctx = runtime_.context();
    auto loaded = LatentPreviewer::load_taesd(ctx, e.path, 4);
    if (!loaded.ok()) {
      std::fprintf(stderr, "easel serve: live previews: %s\n", loaded.error().message().c_str());
      previewer_failed_.insert(e.path);
      continue;
    }
    previewer_ = std::move(*loaded);
    previewer_path_ = e.path;
    return previewer_;
  }
  previewer_ = {};
  previewer_path_.clear();
  return previewer_;
}

nlohmann::json SdJobRunner::run(const Job& job, JobControl& control) {
  if (job.kind != "txt2img" && job.kind != "img2img")
    throw std::runtime_error(cat("the Stable Diffusion runner runs txt2img and img2img jobs, not '", job.kind, "'"));
  const bool img2img = job.kind == "img2img";
  ValidationErrors errors;
  GenerationParams p = parse_a1111_request(job.request, img2img, errors).params;
  if (!errors.empty()) throw std::runtime_error(errors.detail.dump());
  GenerationInputs inputs;
  if (img2img) {
    // Uploads by the ids the server gave them (job_files.h); a request naming anything else, such
    // as one queued by an older easel that stored paths, finds nothing.
    const JobUploads uploads = job_uploads(job.request);
    const auto upload = [&](const std::string& id, const char* what) {
      const auto path = upload_path(options_.uploads_dir, id);
      std::error_code ec;
      if (!path || !fs::is_regular_file(*path, ec))
        throw std::runtime_error(cat("img2img: the job's uploaded ", what, " is missing; submit the request again"));
      auto image = read_image(*path);
      if (!image.ok()) throw std::runtime_error(cat("img2img: the job's uploaded ", what, " cannot be read; submit the request again"));
      return std::move(*image);
    };
    if (uploads.init_images.empty()) throw std::runtime_error("img2img: the job has no init image; submit the request again");
    inputs.init_image = upload(uploads.init_images[0], "init image");
    if (!uploads.mask.empty()) inputs.mask = upload(uploads.mask, "mask");
  }
  const StableDiffusion& sd = model_for(requested_checkpoint(job.request));

  // This job's own Context: the callbacks below point into this frame and die with it.
  Context ctx = runtime_.context();
  JobProgress progress;
  progress.images = p.batch_size * p.n_iter;
  progress.stage = "text";
  control.report(progress);
  ctx.cancel_flag = &control.cancel;
  ctx.on_progress = [&](const Progress& pr) {
    if (pr.stage == "sample") {
      progress.stage = "sample";
      progress.step = int(pr.done);
      progress.steps = int(pr.total);
    } else if (pr.stage == "decode") {
      progress.stage = "decode";
    }
    control.report(progress);
  };
  // Live previews of the first image of the batch (A1111: shared.state.assign_current_image).
  const int preview_every = preview_every_;
  const LatentPreviewer* previews = preview_every > 0 ? &previewer() : nullptr;
  int64_t preview_seq = 0;
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> sampling_start;
  Clock::duration preview_time{};
  GenerationCallbacks callbacks;
  callbacks.control = {&control.interrupt, &control.skip};
  callbacks.on_step = [&](const sampling::StepInfo& s) {
    const Clock::time_point now = Clock::now();
    if (!sampling_start) sampling_start = now;
    if (!previews || !s.denoised.defined() || (s.step + 1) % preview_every != 0) return;
    const double share = options_.preview_time_share;
    if (share > 0 && preview_seq > 0 &&
        std::chrono::duration<double>(preview_time).count() >
            share * std::chrono::duration<double>(now - *sampling_start).count())
      return;
    struct Timer {
      Clock::duration& total;
      Clock::time_point start = Clock::now();
      ~Timer() { total += Clock::now() - start; }
    } timer{preview_time};
    try {
      const Image image = previews->preview(ctx, s.denoised);
      auto bytes = encode_image(image, ImageFormat::Jpeg, options_.preview_quality);
      if (!bytes.ok()) return;
      Preview preview{job.id, ++preview_seq, progress.image, s.step + 1, s.steps, previews->method(),
                      image.width, image.height, ImageFormat::Jpeg, std::string(bytes->begin(), bytes->end())};
      control.preview(std::move(preview));
    } catch (const std::exception& e) {
      // A preview is a nicety: the job goes on without it.
      std::fprintf(stderr, "easel serve: live preview of job %s: %s\n", job.id.c_str(), e.what());
    }
  };
  const fs::path day = options_.outputs_dir / today();
  fs::create_directories(day);
  nlohmann::json images = nlohmann::json::array(), infotexts = nlohmann::json::array(),
                 seeds = nlohmann::json::array(), subseeds = nlohmann::json::array();
  callbacks.on_image = [&](const GeneratedImage& image) {
    const fs::path file = day / cat(job.id, "-", images.size(), ".png");
    const std::string name = fs::relative(file, options_.outputs_dir).generic_string();
    if (Status s = write_image(file, image.image); !s.ok()) {
      // The message reaches clients: it names the file inside the outputs folder, not the server's path.
      std::string why = s.error().message();
      if (why.rfind(file.string(), 0) == 0) why.erase(0, file.string().size());
      throw std::runtime_error(cat("cannot write the output image ", name, why));
    }
    images.push_back(name);
    infotexts.push_back(image.infotext);
    seeds.push_back(image.seed);
    subseeds.push_back(image.subseed);
    ++progress.image;
    control.report(progress);
  };
  auto result = sd.generate(ctx, p, inputs, callbacks);
  if (!result.ok()) throw std::runtime_error(result.error().message());

  // A1111's `info` (processing.py Processed.js()).
  const int64_t first_seed = seeds.empty() ? p.seed : seeds[0].get<int64_t>();
  nlohmann::json info = {
      {"prompt", p.prompt},
      {"all_prompts", nlohmann::json::array()},
      {"negative_prompt", p.negative_prompt},
      {"all_negative_prompts", nlohmann::json::array()},
      {"seed", first_seed},
      {"all_seeds", seeds},
      {"subseed", subseeds.empty() ? p.subseed : subseeds[0].get<int64_t>()},
      {"all_subseeds", subseeds},
      {"subseed_strength", p.subseed_strength},
      {"width", p.width},
      {"height", p.height},
      {"sampler_name", p.sampler_name},
      {"cfg_scale", p.cfg_scale},
      {"steps", p.steps},
      {"batch_size", p.batch_size},
      {"restore_faces", false},
      {"face_restoration_model", nullptr},
      {"sd_model_name", sd.model_name()},
      {"sd_model_hash", sd.model_hash()},
      {"sd_vae_name", nullptr},
      {"sd_vae_hash", nullptr},
      {"seed_resize_from_w", p.seed_resize_from_w ? p.seed_resize_from_w : -1},
      {"seed_resize_from_h", p.seed_resize_from_h ? p.seed_resize_from_h : -1},
      {"denoising_strength", img2img ? nlohmann::json(p.denoising_strength) : nlohmann::json(nullptr)},
      {"extra_generation_params", nlohmann::json::object()},
      {"comments", processed_comments(result->comments)},
      {"index_of_first_image", 0},
      {"infotexts", infotexts},
      {"styles", nlohmann::json::array()},
      {"job_timestamp", job.created_ms},
      {"clip_skip", p.clip_skip},
      {"is_using_inpainting_conditioning", sd.info().inpainting},
      {"version", "easel 0.1.0"},
  };
  for (size_t i = 0; i < images.size(); ++i) {
    info["all_prompts"].push_back(p.prompt);
    info["all_negative_prompts"].push_back(p.negative_prompt);
  }
  return {{"images", images}, {"info", info}};
}

}  // namespace easel::server
