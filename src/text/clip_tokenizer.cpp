#include "text/clip_tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <span>

#include "text/byte_level.h"
#include "text/ftfy.h"
#include "text/html_entities.h"
#include "text/regex.h"
#include "text/text_tables.h"
#include "text/unicode.h"
#include "assets/assets.h"

namespace easel {

namespace {

// ---- the merges file ----------------------------------------------------------------------------

Result<std::string> read_gzip(const std::filesystem::path& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return Error(cat(path.string(), ": cannot open"));
  std::unique_ptr<gzFile_s, decltype(&gzclose)> hold(f, &gzclose);
  std::string data;
  char buf[1 << 16];
  while (true) {
    const int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      return Error(cat(path.string(), ": not a readable gzip file (", msg ? msg : "?", ")"));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

Result<std::string> gunzip(std::span<const uint8_t> gz, std::string_view source) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return Error(cat(source, ": zlib init failed"));
  std::string data;
  z.next_in = const_cast<Bytef*>(gz.data());
  z.avail_in = static_cast<uInt>(gz.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    data.append(buf, sizeof(buf) - z.avail_out);
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return Error(cat(source, ": not a complete gzip stream"));
  return data;
}

std::vector<std::string> split_ws(std::string_view line) {  // str.split() on an ASCII line
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || (line[i] >= '\t' && line[i] <= '\r'))) ++i;
    size_t j = i;
    while (j < line.size() && !(line[j] == ' ' || (line[j] >= '\t' && line[j] <= '\r'))) ++j;
    if (j > i) out.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// ---- whitespace ---------------------------------------------------------------------------------

// The `regex` module's \s on str (the Unicode White_Space property).
bool regex_space(char32_t c) {
  namespace tt = text_tables;
  const tt::CodeRange* end = tt::kRegexSpace + tt::kRegexSpace_size;
  const tt::CodeRange* it = std::upper_bound(tt::kRegexSpace, end, c,
                                             [](char32_t v, const tt::CodeRange& r) { return v < r.first; });
  return it != tt::kRegexSpace && c <= (it - 1)->last;
}

// whitespace_clean: openai re.sub(r'\s+', ' ', text).strip(); open_clip " ".join(text.split()).
std::u32string whitespace_clean(std::u32string_view text, ClipFlavor flavor) {
  const auto space = [flavor](char32_t c) {
    return flavor == ClipFlavor::kOpenAI ? regex_space(c) : text::py_isspace(c);
  };
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (space(text[i])) {
      while (i < text.size() && space(text[i])) ++i;
      out.push_back(U' ');
    } else {
      out.push_back(text[i++]);
    }
  }
  return text::py_strip(out);  // only ' ' can be at the ends now; both strips agree on it
}

// CLIP's pattern, compiled with IGNORECASE in the reference. The literal alternatives stay
// caseless here; the character classes are spelled out as the `regex` module matches them under
// IGNORECASE (text_tables), so they are matched as they are.
const text::Regex& pattern(ClipFlavor flavor) {
  namespace tt = text_tables;
  const auto make = [](const char* specials) {
    return cat("(?i:", specials, R"(|'s|'t|'re|'ve|'m|'ll|'d)|)", tt::kClipLetterClass, "+|", tt::kClipNumberClass,
               "|", tt::kClipOtherClass, "+");
  };
  static const text::Regex openai(make(R"(<\|startoftext\|>|<\|endoftext\|>)"), text::Regex::kUtf);
  static const text::Regex open_clip(make(R"(<start_of_text>|<end_of_text>)"), text::Regex::kUtf);
  return flavor == ClipFlavor::kOpenAI ? openai : open_clip;
}

// Python's bytes.decode('utf-8', errors='replace'): one U+FFFD per maximal invalid subpart.
std::string decode_utf8_replace(std::string_view s) {
  std::string out;
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  size_t i = 0;
  while (i < s.size()) {
    const unsigned c = byte(i);
    int n = -1;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) n = 0;
    else if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (n < 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    int k = 1;
    for (; k <= n; ++k) {
      if (i + k >= s.size()) break;
      const unsigned t = byte(i + k);
      if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF)) break;
    }
    if (k <= n) {
      out += "\xEF\xBF\xBD";
      i += k;
    } else {
      out.append(s.substr(i, n + 1));
      i += n + 1;
    }
  }
  return out;
}

}  // namespace

