#include "server/cors.h"

#include <algorithm>

namespace easel::server {

bool Cors::any() const { return std::find(origins_.begin(), origins_.end(), "*") != origins_.end(); }

bool Cors::allowed(const std::string& origin) const {
  if (origin.empty()) return false;
  if (any()) return true;
  // "null" (sandboxed frames, file:// pages) is shared by every such page: never trusted by name.
  if (origin == "null") return false;
  return std::find(origins_.begin(), origins_.end(), origin) != origins_.end();
}

std::optional<HttpResponse> Cors::preflight(const HttpRequest& request) const {
  if (!enabled() || request.method != "OPTIONS" || request.header("access-control-request-method").empty())
    return std::nullopt;
  const std::string origin = request.header("origin");
  if (!allowed(origin)) return HttpResponse::error(403, "origin '" + origin + "' is not allowed (--cors-origins)");
  HttpResponse r;
  r.status = 204;
  r.content_type = "text/plain";
  r.headers = {{"Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS"},
               {"Access-Control-Allow-Headers", request.header("access-control-request-headers").empty()
                                                    ? "Authorization, Content-Type"
                                                    : request.header("access-control-request-headers")},
               {"Access-Control-Max-Age", "600"}};
  return r;  // decorate() adds the origin
}

void Cors::decorate(const HttpRequest& request, HttpResponse& response) const {
  const std::string origin = request.header("origin");
  if (!enabled() || !allowed(origin)) return;
  // "*" lets any page read the answers, so it must not be read with the user's cookies or Basic
  // credentials: browsers refuse "*" with credentials, and echoing the origin instead would hand
  // every site the user's session. Only a listed origin is trusted with credentials.
  if (any()) {
    response.headers.emplace_back("Access-Control-Allow-Origin", "*");
  } else {
    response.headers.emplace_back("Access-Control-Allow-Origin", origin);
    response.headers.emplace_back("Access-Control-Allow-Credentials", "true");
  }
  response.headers.emplace_back("Access-Control-Expose-Headers", "Retry-After");
  response.headers.emplace_back("Vary", "Origin");
}

}  // namespace easel::server
