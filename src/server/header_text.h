// Small text helpers for HTTP header values, which are ASCII and case-insensitive where names and
// tokens are concerned ("Chunked", "Application/JSON").
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace easel::server {

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Without the spaces and tabs HTTP allows around a value.
inline std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace easel::server
