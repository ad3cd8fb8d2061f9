#include "server/security.h"

#include <memory>

#include "server/auth.h"
#include "server/cors.h"
#include "server/openai_error.h"
#include "server/origin_policy.h"
#include "server/rate_limiter.h"

namespace easel::server {

namespace {

HttpResponse too_many(const HttpRequest& request, int wait, const std::string& what) {
  HttpResponse r = api_error(request, 429, what + "; retry in " + std::to_string(wait) + " s", "rate_limit_exceeded",
                             "rate_limit_exceeded");
  r.headers.emplace_back("Retry-After", std::to_string(wait));
  return r;
}

// Step 3 of security.h: authentication with its anonymous and failed-attempt budgets.
class AuthGate {
 public:
  AuthGate(Authenticator auth, int anonymous_budget, int failed_budget)
      : auth_(std::move(auth)), anonymous_(anonymous_budget), failed_(failed_budget), failed_budget_(failed_budget) {}

  std::optional<HttpResponse> check(const HttpRequest& request) {
    if (!auth_.enabled()) return std::nullopt;
    if (request.header("authorization").empty()) {
      auto denied = auth_.check(request);
      if (!denied) return std::nullopt;
      if (auto wait = anonymous_.spend(request.client, 1))
        return too_many(request, *wait, "too many requests without credentials from this client");
      return denied;
    }
    // A client that keeps guessing is not even checked: its guesses tell it nothing for a while.
    if (auto wait = failed_.peek(request.client, 1))
      return too_many(request, *wait, "too many failed authentication attempts (" + std::to_string(failed_budget_) +
                                          " per minute per client)");
    auto denied = auth_.check(request);
    if (denied) failed_.spend(request.client, 1);
    return denied;
  }

 private:
  Authenticator auth_;
  RateLimiter anonymous_;
  RateLimiter failed_;
  int failed_budget_;
};

}  // namespace

Status add_security_hooks(ServerOptions& http, const SecurityOptions& options) {
  EASEL_TRY(Authenticator auth, Authenticator::create(options.auth, options.api_keys));
  auto cors = std::make_shared<Cors>(options.cors_origins);
  auto policy = std::make_shared<OriginPolicy>(
      OriginPolicyOptions{http.host, options.allowed_hosts, options.cors_origins, options.public_url});
  auto gate = std::make_shared<AuthGate>(std::move(auth), options.rate_limit, options.failed_auth_limit);
  auto limiter = std::make_shared<RateLimiter>(options.rate_limit);
  http.before = [cors, policy, gate, limiter, inner = http.before](HttpRequest& request) -> std::optional<HttpResponse> {
    if (auto r = cors->preflight(request)) return r;
    if (auto r = policy->check(request)) return r;
    if (auto r = gate->check(request)) return r;
    if (auto r = limiter->check(request)) return r;
    return inner ? inner(request) : std::nullopt;
  };
  http.after = [cors, inner = http.after](const HttpRequest& request, HttpResponse& response) {
    if (inner) inner(request, response);
    cors->decorate(request, response);
  };
  return {};
}

}  // namespace easel::server
