// CORS: off unless origins are configured (`--cors-origins a,b`, "*" for any). Then responses to
// requests from those origins carry Access-Control-Allow-Origin (the origin and
// Allow-Credentials for a listed origin; "*" without credentials for "*"), and OPTIONS preflights are
// answered here, before authentication, since browsers send them without credentials.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "server/http_message.h"

namespace easel::server {

class Cors {
 public:
  explicit Cors(std::vector<std::string> origins) : origins_(std::move(origins)) {}
  bool enabled() const { return !origins_.empty(); }
  // The preflight's answer (204 for an allowed origin, 403 otherwise), or nothing for other requests.
  std::optional<HttpResponse> preflight(const HttpRequest& request) const;
  // Adds the allow headers to a response to an allowed origin.
  void decorate(const HttpRequest& request, HttpResponse& response) const;

 private:
  bool any() const;  // "*" configured
  bool allowed(const std::string& origin) const;
  std::vector<std::string> origins_;
};

}  // namespace easel::server
