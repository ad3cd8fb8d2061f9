// Runs txt2img / img2img jobs with Stable Diffusion: picks the checkpoint the job asks for (or the
// current one), keeps one loaded at a time, turns the engine's progress into the job's, writes the
// images to the outputs folder and returns A1111's `info` for them.
//
// While a job samples it makes a live preview of the current x0 estimate every `preview_every`
// steps (A1111's show_progress_every_n_steps) with a TAESD decoder from models/VAE-approx when there
// is one, else A1111's "Approx cheap" (pipelines/latent_preview.h), and hands it to `on_preview`.
// A preview is skipped while the previews so far took more than `preview_time_share` of the time
// since sampling started, so a slow decoder on a slow device thins them out instead of slowing
// the job (the first one is always made).
//
// A job's request is the validated A1111 body with its uploads stored as files and referred to by
// id (job_files.h).
#pragma once

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "backends/runtime.h"
#include "pipelines/latent_preview.h"
#include "pipelines/stable_diffusion.h"
#include "server/job_queue.h"
#include "server/model_catalog.h"
#include "server/previews.h"

namespace easel::server {

struct SdRunnerOptions {
  std::filesystem::path outputs_dir = "outputs";
  std::filesystem::path uploads_dir = "uploads";  // where the jobs' init images and masks are stored
  int threads = 0;  // 0: all
  int preview_every = 1;  // steps between live previews; 0: none
  int preview_quality = 80;  // JPEG
  double preview_time_share = 0.1;  // most of the sampling time previews may take (0: no limit)
  std::function<void(Preview)> on_preview;  // called on the executor thread; must not block
};

class SdJobRunner : public JobRunner {
 public:
  SdJobRunner(ModelCatalog& catalog, SdRunnerOptions options);
  nlohmann::json run(const Job& job, JobControl& control) override;

  // The checkpoint new jobs use unless they name one (A1111's sd_model_checkpoint option).
  std::string current_checkpoint() const;
  Status select_checkpoint(const std::string& key);  // error when the catalog has no such model
  void unload();                                      // frees the loaded model
  // Live preview period in steps (A1111's show_progress_every_n_steps; 0: off), from the next job.
  void set_preview_every(int steps) { preview_every_ = std::max(0, steps); }
  int preview_every() const { return preview_every_; }
  const std::filesystem::path& outputs_dir() const { return options_.outputs_dir; }

 private:
  const StableDiffusion& model_for(const std::string& key);  // throws with a message for the client
  const LatentPreviewer& previewer();  // executor thread only


  ModelCatalog& catalog_;
  SdRunnerOptions options_;
  std::unique_ptr<Runtime> runtime_;
  mutable std::mutex mutex_;
  std::string current_;                      // catalog name of the selected checkpoint
  std::optional<StableDiffusion> loaded_;    // executor thread only
  std::filesystem::path loaded_path_;
  LatentPreviewer previewer_;                 // executor thread only; the cheap one until a TAESD loads
  std::atomic<int> preview_every_;
  std::filesystem::path previewer_path_;      // the TAESD it holds, if any
  std::set<std::filesystem::path> previewer_failed_;  // not loadable as a TAESD decoder for SD latents
};

}  // namespace easel::server
