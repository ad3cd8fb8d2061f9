#include "server/server_app.h"

#include "server/http_server.h"
#include "server/routes_web.h"
#include "server/server_state.h"

namespace easel::server {

struct ServerApp::Parts {
  ModelCatalog catalog;
  SdJobRunner runner;
  JobQueue queue;
  ServerState state;
  Router router;
  std::unique_ptr<HttpServer> http;

  explicit Parts(const ServeOptions& o)
      : catalog(o.models_dir),
        runner(catalog, SdRunnerOptions{o.outputs_dir, o.threads}),
        queue(runner),
        state{catalog, runner, queue, o.data_dir / "uploads", {}, {}, {}, {}} {}
};

ServerApp::ServerApp(ServeOptions options) : options_(std::move(options)) {}

ServerApp::~ServerApp() { stop(); }

Status ServerApp::start() {
  parts_ = std::make_unique<Parts>(options_);
  add_sdapi_routes(parts_->router, parts_->state);
  add_openai_routes(parts_->router, parts_->state);
  add_web_routes(parts_->router);
  ServerOptions http;
  http.host = options_.host;
  http.port = options_.port;
  http.max_body_bytes = options_.max_body_bytes;
  EASEL_TRY_STATUS(add_security_hooks(http, options_.security));
  parts_->http = std::make_unique<HttpServer>(http, parts_->router);
  EASEL_TRY_STATUS(parts_->http->start());
  parts_->queue.start();
  return {};
}

void ServerApp::stop() {
  if (!parts_) return;
  parts_->http->stop();
  parts_->queue.stop();
  parts_.reset();
}

int ServerApp::port() const { return parts_ ? parts_->http->port() : 0; }

}  // namespace easel::server
