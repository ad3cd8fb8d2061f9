// `GET /outputs/{file}`: generated images, served from the outputs folder only. The name may not
// climb out of it (`..`, absolute paths) nor follow a link that leads outside, and only image
// files are served.
#include <fstream>

#include "server/media_types.h"
#include "server/server_state.h"

namespace easel::server {

namespace fs = std::filesystem;

namespace {

bool inside(const fs::path& file, const fs::path& dir) {
  auto f = file.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++f)
    if (f == file.end() || *f != *d) return false;
  return f != file.end();
}

}  // namespace

void add_output_routes(Router& r, ServerState& s) {
  r.add("GET", "/outputs/{*file}", [&s](HttpRequest& req, Responder respond) {
    const std::string& name = req.params["file"];
    if (name.find('\0') != std::string::npos || name.find('\\') != std::string::npos)
      return respond(HttpResponse::error(400, "invalid file name"));
    const fs::path rel(name);
    if (rel.is_absolute()) return respond(HttpResponse::error(400, "the file name must be relative to the outputs folder"));
    for (const auto& part : rel)
      if (part == ".." || part == ".") return respond(HttpResponse::error(400, "the file name may not contain '.' or '..'"));
    const auto format = image_format_from_extension(rel);  // images only: no HTML, no SVG
    if (!format) return respond(HttpResponse::error(404, "no such image: " + name));
    // Links inside the folder are resolved: the real file must still be in the real folder.
    std::error_code ec;
    const fs::path root = fs::canonical(s.images.outputs_dir(), ec);
    if (ec) return respond(HttpResponse::error(404, "no such image: " + name));
    const fs::path real = fs::canonical(root / rel, ec);
    if (ec || !inside(real, root) || !fs::is_regular_file(real, ec))
      return respond(HttpResponse::error(404, "no such image: " + name));
    std::ifstream in(real, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (!in.good() && !in.eof()) return respond(HttpResponse::error(500, "cannot read " + name));
    respond(HttpResponse::bytes(std::move(bytes), std::string(media_type_of(*format))));
  });
}

}  // namespace easel::server
