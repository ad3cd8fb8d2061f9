// JSON from clients, read within limits before anything else sees it. nlohmann::json parses any
// depth, but dumping or destroying a value nested tens of thousands of levels deep recurses once
// per level and overflows a thread's stack: a request body, a field inside it, or an option
// stored for later all crashed the server that way. A body of tiny values (`[1,1,1,...]`, 60 MB)
// would also cost gigabytes once parsed. So the text is scanned first: too deep or too many values
// is refused before a single value is built.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace easel::server {

struct ClientJsonLimits {
  size_t max_depth = 32;        // nested arrays / objects; A1111 requests need 3
  size_t max_values = 100000;   // values in the whole document (a base64 image is one)
};

// The parsed value, or an error a client can act on ("nested deeper than 32 levels", "not valid
// JSON at byte 17: ...").
Result<nlohmann::json> parse_client_json(std::string_view text, const ClientJsonLimits& limits = {});

}  // namespace easel::server
