// Routes "METHOD /path/{param}" to handlers. Unknown paths get a JSON 404, known paths with
// another method a JSON 405, so every answer is JSON a client can show.
#pragma once

#include <string>
#include <vector>

#include "server/http_message.h"

namespace easel::server {

class Router {
 public:
  // pattern: "/sdapi/v1/txt2img", "/easel/v1/jobs/{id}"; a trailing "{*rest}" matches the rest
  // of the path ("/outputs/{*file}").
  void add(std::string method, std::string pattern, Handler handler);
  void dispatch(HttpRequest& request, const Responder& respond) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
  };
  static bool match(const Route& route, const std::vector<std::string>& path, HttpRequest& request);
  std::vector<Route> routes_;
};

std::vector<std::string> split_path(std::string_view path);

}  // namespace easel::server
