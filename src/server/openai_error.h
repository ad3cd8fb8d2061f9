// Errors as the OpenAI API shapes them, so the openai SDKs raise their typed exceptions
// (BadRequestError, AuthenticationError, NotFoundError, RateLimitError) with our message:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "size", "code": null}}
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/http_message.h"

namespace easel::server {

inline HttpResponse openai_error(int status, const std::string& message, const std::string& type = "invalid_request_error",
                                 const nlohmann::json& param = nullptr, const nlohmann::json& code = nullptr) {
  return HttpResponse::json({{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}}, status);
}

inline bool is_openai_path(std::string_view path) { return path.substr(0, 4) == "/v1/" || path == "/v1"; }

// The error shape the request's API family uses: OpenAI's under /v1, FastAPI's elsewhere.
inline HttpResponse api_error(const HttpRequest& request, int status, const std::string& message,
                              const std::string& openai_type, const nlohmann::json& openai_code = nullptr) {
  return is_openai_path(request.path) ? openai_error(status, message, openai_type, nullptr, openai_code)
                                      : HttpResponse::error(status, message);
}

}  // namespace easel::server
