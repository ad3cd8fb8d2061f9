#include "text/html_entities.h"

#include <algorithm>
#include <cstring>

#include "text/text_tables.h"
#include "text/unicode.h"

namespace easel::text {
namespace tt = text_tables;

namespace {

const char* lookup(const tt::Entity* table, size_t n, const std::string& name) {
  const tt::Entity* end = table + n;
  const tt::Entity* it = std::lower_bound(
      table, end, name, [](const tt::Entity& e, const std::string& v) { return std::strcmp(e.name, v.c_str()) < 0; });
  if (it != end && name == it->name) return it->value;
  return nullptr;
}

const char* html5(std::u32string_view name) {
  for (char32_t c : name)
    if (c >= 0x80) return nullptr;  // every entity name is ASCII
  std::string key(name.begin(), name.end());
  return lookup(tt::kHtml5, tt::kHtml5_size, key);
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_alnum(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// html._replace_charref for a numeric reference; digits without '#'/'x' and ';'.
std::u32string numeric_charref(std::u32string_view digits, int base) {
  constexpr unsigned long long kBig = 0x7FFFFFFFull;  // anything past 0x10FFFF behaves the same
  unsigned long long num = 0;
  for (char32_t c : digits) {
    const unsigned v = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    num = std::min(kBig, num * static_cast<unsigned>(base) + v);
  }
  static const char32_t kInvalidCharrefs[][2] = {
      {0x00, 0xFFFD}, {0x0D, 0x0D},   {0x80, 0x20AC}, {0x81, 0x81},   {0x82, 0x201A}, {0x83, 0x0192},
      {0x84, 0x201E}, {0x85, 0x2026}, {0x86, 0x2020}, {0x87, 0x2021}, {0x88, 0x02C6}, {0x89, 0x2030},
      {0x8A, 0x0160}, {0x8B, 0x2039}, {0x8C, 0x0152}, {0x8D, 0x8D},   {0x8E, 0x017D}, {0x8F, 0x8F},
      {0x90, 0x90},   {0x91, 0x2018}, {0x92, 0x2019}, {0x93, 0x201C}, {0x94, 0x201D}, {0x95, 0x2022},
      {0x96, 0x2013}, {0x97, 0x2014}, {0x98, 0x02DC}, {0x99, 0x2122}, {0x9A, 0x0161}, {0x9B, 0x203A},
      {0x9C, 0x0153}, {0x9D, 0x9D},   {0x9E, 0x017E}, {0x9F, 0x0178}};
  for (const auto& p : kInvalidCharrefs)
    if (num == p[0]) return std::u32string(1, p[1]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  const bool invalid_codepoint = (num >= 0x1 && num <= 0x8) || (num >= 0xE && num <= 0x1F) ||
                                 (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
                                 num == 0xB || (num & 0xFFFE) == 0xFFFE;
  if (invalid_codepoint) return U"";
  return std::u32string(1, static_cast<char32_t>(num));
}

}  // namespace

// _charref = r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)', replaced left to right.
std::u32string html_unescape(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    const size_t b = i + 1;
    size_t e = b;
    // numeric
    if (e < s.size() && s[e] == U'#') {
      size_t d = e + 1;
      if (d < s.size() && (s[d] == U'x' || s[d] == U'X')) {
        size_t k = d + 1;
        while (k < s.size() && is_hex(s[k])) ++k;
        if (k > d + 1) {
          out += numeric_charref(s.substr(d + 1, k - d - 1), 16);
          i = (k < s.size() && s[k] == U';') ? k + 1 : k;
          continue;
        }
      } else {
        size_t k = d;
        while (k < s.size() && is_digit(s[k])) ++k;
        if (k > d) {
          out += numeric_charref(s.substr(d, k - d), 10);
          i = (k < s.size() && s[k] == U';') ? k + 1 : k;
          continue;
        }
      }
      out.push_back(s[i++]);  // '&#' with no digits: no match here
      continue;
    }
    // named: [^\t\n\f <&#;]{1,32};?
    auto name_char = [](char32_t c) {
      return c != U'\t' && c != U'\n' && c != U'\f' && c != U' ' && c != U'<' && c != U'&' && c != U'#' &&
             c != U';';
    };
    while (e < s.size() && e - b < 32 && name_char(s[e])) ++e;
    if (e == b) {
      out.push_back(s[i++]);
      continue;
    }
    if (e < s.size() && s[e] == U';') ++e;
    const std::u32string_view name = s.substr(b, e - b);
    i = e;
    if (const char* v = html5(name)) {
      out += utf8_to_u32(v);
      continue;
    }
    bool found = false;
    for (size_t x = name.size() - 1; x > 1; --x) {  // longest known prefix
      if (const char* v = html5(name.substr(0, x))) {
        out += utf8_to_u32(v);
        out += name.substr(x);
        found = true;
        break;
      }
    }
    if (!found) {
      out.push_back(U'&');
      out += name;
    }
  }
  return out;
}

// HTML_ENTITY_RE = r"&#?[0-9A-Za-z]{1,24};" with _unescape_fixup.
std::u32string ftfy_unescape_html(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == U'&') {
      size_t b = i + 1;
      if (b < s.size() && s[b] == U'#') ++b;
      size_t e = b;
      while (e < s.size() && e - b < 24 && is_alnum(s[e])) ++e;
      if (e > b && e < s.size() && s[e] == U';') {
        const std::u32string_view whole = s.substr(i, e + 1 - i);  // "&...;"
        const std::u32string_view name = whole.substr(1);
        std::string key(name.begin(), name.end());
        const char* v = name[0] != U'#' ? lookup(tt::kHtml5, tt::kHtml5_size, key) : nullptr;
        if (!v && name[0] != U'#') v = lookup(tt::kFtfyUpperEntities, tt::kFtfyUpperEntities_size, key);
        if (v) {
          out += utf8_to_u32(v);
        } else if (name[0] == U'#') {
          const std::u32string un = html_unescape(whole);
          out += un.find(U';') != std::u32string::npos ? std::u32string(whole) : un;
        } else {
          out += whole;
        }
        i = e + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

}  // namespace easel::text
