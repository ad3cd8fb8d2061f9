// Which browser pages and which host names may use the server. A browser sends any page's
// requests to us, with the user's credentials and from inside their network, so a page from
// another origin must not change anything (CSRF, including the no-preflight text/plain POST), and
// a page that reached 127.0.0.1 through a DNS name it controls must be told apart (DNS rebinding):
//
// - Host: while bound to a loopback address, only loopback names (localhost, 127.x.y.z, [::1]) and
//   --allowed-hosts; elsewhere checked only when --allowed-hosts is given.
// - Origin: a state-changing request (not GET/HEAD/OPTIONS) or a WebSocket upgrade that carries an
//   Origin must come from the server's own origin (http:// + Host, or --public-url's) or from
//   --cors-origins; without Origin, `Sec-Fetch-Site: cross-site` is refused too. Clients that send
//   no Origin (curl, Python) pass.
// - Content type: a request body must be JSON (application/json or */*+json); /v1/images/edits
//   also takes multipart/form-data. Browsers can send those cross-origin only after a preflight.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http_message.h"

namespace easel::server {

struct OriginPolicyOptions {
  std::string bind_address;                // the address the server listens on (--host)
  std::vector<std::string> allowed_hosts;  // --allowed-hosts: host names, with or without a port
  std::vector<std::string> cors_origins;   // --cors-origins ("*": any origin)
  std::string public_url;                  // --public-url: its origin is the server's own too
};

class OriginPolicy {
 public:
  explicit OriginPolicy(OriginPolicyOptions options);
  // Nothing when the request may go on; else the 400 / 403 / 415 to answer.
  std::optional<HttpResponse> check(const HttpRequest& request) const;

 private:
  bool host_allowed(const std::string& host) const;
  bool origin_allowed(const std::string& origin, const std::string& host) const;

  OriginPolicyOptions options_;
  bool loopback_bind_ = false;
  std::string public_origin_;  // scheme://host[:port] of --public-url, lower-case
};

// "127.0.0.1", "127.1.2.3", "::1" (not names).
bool is_loopback_ip(std::string_view address);
// The host name of a Host header, lower-case, without the port ("[::1]:7860" -> "[::1]").
std::string host_name(std::string_view host_header);
// "application/json; charset=utf-8" -> "application/json".
std::string media_type(std::string_view content_type);

}  // namespace easel::server
