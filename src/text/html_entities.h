// HTML character references: Python's html.unescape (HTML5 rules, full entity table) and ftfy's
// stricter unescape_html (only `&name;` forms, plus some all-caps names).
#pragma once

#include <string>
#include <string_view>

namespace easel::text {

// html.unescape(s) of CPython 3.11.
std::u32string html_unescape(std::u32string_view s);
// ftfy.fixes.unescape_html(s) of ftfy 6.3.1.
std::u32string ftfy_unescape_html(std::u32string_view s);

}  // namespace easel::text
