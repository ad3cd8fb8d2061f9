// What the route files share: the model catalog, the job queue and its runner, where uploads and
// outputs live, the A1111 options, and the limits requests must respect.
#pragma once

#include <filesystem>
#include <mutex>

#include <nlohmann/json.hpp>

#include "io/image.h"
#include "pipelines/generation_params.h"
#include "server/job_queue.h"
#include "server/model_catalog.h"
#include "server/router.h"
#include "server/sd_runner.h"

namespace easel::server {

struct ServerState {
  ModelCatalog& catalog;
  SdJobRunner& runner;
  JobQueue& queue;
  std::filesystem::path uploads_dir;  // decoded init images and masks of queued jobs
  GenerationLimits limits;
  ImageLimits image_limits;
  std::mutex options_mutex;
  nlohmann::json options = nlohmann::json::object();  // A1111 options set through POST /options
};

void add_sdapi_routes(Router& router, ServerState& state);
void add_openai_routes(Router& router, ServerState& state);

}  // namespace easel::server
