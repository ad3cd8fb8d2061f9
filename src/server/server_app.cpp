#include "server/server_app.h"

#include "server/event_hub.h"
#include "server/http_server.h"
#include "server/job_files.h"
#include "server/job_store_sqlite.h"
#include "server/routes_web.h"
#include "server/server_state.h"

namespace easel::server {

struct ServerApp::Parts {
  std::unique_ptr<SqliteJobStore> store;  // the job history in <data_dir>/easel.db
  ModelCatalog catalog;
  PreviewStore previews;  // latest live preview of recent jobs
  SdJobRunner runner;
  JobQueue queue;
  EventHub events;  // listens to the queue, so it is made before the queue starts
  ServerState state;
  Router router;
  std::unique_ptr<HttpServer> http;

  Parts(const ServeOptions& o, std::unique_ptr<SqliteJobStore> job_store)
      : store(std::move(job_store)),
        catalog(o.models_dir),
        runner(catalog, runner_options(o)),
        queue(runner, store.get()),
        events(queue),
        state{catalog, runner, queue, o.data_dir / "uploads", o.limits, o.upload_limits, {}, {}} {
    state.events = &events;
    state.previews = &previews;
    state.max_queued_jobs = o.max_queued_jobs;
    state.public_url = o.security.public_url;
    // Uploads are only inputs of unfinished jobs: without this the folder grows with every img2img.
    queue.add_listener([uploads = state.uploads_dir](const Job& job) {
      if (job.state == JobState::Done || job.state == JobState::Failed || job.state == JobState::Cancelled)
        remove_uploads(job.request, uploads);
    });
  }

  SdRunnerOptions runner_options(const ServeOptions& o) {
    SdRunnerOptions r;
    r.outputs_dir = o.outputs_dir;
    r.uploads_dir = o.data_dir / "uploads";
    r.threads = o.threads;
    r.preview_every = o.preview_every;
    r.preview_time_share = o.preview_time_share;
    // On the executor thread: keeps the image and hands it to the event dispatcher, never waits for a client.
    r.on_preview = [this, after = o.after_preview](Preview p) {
      // Stored before it is announced: a client told of it can fetch it at once.
      auto stored = std::make_shared<const Preview>(std::move(p));
      previews.put(stored);
      events.publish_preview(stored);
      if (after) after(*stored);
    };
    return r;
  }
};

ServerApp::ServerApp(ServeOptions options) : options_(std::move(options)) {}

ServerApp::~ServerApp() { stop(); }

Status ServerApp::start() {
  auto store = SqliteJobStore::open(options_.data_dir);
  if (!store.ok()) return Error(cat("job history: ", store.error().message()));
  parts_ = std::make_unique<Parts>(options_, std::move(*store));
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
