#include "server/security.h"

#include <memory>

#include "server/auth.h"
#include "server/cors.h"
#include "server/rate_limiter.h"

namespace easel::server {

Status add_security_hooks(ServerOptions& http, const SecurityOptions& options) {
  EASEL_TRY(Authenticator auth, Authenticator::create(options.auth, options.api_keys));
  auto cors = std::make_shared<Cors>(options.cors_origins);
  auto limiter = std::make_shared<RateLimiter>(options.rate_limit);
  auto authenticator = std::make_shared<Authenticator>(std::move(auth));
  http.before = [cors, limiter, authenticator, inner = http.before](HttpRequest& request) -> std::optional<HttpResponse> {
    if (auto r = cors->preflight(request)) return r;
    if (auto r = limiter->check(request)) return r;
    if (auto r = authenticator->check(request)) return r;
    return inner ? inner(request) : std::nullopt;
  };
  http.after = [cors, inner = http.after](const HttpRequest& request, HttpResponse& response) {
    if (inner) inner(request, response);
    cors->decorate(request, response);
  };
  return {};
}

}  // namespace easel::server