Result<ClipTokenizer> ClipTokenizer::load(const std::filesystem::path& merges_gz, ClipFlavor flavor) {
  EASEL_TRY(const std::string data, read_gzip(merges_gz));
  return from_merges(data, merges_gz.string(), flavor);
}

Result<ClipTokenizer> ClipTokenizer::builtin(ClipFlavor flavor) {
  EASEL_TRY(const std::string data, gunzip(assets::clip_merges_gz(), "built-in CLIP merges"));
  return from_merges(data, "built-in CLIP merges", flavor);
}

Result<ClipTokenizer> ClipTokenizer::from_merges(std::string_view data, std::string_view source, ClipFlavor flavor) {
  std::vector<std::string_view> lines;
  for (size_t pos = 0;;) {
    const size_t nl = data.find('\n', pos);
    lines.push_back(data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  constexpr size_t kMerges = 49152 - 256 - 2;  // merges[1 : 49152-256-2+1]
  if (lines.size() < kMerges + 1)
    return Error(cat(source, ": has ", lines.size(), " lines, a CLIP merges file has at least ",
                     kMerges + 1));

  ClipTokenizer t;
  t.flavor_ = flavor;
  std::vector<std::string> vocab;
  const text::ByteLevelAlphabet& alphabet = text::ByteLevelAlphabet::get();
  for (int b : alphabet.order) {
    std::string s;
    text::append_utf8(s, alphabet.char_of[size_t(b)]);
    t.byte_encoder_[b] = s;
    t.byte_decoder_[s] = static_cast<unsigned char>(b);
    vocab.push_back(s);
  }
  for (size_t i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");
  for (size_t i = 0; i < kMerges; ++i) {
    const std::vector<std::string> parts = split_ws(lines[i + 1]);
    if (parts.size() != 2)
      return Error(cat(source, ": line ", i + 2, " is not a merge of two symbols"));
    t.bpe_ranks_.emplace(parts[0] + " " + parts[1], static_cast<int>(i));
    vocab.push_back(parts[0] + parts[1]);
  }
  if (flavor == ClipFlavor::kOpenAI) {
    vocab.push_back("<|startoftext|>");
    vocab.push_back("<|endoftext|>");
  } else {
    vocab.push_back("<start_of_text>");
    vocab.push_back("<end_of_text>");
  }
  for (size_t i = 0; i < vocab.size(); ++i) t.encoder_.insert_or_assign(vocab[i], static_cast<int>(i));
  t.decoder_ = std::move(vocab);
  return t;
}

std::string ClipTokenizer::fix_text(std::string_view text) {
  return text::u32_to_utf8(text::ftfy_fix_text(text::utf8_to_u32(text)));
}

std::string ClipTokenizer::basic_clean(std::string_view text) {
  const std::u32string fixed = text::ftfy_fix_text(text::utf8_to_u32(text));
  return text::u32_to_utf8(text::py_strip(text::html_unescape(text::html_unescape(fixed))));
}

std::string ClipTokenizer::clean(std::string_view text) const {
  const std::u32string fixed = text::ftfy_fix_text(text::utf8_to_u32(text));
  const std::u32string basic = text::py_strip(text::html_unescape(text::html_unescape(fixed)));
  return text::u32_to_utf8(text::py_lower(whitespace_clean(basic, flavor_)));
}

std::vector<std::string> ClipTokenizer::pre_tokenize(std::string_view input) const {
  // The matcher takes valid UTF-8 only: invalid bytes become U+FFFD first (clean() output is valid).
  const std::string cleaned = text::u32_to_utf8(text::utf8_to_u32(input));
  std::vector<std::string> out;
  const text::Regex& re = pattern(flavor_);
  text::RegexMatch m;
  size_t pos = 0;
  while (pos < cleaned.size() && re.search(cleaned, pos, &m)) {
    out.push_back(cleaned.substr(m.begin, m.end - m.begin));
    pos = m.end;  // every alternative consumes at least one character
  }
  return out;
}

std::string ClipTokenizer::bpe(std::string_view piece) const {
  // The special tokens are cached as themselves in the reference.
  if (flavor_ == ClipFlavor::kOpenAI ? (piece == "<|startoftext|>" || piece == "<|endoftext|>")
                                     : (piece == "<start_of_text>" || piece == "<end_of_text>"))
    return std::string(piece);
  // Symbols: one byte-character each (1 or 2 UTF-8 bytes), the last one with "</w>".
  std::vector<std::string> word;
  for (size_t i = 0; i < piece.size();) {
    const size_t n = (static_cast<unsigned char>(piece[i]) & 0xE0) == 0xC0 ? 2 : 1;
    word.emplace_back(piece.substr(i, n));
    i += n;
  }
  if (word.empty()) return "";
  word.back() += "</w>";
  if (word.size() == 1) return word[0];

  while (word.size() > 1) {
    int best = INT_MAX;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = bpe_ranks_.find(word[i] + " " + word[i + 1]);
      if (it != bpe_ranks_.end() && it->second < best) best = it->second, best_i = i;
    }
    if (best == INT_MAX) break;
    const std::string first = word[best_i], second = word[best_i + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (word[i] == first && i + 1 < word.size() && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i]);
        i += 1;
      }
    }
    word = std::move(merged);
  }
  std::string out;
  for (size_t i = 0; i < word.size(); ++i) {
    if (i) out.push_back(' ');
    out += word[i];
  }
  return out;
}

