#include "server/client_json.h"

namespace easel::server {

namespace {

// Depth and value count of JSON text, without building it. Strings are skipped (their brackets
// and commas are text); malformed text is left to the parser, which reports it precisely.
Status scan(std::string_view text, const ClientJsonLimits& limits) {
  size_t depth = 0, values = 1;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > limits.max_depth)
          return Error(cat("the JSON is nested deeper than ", limits.max_depth, " levels"));
        break;
      case ']':
      case '}':
        if (depth) --depth;
        break;
      case ',':
        if (++values > limits.max_values) return Error(cat("the JSON has more than ", limits.max_values, " values"));
        break;
      default: break;
    }
  }
  return {};
}

}  // namespace

Result<nlohmann::json> parse_client_json(std::string_view text, const ClientJsonLimits& limits) {
  EASEL_TRY_STATUS(scan(text, limits));
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();
    if (const size_t at = why.find("] "); at != std::string::npos) why.erase(0, at + 2);  // "[json.exception.parse_error.101] "
    return Error(cat("the request body is not valid JSON: ", why));
  }
}

}  // namespace easel::server
