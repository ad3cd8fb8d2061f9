// `easel serve`: the HTTP server with every API family wired to one job queue.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "core/error.h"
#include "server/security.h"

namespace easel::server {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 7860;  // 0: any free port
  std::filesystem::path models_dir = "models";
  std::filesystem::path outputs_dir = "outputs";
  std::filesystem::path data_dir = "easel-data";  // uploads of queued jobs
  int threads = 0;                                // compute threads, 0: all
  size_t max_body_bytes = size_t(64) << 20;
  SecurityOptions security;  // auth, API keys, rate limit, CORS
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
  std::unique_ptr<Parts> parts_;
};

}  // namespace easel::server
