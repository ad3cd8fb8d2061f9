// Base64 (RFC 4648, standard alphabet) for images in JSON APIs. Decoding accepts a data URI
// prefix ("data:image/png;base64,"), whitespace and missing padding, and fails on anything else.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace easel {

std::string base64_encode(std::span<const uint8_t> bytes);
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace easel
