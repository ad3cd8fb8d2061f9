// ftfy.fix_text (ftfy 6.3.1, default TextFixerConfig) in C++: the first step of CLIP's
// basic_clean. Ported function by function from ftfy/__init__.py, fixes.py, chardata.py,
// badness.py and bad_codecs/; the character data is generated (text_tables.cpp).
#pragma once

#include <string>
#include <string_view>

namespace easel::text {

std::u32string ftfy_fix_text(std::u32string_view text);

// The pieces, for tests.
bool ftfy_is_bad(std::u32string_view text);                   // ftfy.badness.is_bad
std::u32string ftfy_fix_encoding(std::u32string_view text);  // ftfy.fix_encoding

}  // namespace easel::text
