// What `POST /sdapi/v1/options` may store. A1111 has hundreds of settings and clients set whichever
// they use, so any name is kept for reading back; but the server keeps them in memory and sends
// them to every page load, so each value is bounded: a scalar (string, number, bool, null) or a
// short list of scalars, under a short name, and only so many of them. The settings easel itself
// applies are checked for their type and range.
#pragma once

#include <nlohmann/json.hpp>

#include "server/a1111_request.h"

namespace easel::server {

struct OptionLimits {
  size_t max_options = 256;        // stored names, all requests together
  size_t max_name_bytes = 128;
  size_t max_string_bytes = 4096;
  size_t max_list_items = 64;
};

// The options of a request body that may be stored, or the problems (errors, as FastAPI lists
// them); `stored` is what is already kept, for the count limit.
nlohmann::json check_options(const nlohmann::json& body, const nlohmann::json& stored, ValidationErrors& errors,
                             const OptionLimits& limits = {});

}  // namespace easel::server
