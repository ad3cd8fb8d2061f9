// Runs txt2img / img2img jobs with Stable Diffusion on the process's Runtime: picks the checkpoint
// the job asks for (or the current one), keeps one loaded at a time, turns the engine's progress
// into the job's, writes the images to the outputs folder and returns A1111's `info` for them.
// It refuses jobs of any other kind.
//
// While a job samples it makes a live preview of the current x0 estimate every `preview_every`
// steps (A1111's show_progress_every_n_steps) with a TAESD decoder from models/VAE-approx when there
// is one, else A1111's "Approx cheap" (pipelines/latent_preview.h), and reports it to the job's
// JobControl.
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
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/runtime.h"
#include "pipelines/latent_preview.h"
#include "pipelines/stable_diffusion.h"
#include "server/image_runner_control.h"
#include "server/job_runner.h"
#include "server/model_catalog.h"

namespace easel::server {

struct SdRunnerOptions {
  std::filesystem::path outputs_dir = "outputs";
  std::filesystem::path uploads_dir = "uploads";  // where the jobs' init images and masks are stored
  int preview_every = 1;  // steps between live previews; 0: none
  int preview_quality = 80;  // JPEG
  double preview_time_share = 0.1;  // most of the sampling time previews may take (0: no limit)
};

// A1111's Processed.comments: each distinct comment once, in the order they came, each ending
// with a newline ("" when there are none).
std::string processed_comments(const std::vector<std::string>& comments);

class SdJobRunner : public JobRunner, public ImageRunnerControl {
 public:
  // `runtime` is the process's, shared with every other runner; each job runs on a Context of its own from it.
  SdJobRunner(ModelCatalog& catalog, Runtime& runtime, SdRunnerOptions options);
  std::vector<std::string> kinds() const override { return {"txt2img", "img2img"}; }
  nlohmann::json run(const Job& job, JobControl& control) override;

  std::string current_checkpoint() const override;
  Status select_checkpoint(const std::string& key) override;
  void unload() override;
  void set_preview_every(int steps) override { preview_every_ = std::max(0, steps); }
  int preview_every() const override { return preview_every_; }
  const std::filesystem::path& outputs_dir() const override { return options_.outputs_dir; }

 private:
  const StableDiffusion& model_for(const std::string& key);  // throws with a message for the client
  const LatentPreviewer& previewer();  // executor thread only


  ModelCatalog& catalog_;
  Runtime& runtime_;
  SdRunnerOptions options_;
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
