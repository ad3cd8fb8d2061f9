#include "text/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "text/text_tables.h"

namespace easel::text {
namespace tt = text_tables;

std::u32string utf8_to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                                static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) {
      out.push_back(0xFFFD);
      ++i;
    } else {
      out.push_back(static_cast<char32_t>(cp));
      i += static_cast<size_t>(n);
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string u32_to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

static bool in_ranges(const tt::CodeRange* r, size_t n, char32_t c) {
  const tt::CodeRange* end = r + n;
  const tt::CodeRange* it =
      std::upper_bound(r, end, c, [](char32_t v, const tt::CodeRange& x) { return v < x.first; });
  return it != r && c <= (it - 1)->last;
}

bool py_isspace(char32_t c) { return in_ranges(tt::kPySpace, tt::kPySpace_size, c); }

std::u32string py_strip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && py_isspace(s[b])) ++b;
  while (e > b && py_isspace(s[e - 1])) --e;
  return std::u32string(s.substr(b, e - b));
}

static bool case_ignorable(char32_t c) {
  return in_ranges(tt::kCaseIgnorable, tt::kCaseIgnorable_size, c);
}
static bool cased(char32_t c) { return in_ranges(tt::kCasedNotIgnorable, tt::kCasedNotIgnorable_size, c); }

// CPython's handle_capital_sigma: Σ lowercases to ς in the Final_Sigma context
// \p{cased}\p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased}).
static char32_t lower_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  while (j > 0 && case_ignorable(s[j - 1])) --j;
  bool final_sigma = j > 0 && cased(s[j - 1]);
  if (final_sigma) {
    size_t k = i + 1;
    while (k < s.size() && case_ignorable(s[k])) ++k;
    final_sigma = k == s.size() || !cased(s[k]);
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

std::u32string py_lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == 0x3A3) {
      out.push_back(lower_sigma(s, i));
      continue;
    }
    const tt::CodePair* end = tt::kLower + tt::kLower_size;
    const tt::CodePair* it =
        std::lower_bound(tt::kLower, end, c, [](const tt::CodePair& p, char32_t v) { return p.from < v; });
    if (it != end && it->from == c) {
      out.push_back(it->to);
      continue;
    }
    bool multi = false;
    for (size_t m = 0; m < tt::kLowerMulti_size; ++m) {
      if (tt::kLowerMulti[m].from == c) {
        out += utf8_to_u32(tt::kLowerMulti[m].to);
        multi = true;
        break;
      }
    }
    if (!multi) out.push_back(c);
  }
  return out;
}

static std::u32string utf8proc_nfc(std::u32string_view s) {
  const std::string utf8 = u32_to_utf8(s);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()), static_cast<utf8proc_ssize_t>(utf8.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return std::u32string(s);
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> hold(out, &std::free);
  return utf8_to_u32(std::string_view(reinterpret_cast<const char*>(out), static_cast<size_t>(n)));
}

// unicodedata.normalize("NFC") of CPython 3.11 (Unicode 14). utf8proc knows a newer Unicode, so
// the characters that are unassigned for Python are kept out of it: for Python they are starters
// that neither compose nor reorder, so the text is normalised piece by piece around them.
std::u32string nfc(std::u32string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) {
    // Below U+0300 nothing composes or decomposes under NFC (no combining marks).
    return std::u32string(s);
  }
  std::u32string out;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (in_ranges(tt::kPyUnassigned, tt::kPyUnassigned_size, s[i])) {
      out += utf8proc_nfc(s.substr(start, i - start));
      out.push_back(s[i]);
      start = i + 1;
    }
  }
  out += utf8proc_nfc(s.substr(start));
  return out;
}

}  // namespace easel::text
