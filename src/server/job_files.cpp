#include "server/job_files.h"

#include <algorithm>
#include <fstream>

#include "server/job_queue.h"

namespace easel::server {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool is_upload_id(const std::string& id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

Result<std::string> store_upload(ServerState& state, const Image& image) {
  std::error_code ec;
  fs::create_directories(state.uploads_dir, ec);
  const std::string id = random_id();
  // The error names no server path: it reaches the client.
  if (Status s = write_image(state.uploads_dir / (id + ".png"), image, ImageFormat::Png); !s.ok())
    return Error("the server cannot store the uploaded image (is its --data-dir writable and not full?)");
  return id;
}

Result<std::string> store_upload(ServerState& state, std::span<const uint8_t> bytes, const std::string& field) {
  EASEL_TRY(Image image, decode_image(bytes, field, state.image_limits));
  return store_upload(state, image);
}

JobUploads job_uploads(const json& job_request) {
  JobUploads u;
  const auto it = job_request.is_object() ? job_request.find(kUploadsField) : job_request.end();
  if (it == job_request.end() || !it->is_object()) return u;
  for (const auto& id : it->value("init_images", json::array()))
    if (id.is_string()) u.init_images.push_back(id.get<std::string>());
  if (const auto m = it->find("mask"); m != it->end() && m->is_string()) u.mask = m->get<std::string>();
  return u;
}

void attach_uploads(json& job_request, const JobUploads& uploads) {
  json u = {{"init_images", uploads.init_images}};
  if (!uploads.mask.empty()) u["mask"] = uploads.mask;
  job_request[kUploadsField] = std::move(u);
}

json without_uploads(const json& job_request) {
  json r = job_request;
  if (r.is_object()) r.erase(kUploadsField);
  return r;
}

std::optional<fs::path> upload_path(const fs::path& uploads_dir, const std::string& id) {
  if (!is_upload_id(id)) return std::nullopt;
  return uploads_dir / (id + ".png");
}

void remove_uploads(const JobUploads& uploads, const fs::path& uploads_dir) {
  std::vector<std::string> ids = uploads.init_images;
  if (!uploads.mask.empty()) ids.push_back(uploads.mask);
  std::error_code ec;
  for (const std::string& id : ids)
    if (const auto path = upload_path(uploads_dir, id)) fs::remove(*path, ec);
}

void remove_uploads(const json& job_request, const fs::path& uploads_dir) {
  remove_uploads(job_uploads(job_request), uploads_dir);
}

std::string read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace easel::server
