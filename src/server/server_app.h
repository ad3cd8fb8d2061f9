// `easel serve`: the HTTP server with every API family wired to one job queue, whose runners
// (image generation, and any others given) share the one Runtime the server makes for the process.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/image.h"
#include "pipelines/generation_params.h"
#include "server/job_runner.h"
#include "server/previews.h"
#include "server/security.h"

namespace easel {
class Runtime;
}

namespace easel::server {

inline GenerationLimits server_generation_limits() {
  GenerationLimits l;
  l.max_side = 2048;
  l.max_pixels = int64_t(2048) * 2048;
  l.max_steps = 500;
  l.max_batch_size = 16;
  l.max_n_iter = 100;
  return l;
}

struct ServeOptions {
  // Makes a runner of further job kinds beside image generation (tests add one; chat and caption
  // next), on the process's runtime; it runs on the CPU device's executor.
  using RunnerFactory = std::function<std::unique_ptr<JobRunner>(Runtime& runtime)>;

  std::string host = "127.0.0.1";
  int port = 7860;  // 0: any free port
  std::filesystem::path models_dir = "models";
  std::filesystem::path outputs_dir = "outputs";
  std::filesystem::path data_dir = "easel-data";  // uploads of queued jobs
  int threads = 0;                                // compute threads, 0: all
  int preview_every = 1;  // live preview every N sampler steps (A1111 show_progress_every_n_steps); 0: off
  // At most this share of a job's sampling time goes to previews: a slow preview (TAESD at 512x512
  // takes about 2 s on two CPU cores) is skipped until the share allows it again; 0: no limit.
  double preview_time_share = 0.1;
  // Called on the executor thread once a preview is published (tests hold a job at a step here).
  std::function<void(const Preview&)> after_preview;
  size_t max_body_bytes = size_t(64) << 20;
  SecurityOptions security;  // auth, API keys, rate limit, CORS, allowed hosts, public URL
  // Connections (http_server.h): a request's header must arrive within this many seconds, and its
  // body must make progress as often; also the idle keep-alive limit.
  double request_timeout_s = 10;
  int max_client_connections = 256;  // open connections per client address
  int http_workers = 2;              // threads that handle requests with a body (parsing, decoding)
  // What one request may ask for. Lower than the CLI's: a server faces clients it does not know,
  // and an SD 1.x VAE decode at 2048x2048 already holds ~11 GB of activations.
  GenerationLimits limits = server_generation_limits();
  ImageLimits upload_limits = ImageLimits{int64_t(4096) * 4096, int64_t(64) << 20};
  // Jobs waiting at once; more are refused with 503 and Retry-After (overload), not queued without end.
  int max_queued_jobs = 1000;
  std::vector<RunnerFactory> more_runners;
};

class ServerApp {
 public:
  explicit ServerApp(ServeOptions options);
  ~ServerApp();
  Status start();
  void stop();
  int port() const;

  struct Parts;

 private:
  ServeOptions options_;
  std::unique_ptr<Runtime> runtime_;  // the process's devices, shared by every runner
  std::unique_ptr<Parts> parts_;
};

}  // namespace easel::server
