// The Content-Type of what the server sends: one table for generated images, live previews and the
// web UI's files.
#pragma once

#include <string_view>

#include "io/image.h"

namespace easel::server {

// By the file name's extension (case-insensitive); "application/octet-stream" when unknown.
std::string_view media_type_of(std::string_view file_name);
std::string_view media_type_of(ImageFormat format);

}  // namespace easel::server