std::vector<std::string> ClipTokenizer::bpe_tokens(std::string_view text) const {
  std::vector<std::string> out;
  for (const std::string& piece : pre_tokenize(clean(text))) {
    std::string encoded;
    for (unsigned char b : piece) encoded += byte_encoder_[b];
    const std::string symbols = bpe(encoded);
    size_t pos = 0;
    while (pos <= symbols.size()) {
      const size_t sp = symbols.find(' ', pos);
      out.push_back(symbols.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos));
      if (sp == std::string::npos) break;
      pos = sp + 1;
    }
  }
  return out;
}

std::vector<int> ClipTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  for (const std::string& sym : bpe_tokens(text)) {
    auto it = encoder_.find(sym);
    EASEL_CHECK(it != encoder_.end(), "clip tokenizer: BPE symbol '", sym, "' is not in the vocabulary");
    ids.push_back(it->second);
  }
  return ids;
}

std::vector<int> ClipTokenizer::tokenize77(std::string_view text, int pad_id) const {
  const std::vector<int> ids = encode(text);
  std::vector<int> out;
  out.reserve(kContext);
  out.push_back(kBos);
  out.insert(out.end(), ids.begin(), ids.begin() + std::min<size_t>(ids.size(), kContext - 2));
  out.push_back(kEos);
  out.resize(kContext, pad_id);
  return out;
}

std::string ClipTokenizer::decode(std::span<const int> ids) const {
  std::string chars;
  for (int id : ids) {
    EASEL_CHECK(id >= 0 && static_cast<size_t>(id) < decoder_.size(), "clip tokenizer: id ", id,
                " is outside the vocabulary of ", decoder_.size());
    chars += decoder_[id];
  }
  // Back to bytes (every character of a symbol is a byte character; "</w>" is four of them).
  std::string bytes;
  for (size_t i = 0; i < chars.size();) {
    const size_t n = (static_cast<unsigned char>(chars[i]) & 0xE0) == 0xC0 ? 2 : 1;
    auto it = byte_decoder_.find(chars.substr(i, n));
    EASEL_CHECK(it != byte_decoder_.end(), "clip tokenizer: decoder holds a non-byte character");
    bytes.push_back(static_cast<char>(it->second));
    i += n;
  }
  std::string text = decode_utf8_replace(bytes);
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, "</w>") == 0) {
      out.push_back(' ');
      i += 4;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

}  // namespace easel
