// UTF-8 <-> UTF-32 and the Python str operations the CLIP text cleaner needs, with CPython 3.11's
// exact semantics (tables in text_tables.cpp): str.lower() (full mapping, final sigma),
// str.isspace(), str.strip(), unicodedata.normalize("NFC").
#pragma once

#include <string>
#include <string_view>

namespace easel::text {

// Invalid UTF-8 bytes decode to U+FFFD (a Python str can never hold them).
std::u32string utf8_to_u32(std::string_view s);
std::string u32_to_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);

bool py_isspace(char32_t c);
std::u32string py_strip(std::u32string_view s);
std::u32string py_lower(std::u32string_view s);
std::u32string nfc(std::u32string_view s);

}  // namespace easel::text
