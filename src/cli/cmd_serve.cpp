// easel serve [--host H] [--port P] [--listen] [--models-dir DIR] ...
// The server: A1111 / SD.Next API (and, as they land, OpenAI images, native jobs, the web UI).
#include <malloc.h>

#include <csignal>
#include <cstdio>

#include "cli/commands.h"
#include "server/server_app.h"

namespace easel::cli {

void add_serve_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Serve the A1111 / SD.Next API (and the web UI) over HTTP");
  auto options = std::make_shared<server::ServeOptions>();
  auto listen = std::make_shared<bool>(false);
  cmd->add_option("--host", options->host, "address to bind")->capture_default_str();
  cmd->add_option("--port", options->port, "port")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_flag("--listen", *listen, "bind 0.0.0.0: reachable from other machines");
  cmd->add_option("--models-dir", options->models_dir, "models folder (Stable-diffusion or checkpoints, VAE, Lora, ...)")
      ->capture_default_str();
  cmd->add_option("--outputs-dir", options->outputs_dir, "where generated images are written")->capture_default_str();
  cmd->add_option("--data-dir", options->data_dir, "where the server keeps its state (job history easel.db, uploads)")->capture_default_str();
  cmd->add_option("--preview-every", options->preview_every,
                  "live preview every N sampler steps (TAESD from models/VAE-approx, else a cheap approximation); 0: off")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  options->security.rate_limit = 300;  // SD.Next's budget; the library default is off
  cmd->add_option("--auth", options->security.auth, "HTTP Basic credentials required on every route: user:pass[,user2:pass2]")
      ->delimiter(',');
  cmd->add_option("--api-key", options->security.api_keys, "API key accepted as 'Authorization: Bearer KEY' (repeatable)");
  cmd->add_option("--rate-limit", options->security.rate_limit,
                  "per-client budget per minute (generation costs 5, progress 0, other API calls 1; 0: off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--cors-origins", options->security.cors_origins, "origins allowed cross-origin access: a,b (* for any); off by default")
      ->delimiter(',');
  cmd->add_option("--allowed-hosts", options->security.allowed_hosts,
                  "host names the server answers to besides localhost / 127.0.0.1 (DNS rebinding protection): a,b")
      ->delimiter(',');
  cmd->add_option("--public-url", options->security.public_url,
                  "the URL clients reach the server by (behind a proxy: https://host/prefix); base of absolute URLs")
      ->check([](const std::string& url) {
        return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0 ? std::string()
                                                                            : std::string("must start with http:// or https://");
      });
  cmd->add_option("--max-client-connections", options->max_client_connections,
                  "open connections per client address (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--request-timeout", options->request_timeout_s,
                  "seconds a client has to send a request's header (also the keep-alive idle limit) and between pieces of its body")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-queued-jobs", options->max_queued_jobs, "jobs that may wait at once; more are refused with 503 (overload)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--http-workers", options->http_workers, "threads that parse request bodies and decode uploads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->callback([options, listen, &global, &exit_code] {
    // Request bodies and uploads of tens of MB are allocated with mmap, so freeing them gives the
    // memory back to the system at once instead of growing the heap for good.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    if (*listen) options->host = "0.0.0.0";
    options->threads = global.threads;
    // SIGINT / SIGTERM are waited for below; block them before any thread starts so none of
    // those threads takes them instead.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    server::ServerApp app(*options);
    if (Status s = app.start(); !s.ok()) {
      std::fprintf(stderr, "easel serve: %s\n", s.error().message().c_str());
      exit_code = 1;
      return;
    }
    std::fprintf(stderr, "easel: serving on http://%s:%d (models: %s)\n", options->host.c_str(), app.port(),
                 options->models_dir.string().c_str());
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "easel: stopping\n");
    app.stop();
  });
}

}  // namespace easel::cli
