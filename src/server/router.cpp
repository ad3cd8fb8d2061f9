#include "server/router.h"

#include <algorithm>
#include <cctype>

#include "server/header_text.h"

namespace easel::server {

std::string HttpRequest::header(std::string_view name) const {
  auto it = headers.find(ascii_lower(name));
  return it == headers.end() ? std::string() : it->second;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

HttpResponse HttpResponse::json(const nlohmann::json& value, int status) {
  HttpResponse r;
  r.status = status;
  r.body = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

HttpResponse HttpResponse::error(int status, std::string_view message) {
  return json({{"error", reason_phrase(status)}, {"detail", message}}, status);
}

HttpResponse HttpResponse::bytes(std::string body, std::string content_type, int status) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    const size_t j = path.find('/', i);
    const size_t end = j == std::string_view::npos ? path.size() : j;
    if (end > i) out.emplace_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

void Router::add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back(Route{std::move(method), split_path(pattern), std::move(handler)});
}

bool Router::match(const Route& route, const std::vector<std::string>& path, HttpRequest& request) {
  std::map<std::string, std::string> params;
  for (size_t i = 0; i < route.segments.size(); ++i) {
    const std::string& seg = route.segments[i];
    const bool param = seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
    if (param && seg[1] == '*') {  // the rest of the path, at least one segment
      if (i >= path.size()) return false;
      std::string rest;
      for (size_t k = i; k < path.size(); ++k) rest += (k > i ? "/" : "") + path[k];
      params[seg.substr(2, seg.size() - 3)] = rest;
      request.params = std::move(params);
      return true;
    }
    if (i >= path.size()) return false;
    if (param) params[seg.substr(1, seg.size() - 2)] = path[i];
    else if (seg != path[i]) return false;
  }
  if (route.segments.size() != path.size()) return false;
  request.params = std::move(params);
  return true;
}

void Router::dispatch(HttpRequest& request, const Responder& respond) const {
  const std::vector<std::string> path = split_path(request.path);
  bool path_known = false;
  for (const Route& route : routes_) {
    if (!match(route, path, request)) continue;
    path_known = true;
    if (route.method != request.method && !(request.method == "HEAD" && route.method == "GET")) continue;
    route.handler(request, respond);
    return;
  }
  if (path_known) respond(HttpResponse::error(405, "method " + request.method + " is not allowed on " + request.path));
  else respond(HttpResponse::error(404, "no such endpoint: " + request.path));
}

}  // namespace easel::server
