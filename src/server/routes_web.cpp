// The web UI's files come from the binary (src/assets, built from web/). Their URLs carry no
// version, so browsers must revalidate (Cache-Control: no-cache) and get 304 when the ETag, a hash
// of the contents, still matches: a new build shows at once, an unchanged one costs no transfer.
#include "server/routes_web.h"

#include <cstdio>
#include <map>

#include "assets/assets.h"
#include "server/media_types.h"

namespace easel::server {

namespace {

struct WebAsset {
  std::string_view bytes;
  std::string content_type;
  std::string etag;
};

std::string etag(std::string_view bytes) {  // FNV-1a, 64 bits
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

const std::map<std::string, WebAsset, std::less<>>& web_assets() {
  static const auto table = [] {
    std::map<std::string, WebAsset, std::less<>> out;
    for (const auto& f : assets::web_files()) {
      const std::string_view bytes(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size());
      out.emplace(std::string(f.path), WebAsset{bytes, std::string(media_type_of(f.path)), etag(bytes)});
    }
    return out;
  }();
  return table;
}

void serve(const HttpRequest& req, const Responder& respond, std::string_view path) {
  const auto& table = web_assets();
  const auto it = table.find(path);
  if (it == table.end()) return respond(HttpResponse::error(404, "no such file: /web/" + std::string(path)));
  const WebAsset& a = it->second;
  HttpResponse res = req.header("if-none-match") == a.etag ? HttpResponse::bytes("", a.content_type, 304)
                                                           : HttpResponse::bytes(std::string(a.bytes), a.content_type);
  res.headers = {{"Cache-Control", "no-cache"}, {"ETag", a.etag}, {"X-Content-Type-Options", "nosniff"}};
  respond(std::move(res));
}

}  // namespace

void add_web_routes(Router& r) {
  r.add("GET", "/", [](HttpRequest& req, Responder respond) { serve(req, respond, "index.html"); });
  r.add("GET", "/web/{*file}", [](HttpRequest& req, Responder respond) { serve(req, respond, req.params["file"]); });
}

}  // namespace easel::server
