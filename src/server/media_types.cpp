#include "server/media_types.h"

#include <utility>

#include "server/header_text.h"

namespace easel::server {

namespace {

constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
    {".png", "image/png"},         {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},       {".webp", "image/webp"},
    {".html", "text/html; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"}, {".json", "application/json"},
    {".svg", "image/svg+xml"},     {".ico", "image/x-icon"},
    {".woff2", "font/woff2"}};

}  // namespace

std::string_view media_type_of(std::string_view file_name) {
  const std::string name = ascii_lower(file_name);
  for (const auto& [ext, type] : kTypes)
    if (name.ends_with(ext)) return type;
  return "application/octet-stream";
}

std::string_view media_type_of(ImageFormat format) {
  switch (format) {
    case ImageFormat::Png: return media_type_of(".png");
    case ImageFormat::Jpeg: return media_type_of(".jpg");
    case ImageFormat::Webp: return media_type_of(".webp");
  }
  return "application/octet-stream";
}

}  // namespace easel::server
