// The files of generation jobs that every API family handles the same way: uploads decoded (within
// the server's image limits) and stored as PNG before a job is queued, so a queued job holds paths
// rather than megabytes of base64; and the output images read back for the answer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "core/error.h"
#include "io/image.h"
#include "server/server_state.h"

namespace easel::server {

// Decodes `bytes` (PNG, JPEG, WebP, ...) and stores the image; returns its path. Errors name `field`.
Result<std::string> store_upload(ServerState& state, std::span<const uint8_t> bytes, const std::string& field);
Result<std::string> store_upload(ServerState& state, const Image& image);

// Deletes the uploads a finished job no longer needs (only files inside `uploads_dir`); a job that
// will run again after a restart keeps them, since it is not finished.
void remove_uploads(const nlohmann::json& job_request, const std::filesystem::path& uploads_dir);

// A whole file's bytes ("" when it cannot be read).
std::string read_whole_file(const std::filesystem::path& path);

}  // namespace easel::server
