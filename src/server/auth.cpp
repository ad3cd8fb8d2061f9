#include "server/auth.h"

#include <cctype>

#include "io/base64.h"
#include "server/header_text.h"
#include "server/openai_error.h"

namespace easel::server {

bool constant_time_equal(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= unsigned(x ^ y);
  }
  return diff == 0;
}

Result<Authenticator> Authenticator::create(const std::vector<std::string>& users, const std::vector<std::string>& api_keys) {
  Authenticator a;
  for (const std::string& u : users) {
    const size_t colon = u.find(':');
    if (colon == std::string::npos || colon == 0) return Error("--auth: '" + u.substr(0, colon) + "' is not user:password");
    a.users_.push_back(u);
  }
  for (const std::string& k : api_keys) {
    if (k.empty()) return Error("--api-key: the key is empty");
    a.api_keys_.push_back(k);
  }
  return a;
}

bool Authenticator::valid_authorization(std::string_view header) const {
  const size_t space = header.find(' ');
  if (space == std::string_view::npos) return false;
  const std::string scheme = ascii_lower(header.substr(0, space));
  std::string_view value = header.substr(space + 1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  // Every configured credential is compared (no early exit), so the time tells nothing either.
  bool ok = false;
  if (scheme == "basic") {
    const auto decoded = base64_decode(value);
    if (!decoded) return false;
    const std::string_view pair(reinterpret_cast<const char*>(decoded->data()), decoded->size());
    for (const std::string& u : users_) ok |= constant_time_equal(pair, u);
  } else if (scheme == "bearer") {
    for (const std::string& k : api_keys_) ok |= constant_time_equal(value, k);
  }
  return ok;
}

std::optional<HttpResponse> Authenticator::check(const HttpRequest& request) const {
  if (!enabled()) return std::nullopt;
  const std::string header = request.header("authorization");
  if (!header.empty() && valid_authorization(header)) return std::nullopt;
  HttpResponse r = api_error(request, 401,
                             header.empty() ? "authentication required: send HTTP Basic credentials or an API key (Authorization: Bearer KEY)"
                                            : "invalid credentials",
                             "invalid_request_error", "invalid_api_key");
  // Basic when users are configured, so a browser asks for them; Bearer for key-only servers.
  r.headers.emplace_back("WWW-Authenticate", users_.empty() ? "Bearer realm=\"easel\"" : "Basic realm=\"easel\"");
  return r;
}

}  // namespace easel::server
