// multipart/form-data bodies (RFC 7578), as the openai SDK and browsers send file uploads.
//
// The parser works on the whole body the HTTP server already read (bounded by its body limit) and
// bounds what it builds on top: the number of parts and each part's header size. Anything malformed
// (no or bad boundary, a part without headers, a body cut before the closing delimiter) is an error
// whose message a client can show; nothing is read past the body.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel::server {

struct MultipartPart {
  std::string name;          // Content-Disposition's name="..."
  std::string filename;      // filename="..." ("" for plain fields)
  std::string content_type;  // the part's Content-Type ("" when absent)
  std::string_view data;     // into the parsed body: valid while that body lives
};

struct MultipartLimits {
  size_t max_parts = 64;
  size_t max_header_bytes = 8192;  // per part
};

// The boundary parameter of a "multipart/form-data; boundary=..." Content-Type.
Result<std::string> multipart_boundary(std::string_view content_type);

Result<std::vector<MultipartPart>> parse_multipart(std::string_view body, std::string_view content_type,
                                                   const MultipartLimits& limits = {});

}  // namespace easel::server
