// The files of generation jobs that every API family handles the same way: uploads decoded (within
// the server's image limits) and stored as PNG before a job is queued, so a queued job holds
// references rather than megabytes of base64; and the output images read back for the answer.
//
// A stored upload is named by an id the server made (16 random hex digits) and a job's request
// refers to its uploads only by those ids, under a field no client can set (requests are reduced
// to known A1111 fields before the server adds it):
//   "easel_uploads": {"init_images": ["3f09c2…"], "mask": "a81b…"}
// So no client input ever names a server path: an id resolves to <uploads>/<id>.png or to nothing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/image.h"
#include "server/server_state.h"

namespace easel::server {

inline constexpr const char* kUploadsField = "easel_uploads";

struct JobUploads {
  std::vector<std::string> init_images;  // ids
  std::string mask;                      // id, "" for none
};

// Decodes `bytes` (PNG, JPEG, WebP, ...) and stores the image; returns its id. Errors name `field`.
Result<std::string> store_upload(ServerState& state, std::span<const uint8_t> bytes, const std::string& field);
Result<std::string> store_upload(ServerState& state, const Image& image);

// The uploads a job's request refers to (empty when none), and the request with them attached.
JobUploads job_uploads(const nlohmann::json& job_request);
void attach_uploads(nlohmann::json& job_request, const JobUploads& uploads);

// The request as clients may see it again (parameters to recall): without the upload ids.
nlohmann::json without_uploads(const nlohmann::json& job_request);

// <uploads_dir>/<id>.png, or nothing when `id` is not an id the server makes.
std::optional<std::filesystem::path> upload_path(const std::filesystem::path& uploads_dir, const std::string& id);

// Deletes the uploads of a finished (or refused) job; a job that will run again after a restart
// keeps them, since it is not finished.
void remove_uploads(const JobUploads& uploads, const std::filesystem::path& uploads_dir);
void remove_uploads(const nlohmann::json& job_request, const std::filesystem::path& uploads_dir);

// A whole file's bytes ("" when it cannot be read).
std::string read_whole_file(const std::filesystem::path& path);

}  // namespace easel::server
