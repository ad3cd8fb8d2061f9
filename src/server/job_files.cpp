#include "server/job_files.h"

#include <fstream>

#include "server/job_queue.h"

namespace easel::server {

namespace fs = std::filesystem;

Result<std::string> store_upload(ServerState& state, const Image& image) {
  fs::create_directories(state.uploads_dir);
  const fs::path file = state.uploads_dir / (random_id() + ".png");
  EASEL_TRY_STATUS(write_image(file, image, ImageFormat::Png));
  return file.string();
}

Result<std::string> store_upload(ServerState& state, std::span<const uint8_t> bytes, const std::string& field) {
  EASEL_TRY(Image image, decode_image(bytes, field, state.image_limits));
  return store_upload(state, image);
}

std::string read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void remove_uploads(const nlohmann::json& job_request, const std::filesystem::path& uploads_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& f : job_request.value("init_image_files", nlohmann::json::array()))
    if (f.is_string()) files.push_back(f.get<std::string>());
  if (auto m = job_request.find("mask_file"); m != job_request.end() && m->is_string()) files.push_back(m->get<std::string>());
  std::error_code ec;
  const fs::path dir = fs::weakly_canonical(uploads_dir, ec);
  for (const std::string& f : files) {
    const fs::path p = fs::weakly_canonical(f, ec);
    if (!ec && p.parent_path() == dir) fs::remove(p, ec);
  }
}

}  // namespace easel::server
