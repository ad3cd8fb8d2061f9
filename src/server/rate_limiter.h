// Per-client sliding-window rate limiting, as SD.Next does it: each client (remote address) has a
// budget of cost units per minute; a request spends its route's cost (generation 5, polling and
// static files 0, everything else 1) and is refused with 429 + Retry-After when the units spent in
// the last 60 s plus its cost would pass the budget.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "server/http_message.h"

namespace easel::server {

// What a request costs: the A1111 / OpenAI / native generation routes 5, progress and static files
// (anything outside the API prefixes) 0, the rest 1.
int request_cost(std::string_view method, std::string_view path);

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // budget: units per minute, 0 = unlimited. `now` can be replaced by tests.
  explicit RateLimiter(int budget, std::function<Clock::time_point()> now = Clock::now);

  // Spends `cost` units for `client`; when that would pass the budget, nothing is spent and the
  // answer is the seconds to wait (>= 1) until it would fit.
  std::optional<int> spend(const std::string& client, int cost) { return take(client, cost, true); }
  // What spend() would answer, without spending.
  std::optional<int> peek(const std::string& client, int cost) { return take(client, cost, false); }
  // Nothing, or the 429 to answer (Retry-After set, JSON body in the request's API shape).
  std::optional<HttpResponse> check(const HttpRequest& request);

 private:
  struct Spent {
    Clock::time_point at;
    int cost;
  };
  struct Window {
    std::deque<Spent> spent;
    int total = 0;
  };
  void expire(Window& w, Clock::time_point now) const;
  std::optional<int> take(const std::string& client, int cost, bool commit);

  int budget_;
  std::function<Clock::time_point()> now_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window> clients_;
  Clock::time_point last_sweep_{};
};

}  // namespace easel::server
