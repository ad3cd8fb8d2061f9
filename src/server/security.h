// The server's gatekeeping, in the order a request meets it: CORS preflight (answered without
// credentials, as browsers send it), rate limit (before authentication, so guessing passwords costs
// budget too), authentication; then CORS headers on every response. Plugged into the HTTP server's
// before/after hooks, around whatever hooks are already there.
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
  std::vector<std::string> cors_origins;  // empty = CORS off
};

// Errors for bad options (an --auth entry that is not user:pass).
Status add_security_hooks(ServerOptions& http, const SecurityOptions& options);

}  // namespace easel::server
