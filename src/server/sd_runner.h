// Runs txt2img / img2img jobs with Stable Diffusion: picks the checkpoint the job asks for (or the
// current one), keeps one loaded at a time, turns the engine's progress into the job's, writes the
// images to the outputs folder and returns A1111's `info` for them.
//
// A job's request is the A1111 body with its uploads already stored as files:
// "init_image_files": [path], "mask_file": path (see routes_sdapi.cpp).
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "backends/runtime.h"
#include "pipelines/stable_diffusion.h"
#include "server/job_queue.h"
#include "server/model_catalog.h"

namespace easel::server {

struct SdRunnerOptions {
  std::filesystem::path outputs_dir = "outputs";
  int threads = 0;  // 0: all
};

class SdJobRunner : public JobRunner {
 public:
  SdJobRunner(ModelCatalog& catalog, SdRunnerOptions options);
  nlohmann::json run(const Job& job, JobControl& control) override;

  // The checkpoint new jobs use unless they name one (A1111's sd_model_checkpoint option).
  std::string current_checkpoint() const;
  Status select_checkpoint(const std::string& key);  // error when the catalog has no such model
  void unload();                                      // frees the loaded model
  const std::filesystem::path& outputs_dir() const { return options_.outputs_dir; }

 private:
  const StableDiffusion& model_for(const std::string& key);  // throws with a message for the client

  ModelCatalog& catalog_;
  SdRunnerOptions options_;
  std::unique_ptr<Runtime> runtime_;
  mutable std::mutex mutex_;
  std::string current_;                      // catalog name of the selected checkpoint
  std::optional<StableDiffusion> loaded_;    // executor thread only
  std::filesystem::path loaded_path_;
};

}  // namespace easel::server
