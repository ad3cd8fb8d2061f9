#include "text/ftfy.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <vector>

#include "text/html_entities.h"
#include "text/regex.h"
#include "text/text_tables.h"
#include "text/unicode.h"

namespace easel::text {
namespace tt = text_tables;

namespace {

using Bytes = std::string;  // byte strings (Python bytes)

// ---- regex helpers ------------------------------------------------------------------------------

// re.sub over a UTF-8 or byte subject, with a replacement callback on the matched text.
template <class F>
std::string regex_sub(const Regex& re, std::string_view subject, F&& replace) {
  std::string out;
  size_t pos = 0, last = 0;
  RegexMatch m;
  while (pos <= subject.size() && re.search(subject, pos, &m)) {
    out.append(subject.substr(last, m.begin - last));
    out += replace(subject.substr(m.begin, m.end - m.begin));
    last = m.end;
    pos = m.end > m.begin ? m.end : m.end + 1;  // patterns here never match empty
  }
  out.append(subject.substr(last));
  return out;
}

bool regex_found(const Regex& re, std::string_view subject) {
  RegexMatch m;
  return re.search(subject, 0, &m);
}

// ---- single-byte codecs (ftfy.chardata.CHARMAP_ENCODINGS, sloppy where ftfy makes them so) --------

constexpr size_t kLatin1 = 0, kSloppy1252 = 1, kMacRoman = 8;

struct Charmap {
  std::unordered_map<char32_t, unsigned char> encode;  // only the bytes 0x80..0xFF and 0x1A
};

const Charmap& charmap(size_t k) {
  static const std::vector<Charmap> maps = [] {
    std::vector<Charmap> v(tt::kCharmapCount);
    for (size_t k = 0; k < tt::kCharmapCount; ++k) {
      for (int b = 0x80; b < 0x100; ++b) v[k].encode.emplace(tt::kCharmaps[k][b], static_cast<unsigned char>(b));
      v[k].encode.emplace(tt::kCharmaps[k][0x1A], 0x1A);
    }
    return v;
  }();
  return maps[k];
}

// chardata.possible_encoding: ^[\x00-\x19\x1b-\x7f{chars of 0x80..0xFF and 0x1A}]*$
bool possible_encoding(std::u32string_view text, size_t k) {
  const Charmap& m = charmap(k);
  for (char32_t c : text) {
    if (c < 0x80 && c != 0x1A) continue;
    if (!m.encode.count(c)) return false;
  }
  return true;
}

bool is_ascii(std::u32string_view text) {
  return std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; });
}

Bytes encode_charmap(std::u32string_view text, size_t k) {
  const Charmap& m = charmap(k);
  Bytes out;
  out.reserve(text.size());
  for (char32_t c : text) {
    auto it = m.encode.find(c);
    out.push_back(static_cast<char>(it != m.encode.end() ? it->second : static_cast<unsigned char>(c)));
  }
  return out;
}

// ---- UTF-8 decoders ------------------------------------------------------------------------------

// Python's strict UTF-8 decoder: appends to out, or returns false on any error.
bool decode_utf8_strict(std::string_view s, std::u32string& out) {
  size_t i = 0;
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  while (i < s.size()) {
    const unsigned c = byte(i);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int n;
    char32_t cp;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0F;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const unsigned t = byte(i + k);
      if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF)) return false;
      cp = (cp << 6) | (t & 0x3F);
    }
    out.push_back(cp);
    i += n + 1;
  }
  return true;
}

// bad_codecs/utf8_variants.py: UTF-8 plus Java's C0 80 for NUL and CESU-8 surrogate pairs.
std::optional<std::u32string> decode_utf8_variants(std::string_view in) {
  static const Regex special(
      R"((\xc0(\x80|$))|(\xed([\xa0-\xaf]|$)([\x80-\xbf]|$)(\xed|$)([\xb0-\xbf]|$)([\x80-\xbf]|$))|(\xed([\xa0-\xbf]|$)([\x80-\xbf]|$)))",
      0);
  static const Regex cesu8(R"(\xed([\xa0-\xaf]|$)([\x80-\xbf]|$)(\xed|$)([\xb0-\xbf]|$)([\x80-\xbf]|$))", 0);
  std::u32string out;
  size_t pos = 0;
  while (pos < in.size()) {
    const std::string_view rest = in.substr(pos);
    RegexMatch m;
    if (!special.search(rest, 0, &m)) {
      if (!decode_utf8_strict(rest, out)) return std::nullopt;
      break;
    }
    if (m.begin > 0) {
      if (!decode_utf8_strict(rest.substr(0, m.begin), out)) return std::nullopt;
      pos += m.begin;
      continue;
    }
    const auto b = [&](size_t j) { return static_cast<unsigned char>(rest[j]); };
    if (b(0) == 0xC0) {
      if (rest.size() > 1) {
        out.push_back(0);
        pos += 2;
        continue;
      }
      return std::nullopt;  // a lone C0 at the end
    }
    RegexMatch c;
    if (rest.size() < 6 || !cesu8.match_at(rest, 0, &c)) return std::nullopt;  // a lone surrogate
    out.push_back(static_cast<char32_t>(((b(1) & 0x0F) << 16) + ((b(2) & 0x3F) << 10) + ((b(4) & 0x0F) << 6) +
                                        (b(5) & 0x3F) + 0x10000));
    pos += 6;
  }
  return out;
}

