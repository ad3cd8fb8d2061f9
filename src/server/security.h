// The server's gatekeeping, in the order a request meets it:
//   1. CORS preflight: answered without credentials, as browsers send it;
//   2. origin / host policy (origin_policy.h): cross-origin writes, DNS rebinding, non-JSON bodies;
//   3. authentication, with its own budgets so that neither a flood of anonymous requests nor a
//      password guesser can spend the real user's budget: a request without credentials gets its
//      401 from a per-client anonymous budget (the normal size; 429 once spent); wrong credentials
//      spend a small per-client "failed attempts" budget, and once that is spent every request of
//      that client that carries credentials gets 429 without being checked (brute force);
//   4. rate limit: authenticated (or auth-off) requests spend the normal per-client budget.
// Then CORS headers on every response. Plugged into the HTTP server's before/after hooks, around
// whatever hooks are already there.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "server/http_server.h"

namespace easel::server {

struct SecurityOptions {
  std::vector<std::string> auth;          // "user:pass" entries (--auth)
  std::vector<std::string> api_keys;      // Bearer keys (--api-key)
  int rate_limit = 0;                     // units per minute per client, 0 = off (the CLI defaults to 300)
  int failed_auth_limit = 20;             // wrong credentials per minute per client before 429; 0 = off
  std::vector<std::string> cors_origins;  // empty = CORS off
  std::vector<std::string> allowed_hosts; // Host names accepted besides localhost (--allowed-hosts)
  std::string public_url;                 // --public-url: its origin counts as the server's own
};

// Errors for bad options (an --auth entry that is not user:pass). http.host must already be the
// address the server binds: the host check depends on it.
Status add_security_hooks(ServerOptions& http, const SecurityOptions& options);

}  // namespace easel::server
