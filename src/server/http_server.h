// The HTTP/1.1 server (Boost.Beast): accepts connections on a few I/O threads, reads each request
// (its header first: ambiguous framing, the stuff of request smuggling, is refused with 400 and the
// connection closed; bodies over the limit get a JSON 413), runs the `before` hook (authentication,
// rate limits), dispatches to the router and writes whatever the handler answers, whenever it
// answers. I/O threads only read, write and route cheap requests: a request with a body (JSON to
// parse, an image to decode) is handled on a small worker pool, so polling stays quick; generation
// runs on the job queue's executor.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/error.h"
#include "server/http_message.h"
#include "server/router.h"

namespace easel::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 7860;  // 0: any free port (tests)
  size_t max_body_bytes = size_t(64) << 20;
  int io_threads = 2;
  int worker_threads = 2;  // handle requests that have a body
  // Slow or idle clients must not hold connections: a request's header must be complete this long
  // after the server starts waiting for it (so also the keep-alive idle limit); its body must make
  // progress as often, and all of it arrive within this plus its length at min_body_rate.
  // Event streams (SSE, WebSocket) keep their own timeouts.
  std::chrono::milliseconds request_timeout{10000};
  size_t min_body_rate = 64 * 1024;  // bytes per second
  // Open connections per client address; the next one is answered 429 and closed. 0: no limit.
  int max_client_connections = 256;
  // Runs once a request's header is read, before its body is: a response stops the request there
  // (401, 403, 415, 429, ...) and the body is never buffered. `has_body` is set; `body` is empty.
  std::function<std::optional<HttpResponse>(HttpRequest&)> before;
  // Runs on every response before it is written (CORS headers, ...).
  std::function<void(const HttpRequest&, HttpResponse&)> after;
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, const Router& router);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O threads; an error names the address ("127.0.0.1:7860: address in use").
  Status start();
  void stop();
  int port() const;  // the bound port

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::string percent_decode(std::string_view s, bool plus_is_space);

}  // namespace easel::server