// ---- transcoders on bytes (fixes.restore_byte_a0, fixes.replace_lossy_sequences) -----------------

const Regex& altered_utf8_re() {
  static const Regex re(
      R"([\xc2\xc3\xc5\xce\xd0\xd9][ ]|[\xe2\xe3][ ][\x80-\x84\x86-\x9f\xa1-\xbf]|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf][ ]|[\xf0][ ][\x80-\xbf][\x80-\xbf]|[\xf0][\x80-\xbf][ ][\x80-\xbf]|[\xf0][\x80-\xbf][\x80-\xbf][ ])",
      0);
  return re;
}

Bytes restore_byte_a0(const Bytes& in) {
  static const Regex a_grave_word(R"(\xc3 (?! |quele|quela|quilo|s ))", 0);
  const Bytes step = regex_sub(a_grave_word, in, [](std::string_view) { return std::string("\xc3\xa0 "); });
  return regex_sub(altered_utf8_re(), step, [](std::string_view m) {
    std::string s(m);
    std::replace(s.begin(), s.end(), '\x20', '\xa0');
    return s;
  });
}

Bytes replace_lossy_sequences(const Bytes& in) {
  static const Regex lossy(
      R"([\xc2-\xdf][\x1a]|[\xc2-\xc3][?]|\xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]|\xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]|[\xe0-\xef][\x1a?][\x1a\x80-\xbf]|[\xe0-\xef][\x1a\x80-\xbf][\x1a?]|[\xf0-\xf4][\x1a?][\x1a\x80-\xbf][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a?][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a\x80-\xbf][\x1a?]|\x1a)",
      0);
  return regex_sub(lossy, in, [](std::string_view) { return std::string("\xef\xbf\xbd"); });
}

// ---- fixers on text ------------------------------------------------------------------------------

bool is_c1(char32_t c) { return c >= 0x80 && c <= 0x9F; }

std::u32string fix_c1_controls(std::u32string_view text) {
  std::u32string out(text);
  for (char32_t& c : out)
    if (is_c1(c)) c = tt::kCharmaps[kSloppy1252][c];
  return out;
}

std::u32string translate(std::u32string_view text, const tt::CharMapping* table, size_t n) {
  std::u32string out;
  out.reserve(text.size());
  const tt::CharMapping* end = table + n;
  for (char32_t c : text) {
    const tt::CharMapping* it =
        std::lower_bound(table, end, c, [](const tt::CharMapping& m, char32_t v) { return m.from < v; });
    if (it != end && it->from == c)
      out += utf8_to_u32(it->to);
    else
      out.push_back(c);
  }
  return out;
}

std::u32string uncurl_quotes(std::u32string_view text) {
  std::u32string out(text);
  for (char32_t& c : out) {
    if (c >= 0x201C && c <= 0x201F) c = U'"';
    else if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
  }
  return out;
}

