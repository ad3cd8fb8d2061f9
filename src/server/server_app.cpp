#include "server/server_app.h"

#include "backends/runtime.h"
#include "server/event_hub.h"
#include "server/http_server.h"
#include "server/job_files.h"
#include "server/job_store_sqlite.h"
#include "server/routes_web.h"
#include "server/sd_runner.h"
#include "server/server_state.h"

namespace easel::server {

struct ServerApp::Parts {
  std::unique_ptr<SqliteJobStore> store;  // the job history in <data_dir>/easel.db
  ModelCatalog catalog;
  PreviewStore previews;  // latest live preview of recent jobs
  SdJobRunner runner;
  std::vector<std::unique_ptr<JobRunner>> more_runners;
  JobQueue queue;
  EventHub events;  // listens to the queue, so it is made before the queue starts
  ServerState state;
  Router router;
  std::unique_ptr<HttpServer> http;

  Parts(const ServeOptions& o, Runtime& runtime, std::unique_ptr<SqliteJobStore> job_store)
      : store(std::move(job_store)),
        catalog(o.models_dir),
        runner(catalog, runtime, runner_options(o)),
        queue(store.get()),
        events(queue, {}, &previews),
        state{catalog, runner, queue, o.data_dir / "uploads", o.limits, o.upload_limits, {}, {}} {
    for (const auto& make : o.more_runners) more_runners.push_back(make(runtime));
    state.events = &events;
    state.previews = &previews;
    state.max_queued_jobs = o.max_queued_jobs;
    state.public_url = o.security.public_url;
    // Uploads are only inputs of unfinished jobs: without this the folder grows with every img2img.
    queue.add_listener([uploads = state.uploads_dir](const Job& job, const JobEvent& event) {
      if (std::holds_alternative<StateChange>(event) && is_finished(job.state)) remove_uploads(job.request, uploads);
    });
    // After the event hub's listener, which stored the preview: a test may hold the job here.
    if (o.after_preview)
      queue.add_listener([after = o.after_preview](const Job&, const JobEvent& event) {
        if (const auto* preview = std::get_if<PreviewPtr>(&event)) after(**preview);
      });
  }

  Status add_runners() {
    EASEL_TRY_STATUS(queue.add_runner(runner));
    for (auto& r : more_runners) EASEL_TRY_STATUS(queue.add_runner(*r));
    return {};
  }

  static SdRunnerOptions runner_options(const ServeOptions& o) {
    SdRunnerOptions r;
    r.outputs_dir = o.outputs_dir;
    r.uploads_dir = o.data_dir / "uploads";
    r.preview_every = o.preview_every;
    r.preview_time_share = o.preview_time_share;
    return r;
  }
};

ServerApp::ServerApp(ServeOptions options) : options_(std::move(options)) {}

ServerApp::~ServerApp() { stop(); }

Status ServerApp::start() {
  auto store = SqliteJobStore::open(options_.data_dir);
  if (!store.ok()) return Error(cat("job history: ", store.error().message()));
  auto runtime = Runtime::create({.threads = options_.threads});
  if (!runtime.ok()) return runtime.error();
  runtime_ = std::move(*runtime);
  parts_ = std::make_unique<Parts>(options_, *runtime_, std::move(*store));
  if (Status added = parts_->add_runners(); !added.ok()) {
    parts_.reset();
    return added;
  }
  add_sdapi_routes(parts_->router, parts_->state);
  add_job_routes(parts_->router, parts_->state);
  add_output_routes(parts_->router, parts_->state);
  add_openai_routes(parts_->router, parts_->state);
  add_web_routes(parts_->router);
  ServerOptions http;
  http.host = options_.host;
  http.port = options_.port;
  http.max_body_bytes = options_.max_body_bytes;
  http.request_timeout = std::chrono::milliseconds(int64_t(options_.request_timeout_s * 1000));
  http.max_client_connections = options_.max_client_connections;
  http.worker_threads = options_.http_workers;
  EASEL_TRY_STATUS(add_security_hooks(http, options_.security));
  parts_->http = std::make_unique<HttpServer>(http, parts_->router);
  EASEL_TRY_STATUS(parts_->http->start());
  EASEL_TRY_STATUS(parts_->queue.start());
  return {};
}

void ServerApp::stop() {
  if (!parts_) return;
  parts_->events.stop();  // event streams end first, so their connections close cleanly
  parts_->http->stop();
  parts_->queue.stop();
  parts_.reset();
}

int ServerApp::port() const { return parts_ ? parts_->http->port() : 0; }

}  // namespace easel::server
