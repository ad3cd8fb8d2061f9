#include "server/origin_policy.h"

#include <algorithm>
#include <cctype>

#include "server/header_text.h"
#include "server/openai_error.h"

namespace easel::server {

namespace {

// "https://Example.com:8443/sd/" -> "https://example.com:8443".
std::string origin_of(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  const size_t path = url.find('/', scheme + 3);
  return ascii_lower(url.substr(0, path));
}

bool state_changing(const std::string& method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

}  // namespace

bool is_loopback_ip(std::string_view a) {
  if (a == "::1" || a == "[::1]") return true;
  if (a.substr(0, 4) != "127.") return false;
  int dots = 0;
  for (char c : a) {
    if (c == '.') ++dots;
    else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return dots == 3;
}

std::string host_name(std::string_view host) {
  host = trim_blanks(host);
  if (!host.empty() && host.front() == '[') {
    const size_t end = host.find(']');
    return ascii_lower(end == std::string_view::npos ? host : host.substr(0, end + 1));
  }
  const size_t colon = host.find(':');
  return ascii_lower(host.substr(0, colon));
}

std::string media_type(std::string_view content_type) {
  return ascii_lower(trim_blanks(content_type.substr(0, content_type.find(';'))));
}

OriginPolicy::OriginPolicy(OriginPolicyOptions options) : options_(std::move(options)) {
  loopback_bind_ = is_loopback_ip(options_.bind_address);
  for (std::string& h : options_.allowed_hosts) h = ascii_lower(trim_blanks(h));
  public_origin_ = origin_of(options_.public_url);
}

bool OriginPolicy::host_allowed(const std::string& host) const {
  const std::string name = host_name(host);
  if (name == "localhost" || is_loopback_ip(name)) return true;
  const std::string whole = ascii_lower(trim_blanks(host));
  return std::any_of(options_.allowed_hosts.begin(), options_.allowed_hosts.end(),
                     [&](const std::string& h) { return h == name || h == whole; });
}

bool OriginPolicy::origin_allowed(const std::string& origin_header, const std::string& host) const {
  const std::string origin = ascii_lower(trim_blanks(origin_header));
  // Sandboxed frames, file:// pages and redirects send "null": it names no one, so it is no one's.
  if (origin == "null" || origin.empty()) return false;
  if (!host.empty() && origin == "http://" + ascii_lower(trim_blanks(host))) return true;
  if (!public_origin_.empty() && origin == public_origin_) return true;
  return std::any_of(options_.cors_origins.begin(), options_.cors_origins.end(),
                     [&](const std::string& o) { return o == "*" || ascii_lower(trim_blanks(o)) == origin; });
}

std::optional<HttpResponse> OriginPolicy::check(const HttpRequest& request) const {
  const std::string host = request.header("host");
  if (!host.empty() && (loopback_bind_ || !options_.allowed_hosts.empty()) && !host_allowed(host)) {
    return api_error(request, 403,
                     "host '" + host + "' is not allowed (DNS rebinding protection): this server answers to localhost, "
                     "127.0.0.1 and the names given with --allowed-hosts; add " + host_name(host) +
                         " to --allowed-hosts to reach it by that name",
                     "permission_error", "host_not_allowed");
  }
  const bool upgrade = ascii_lower(request.header("upgrade")) == "websocket";
  if (state_changing(request.method) || upgrade) {
    const std::string origin = request.header("origin");
    if (!origin.empty() && !origin_allowed(origin, host)) {
      return api_error(request, 403,
                       "cross-origin request from '" + origin + "' refused: only pages served by this server may " +
                           (upgrade ? "open its WebSocket" : "change anything") +
                           "; allow that origin with --cors-origins " + origin,
                       "permission_error", "origin_not_allowed");
    }
    if (origin.empty() && ascii_lower(trim_blanks(request.header("sec-fetch-site"))) == "cross-site") {
      return api_error(request, 403, "cross-site request refused (Sec-Fetch-Site: cross-site without an Origin)",
                       "permission_error", "origin_not_allowed");
    }
  }
  if ((request.method == "POST" || request.method == "PUT" || request.method == "PATCH") && (request.has_body || !request.body.empty())) {
    const std::string type = media_type(request.header("content-type"));
    const bool json = type == "application/json" || (type.find('/') != std::string::npos && type.size() > 5 &&
                                                     type.compare(type.size() - 5, 5, "+json") == 0);
    const bool multipart = request.path == "/v1/images/edits" && type == "multipart/form-data";
    if (!json && !multipart) {
      return api_error(request, 415,
                       "unsupported content type '" + type + "': send the body as JSON with Content-Type: application/json" +
                           (request.path == "/v1/images/edits" ? " or as multipart/form-data" : ""),
                       "invalid_request_error", "unsupported_media_type");
    }
  }
  return std::nullopt;
}

}  // namespace easel::server