std::u32string fix_line_breaks(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c == U'\r') {
      out.push_back(U'\n');
      if (i + 1 < text.size() && text[i + 1] == U'\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back(U'\n');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string remove_terminal_escapes(std::u32string_view text) {
  if (text.find(U'\x1b') == std::u32string_view::npos) return std::u32string(text);
  static const Regex ansi(R"(\x1b\[((?:\d|;)*)([a-zA-Z]))", Regex::kUtf);
  return utf8_to_u32(regex_sub(ansi, u32_to_utf8(text), [](std::string_view) { return std::string(); }));
}

std::u32string remove_control_chars(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    const bool drop = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                      (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
    if (!drop) out.push_back(c);
  }
  return out;
}

// ---- fix_encoding -------------------------------------------------------------------------------

std::u32string decode_inconsistent_utf8(std::u32string_view text) {
  static const Regex detector(tt::kUtf8DetectorPattern, Regex::kUtf | Regex::kExtended);
  const size_t len = text.size();
  return utf8_to_u32(regex_sub(detector, u32_to_utf8(text), [len](std::string_view m) {
    const std::u32string sub = utf8_to_u32(m);
    if (sub.size() < len && ftfy_is_bad(sub)) return u32_to_utf8(ftfy_fix_encoding(sub));
    return std::string(m);
  }));
}

// _fix_encoding_one_step_and_explain
std::u32string fix_encoding_one_step(const std::u32string& text) {
  if (text.empty()) return text;
  if (is_ascii(text) || !ftfy_is_bad(text)) return text;

  std::vector<size_t> possible_1byte;
  for (size_t k = 0; k < tt::kCharmapCount; ++k) {
    if (!possible_encoding(text, k)) continue;
    possible_1byte.push_back(k);
    Bytes encoded = encode_charmap(text, k);
    if (k != kMacRoman && regex_found(altered_utf8_re(), encoded)) encoded = restore_byte_a0(encoded);
    if (std::string_view(tt::kCharmapNames[k]).starts_with("sloppy")) encoded = replace_lossy_sequences(encoded);
    if (encoded.find('\xed') != Bytes::npos || encoded.find('\xc0') != Bytes::npos) {
      if (auto fixed = decode_utf8_variants(encoded)) return *fixed;
    } else {
      std::u32string fixed;
      if (decode_utf8_strict(encoded, fixed)) return fixed;
    }
  }

  static const Regex detector(tt::kUtf8DetectorPattern, Regex::kUtf | Regex::kExtended);
  if (regex_found(detector, u32_to_utf8(text))) {
    std::u32string fixed = decode_inconsistent_utf8(text);
    if (fixed != text) return fixed;
  }

  if (std::find(possible_1byte.begin(), possible_1byte.end(), kLatin1) != possible_1byte.end()) {
    // 'windows-1252' is never in the list (only its sloppy variant is), as in ftfy.
    std::u32string fixed;
    fixed.reserve(text.size());
    bool ok = true;
    for (char32_t c : text) {
      const char32_t d = tt::kWindows1252Strict[c & 0xFF];
      if (d == 0xFFFFFFFF) {
        ok = false;
        break;
      }
      fixed.push_back(d);
    }
    if (ok && fixed != text) return fixed;
  }

  if (std::any_of(text.begin(), text.end(), is_c1)) return fix_c1_controls(text);
  return text;
}

// fix_and_explain for one segment.
std::u32string fix_segment(std::u32string text, bool unescape_html) {
  while (true) {
    const std::u32string orig = text;
    if (unescape_html) text = ftfy_unescape_html(text);
    text = ftfy_fix_encoding(text);
    text = fix_c1_controls(text);
    text = translate(text, tt::kLigatures, tt::kLigatures_size);
    text = translate(text, tt::kWidthMap, tt::kWidthMap_size);
    text = uncurl_quotes(text);
    text = fix_line_breaks(text);
    // fix_surrogates: a UTF-32 string decoded from UTF-8 holds no surrogates.
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    text = nfc(text);
    if (text == orig) return text;
  }
}

}  // namespace

bool ftfy_is_bad(std::u32string_view text) {
  static const Regex badness(tt::kBadnessPattern, Regex::kUtf | Regex::kExtended);
  return regex_found(badness, u32_to_utf8(text));
}

std::u32string ftfy_fix_encoding(std::u32string_view input) {
  std::u32string text(input);
  while (true) {
    std::u32string fixed = fix_encoding_one_step(text);
    if (fixed == text) return text;
    text = std::move(fixed);
  }
}

std::u32string ftfy_fix_text(std::u32string_view text) {
  std::u32string out;
  bool unescape_html = true;  // "auto": off from the first segment that holds a '<'
  constexpr size_t kMaxDecodeLength = 1000000;  // TextFixerConfig.max_decode_length
  size_t pos = 0;
  while (pos < text.size()) {
    size_t brk = text.find(U'\n', pos);
    brk = brk == std::u32string_view::npos ? text.size() : brk + 1;
    brk = std::min(brk, pos + kMaxDecodeLength);
    const std::u32string_view segment = text.substr(pos, brk - pos);
    if (segment.find(U'<') != std::u32string_view::npos) unescape_html = false;
    out += fix_segment(std::u32string(segment), unescape_html);
    pos = brk;
  }
  return out;
}

}  // namespace easel::text
