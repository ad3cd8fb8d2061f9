// Credentials every request must carry when the server is started with them: HTTP Basic users
// (`--auth user:pass,...`, as SD.Next) and Bearer API keys (`--api-key`, as OpenAI clients send
// them). Either kind is accepted when both are configured. Comparisons take the same time whatever
// the guess, so a client cannot find a secret byte by byte from response times.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "server/http_message.h"

namespace easel::server {

class Authenticator {
 public:
  // users: "user:pass" each; an entry without ':' or with an empty user is an error.
  static Result<Authenticator> create(const std::vector<std::string>& users, const std::vector<std::string>& api_keys);

  bool enabled() const { return !users_.empty() || !api_keys_.empty(); }
  // Nothing when the request may go on; else the 401 (with WWW-Authenticate) to answer.
  std::optional<HttpResponse> check(const HttpRequest& request) const;

 private:
  bool valid_authorization(std::string_view header) const;
  std::vector<std::string> users_;     // "user:pass", compared whole
  std::vector<std::string> api_keys_;
};

// Equal contents, in time that depends only on the lengths' maximum.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace easel::server
