// What the route files share: the model catalog, the job queue, the image runner's settings,
// where uploads live, the A1111 options, and the limits requests must respect.
#pragma once

#include <filesystem>
#include <mutex>

#include <nlohmann/json.hpp>

#include "io/image.h"
#include "pipelines/generation_params.h"
#include "server/image_runner_control.h"
#include "server/job_queue.h"
#include "server/model_catalog.h"
#include "server/previews.h"
#include "server/router.h"

namespace easel::server {

class EventHub;

struct ServerState {
  ModelCatalog& catalog;
  ImageRunnerControl& images;  // the txt2img / img2img runner: checkpoint, previews, outputs folder
  JobQueue& queue;
  std::filesystem::path uploads_dir;  // decoded init images and masks of queued jobs
  GenerationLimits limits;
  ImageLimits image_limits;
  std::mutex options_mutex;
  nlohmann::json options = nlohmann::json::object();  // A1111 options set through POST /options
  EventHub* events = nullptr;                          // job events for SSE / WebSocket clients
  PreviewStore* previews = nullptr;                    // live previews of recent jobs
  int max_queued_jobs = 1000;                          // more waiting jobs are refused (503)
  std::string public_url;  // --public-url: base of absolute URLs; else the address a request reached
};

void add_sdapi_routes(Router& router, ServerState& state);
void add_openai_routes(Router& router, ServerState& state);
void add_job_routes(Router& router, ServerState& state);     // /easel/v1/jobs, /events, /ws
void add_output_routes(Router& router, ServerState& state);  // /outputs/{file}

}  // namespace easel::server
