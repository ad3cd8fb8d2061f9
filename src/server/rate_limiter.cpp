#include "server/rate_limiter.h"

#include "server/openai_error.h"

namespace easel::server {

namespace {
constexpr auto kWindow = std::chrono::seconds(60);
}

int request_cost(std::string_view method, std::string_view path) {
  if (method == "OPTIONS") return 0;
  if (path == "/sdapi/v1/progress" || path == "/internal/progress") return 0;
  if (method == "POST" && (path == "/sdapi/v1/txt2img" || path == "/sdapi/v1/img2img" || path == "/v1/images/generations" ||
                           path == "/v1/images/edits" || path == "/easel/v1/jobs"))
    return 5;
  const bool api = path.rfind("/sdapi/", 0) == 0 || path.rfind("/v1/", 0) == 0 || path.rfind("/easel/", 0) == 0 ||
                   path.rfind("/internal/", 0) == 0;
  return api ? 1 : 0;  // the web UI's files and outputs cost nothing
}

RateLimiter::RateLimiter(int budget, std::function<Clock::time_point()> now) : budget_(budget), now_(std::move(now)) {}

void RateLimiter::expire(Window& w, Clock::time_point now) const {
  while (!w.spent.empty() && now - w.spent.front().at >= kWindow) {
    w.total -= w.spent.front().cost;
    w.spent.pop_front();
  }
}

std::optional<int> RateLimiter::take(const std::string& client, int cost, bool commit) {
  if (budget_ <= 0 || cost <= 0) return std::nullopt;
  const auto now = now_();
  std::lock_guard lock(mutex_);
  // Forget idle clients now and then, so the map stays as large as the last minute's clients.
  if (now - last_sweep_ >= kWindow) {
    for (auto it = clients_.begin(); it != clients_.end();) {
      expire(it->second, now);
      it = it->second.spent.empty() ? clients_.erase(it) : std::next(it);
    }
    last_sweep_ = now;
  }
  Window& w = clients_[client];
  expire(w, now);
  if (w.total + cost > budget_) {
    // Wait until enough of the oldest entries leave the window.
    int freed = 0;
    auto until = now;
    for (const Spent& s : w.spent) {
      freed += s.cost;
      until = s.at + kWindow;
      if (w.total - freed + cost <= budget_) break;
    }
    if (cost > budget_) until = now + kWindow;  // never fits: say a minute
    const auto wait = std::chrono::ceil<std::chrono::seconds>(until - now).count();
    return int(std::max<int64_t>(1, wait));
  }
  if (!commit) return std::nullopt;
  w.spent.push_back({now, cost});
  w.total += cost;
  return std::nullopt;
}

std::optional<HttpResponse> RateLimiter::check(const HttpRequest& request) {
  const auto wait = spend(request.client, request_cost(request.method, request.path));
  if (!wait) return std::nullopt;
  HttpResponse r = api_error(request, 429,
                             "rate limit exceeded (" + std::to_string(budget_) + " units per minute per client); retry in " +
                                 std::to_string(*wait) + " s",
                             "rate_limit_exceeded", "rate_limit_exceeded");
  r.headers.emplace_back("Retry-After", std::to_string(*wait));
  return r;
}

}  // namespace easel::server
