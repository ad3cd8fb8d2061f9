// Prompt emphasis parser. Mirrors parse_prompt_attention of AUTOMATIC1111 and SD.Next step by step:
// a tokeniser that matches what their `re_attention` regex matches, the same bracket stacks, the
// same in-place multiplications (so the doubles come out bit-identical), then the merge of equal
// neighbours. The originals work on Python strings, so character classes (\s, \w, \d, isalnum)
// and reported positions are Python's, on code points.
#include "text/prompt_weights.h"

#include <utf8proc.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <system_error>

#include "text/unicode.h"

namespace easel {
namespace {

// ---------------------------------------------------------------------------------------------
// Python's character classes
// ---------------------------------------------------------------------------------------------

struct CodePoint {
  char32_t value;
  size_t size;  // bytes
};

// Malformed UTF-8 decodes one byte at a time as U+FFFD, which is in none of the classes below.
CodePoint decode_at(std::string_view s, size_t i) {
  utf8proc_int32_t cp = 0;
  const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                  utf8proc_ssize_t(s.size() - i), &cp);
  if (n <= 0) return {0xFFFD, 1};
  return {char32_t(cp), size_t(n)};
}

// The code point that ends at byte i (i > 0).
CodePoint decode_before(std::string_view s, size_t i) {
  size_t start = i - 1;
  while (start > 0 && i - start < 4 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
  const CodePoint cp = decode_at(s, start);
  return start + cp.size == i ? cp : CodePoint{0xFFFD, 1};
}

// `\s` and str.strip() use str.isspace().
bool is_space(char32_t c) { return text::py_isspace(c); }

// str.isalnum(): letters (L*) and numbers (N*), from utf8proc's tables (Unicode 15; CPython 3.11
// has 14, so only characters new in 15 can differ).
bool is_alnum(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// `\w`
bool is_word(char32_t c) { return c == '_' || is_alnum(c); }

bool is_decimal(char32_t c) {
  return c < 0x80 ? (c >= '0' && c <= '9') : utf8proc_category(utf8proc_int32_t(c)) == UTF8PROC_CATEGORY_ND;
}

// The value of a decimal digit (`\d`, which float() also accepts, e.g. '١'). Unicode assigns them
// only in contiguous runs of ten, 0 to 9, so the value is the distance from the run's start mod 10.
int decimal_value(char32_t c) {
  char32_t first = c;
  while (first > 0 && is_decimal(first - 1)) --first;
  return int((c - first) % 10);
}

bool word_before(std::string_view s, size_t i) { return i > 0 && is_word(decode_before(s, i).value); }
bool word_at(std::string_view s, size_t i) { return i < s.size() && is_word(decode_at(s, i).value); }
// `\b`; the ends of `s` count as non-word, as they do for the string a regex is run on.
bool at_word_boundary(std::string_view s, size_t i) { return word_before(s, i) != word_at(s, i); }

size_t skip_spaces(std::string_view s, size_t i) {
  while (i < s.size()) {
    const CodePoint cp = decode_at(s, i);
    if (!is_space(cp.value)) break;
    i += cp.size;
  }
  return i;
}

bool ends_alnum(std::string_view s) { return !s.empty() && is_alnum(decode_before(s, s.size()).value); }

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += decode_at(s, i).size) ++n;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Python numbers
// ---------------------------------------------------------------------------------------------

// float() of a string matching `[+-]?[.\d]+`: a number when it has a digit and at most one '.'.
std::optional<double> python_float(std::string_view number) {
  bool negative = false;
  size_t i = 0;
  if (number[0] == '+' || number[0] == '-') negative = number[i++] == '-';
  std::string ascii;  // float() reads Unicode digits by their value
  int digits = 0, dots = 0;
  while (i < number.size()) {
    const CodePoint cp = decode_at(number, i);
    i += cp.size;
    if (cp.value == '.') {
      ++dots;
      ascii += '.';
    } else {
      ++digits;
      ascii += char('0' + decimal_value(cp.value));
    }
  }
  if (digits == 0 || dots > 1) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(ascii.data(), ascii.data() + ascii.size(), value, std::chars_format::fixed);
  if (ec == std::errc::result_out_of_range) {
    // Python saturates instead of failing: too many integer digits is inf, too many zeros is 0.
    const bool has_integer_part = ascii.find_first_not_of('0') < ascii.find('.');
    value = has_integer_part ? HUGE_VAL : 0.0;
  }
  return negative ? -value : value;
}

// Python's round(x, 3): the 3-decimal number nearest to x's exact binary value (ties to even),
// read back as a double. to_chars' fixed precision rounds the same way.
double round3(double x) {
  if (!std::isfinite(x)) return x;
  char buf[400];  // the longest double printed with 3 decimals is ~315 characters
  const auto printed = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::fixed, 3);
  double y = x;
  std::from_chars(buf, printed.ptr, y);
  return y;
}

// ---------------------------------------------------------------------------------------------
// The dialects
// ---------------------------------------------------------------------------------------------

// What sets the three parsers apart; the defaults are A1111's.
struct Dialect {
  bool escaped_colon = false;            // `\:` is an escape (SD.Next native's re_attention_v2)
  bool drop_stray_colons = false;        // v2 ends in an empty alternative: a ':' starting no weight matches nothing
  bool newline_is_break = false;         // '\n' becomes ' BREAK ' first (opts.sd_textencder_linebreak)
  bool hash_break = false;               // re_break `\s*\bBREAK\b|##\s*` (A1111: `\s*\bBREAK\b\s*`)
  bool clean_text = false;               // drop leading non-word characters, collapse whitespace, drop empty parts
  bool round_products = false;           // round(w * m, 3)
  bool escape_extends_previous = false;  // an escaped character joins the previous chunk unless a space precedes it
  bool recover_bad_weights = false;      // a number float() rejects is logged and skipped (caught per section)
  bool empty_merge_fails = false;        // merging reads text[-1] of the left chunk: IndexError when it is empty
  std::string_view merge_separator;      // put between merged texts when the left one ends alphanumerically
};

constexpr Dialect kA1111{};
// SD.Next's "a1111" mode keeps A1111's regex but not its arithmetic, BREAK, escapes or merging.
constexpr Dialect kSdNextA1111{.hash_break = true,
                               .round_products = true,
                               .escape_extends_previous = true,
                               .recover_bad_weights = true,
                               .empty_merge_fails = true};
constexpr Dialect kSdNextNative{.escaped_colon = true,
                                .drop_stray_colons = true,
                                .newline_is_break = true,
                                .hash_break = true,
                                .clean_text = true,
                                .round_products = true,
                                .escape_extends_previous = true,
                                .recover_bad_weights = true,
                                .empty_merge_fails = true,
                                .merge_separator = " "};

const Dialect& dialect_of(PromptAttention mode) {
  switch (mode) {
    case PromptAttention::SdNextNative: return kSdNextNative;
    case PromptAttention::SdNextA1111: return kSdNextA1111;
    case PromptAttention::A1111: break;
  }
  return kA1111;
}

// ---------------------------------------------------------------------------------------------
// Tokens: what one match of re_attention covers
// ---------------------------------------------------------------------------------------------

enum class TokenKind { Escape, OpenRound, OpenSquare, Weight, CloseRound, CloseSquare, Text, Skipped };

struct Token {
  TokenKind kind;
  size_t begin, end;        // bytes of the prompt
  std::string_view number;  // Weight: the text between ':' and ')'
};

bool is_special(char c) { return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':'; }

bool is_escapable(char c, const Dialect& d) {
  return c == '(' || c == ')' || c == '[' || c == ']' || c == '\\' || (c == ':' && d.escaped_colon);
}

// `:([+-]?[.\d]+)\)` at s[colon]: the end of the match and the number, or nothing.
std::optional<Token> match_weight(std::string_view s, size_t colon) {
  size_t i = colon + 1;
  const size_t number_begin = i;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t digits_begin = i;
  while (i < s.size()) {
    const CodePoint cp = decode_at(s, i);
    if (cp.value != '.' && !is_decimal(cp.value)) break;
    i += cp.size;
  }
  // No backtracking can help: a shorter run would be followed by '.' or a digit, not ')'.
  if (i == digits_begin || i >= s.size() || s[i] != ')') return std::nullopt;
  return Token{TokenKind::Weight, colon, i + 1, s.substr(number_begin, i - number_begin)};
}

// The alternatives of re_attention in its order; a ':' starting no weight is text of its own in
// A1111's regex, and matched by nothing (skipped) in SD.Next's native one.
Token next_token(std::string_view s, size_t i, const Dialect& d) {
  switch (s[i]) {
    case '\\': {
      const bool escape = i + 1 < s.size() && is_escapable(s[i + 1], d);
      return {TokenKind::Escape, i, i + (escape ? 2 : 1), {}};  // a lone '\' escapes nothing
    }
    case '(': return {TokenKind::OpenRound, i, i + 1, {}};
    case '[': return {TokenKind::OpenSquare, i, i + 1, {}};
    case ')': return {TokenKind::CloseRound, i, i + 1, {}};
    case ']': return {TokenKind::CloseSquare, i, i + 1, {}};
    case ':': {
      if (auto weight = match_weight(s, i)) return *weight;
      return {d.drop_stray_colons ? TokenKind::Skipped : TokenKind::Text, i, i + 1, {}};
    }
    default: {
      size_t end = i + 1;
      while (end < s.size() && !is_special(s[end])) ++end;
      return {TokenKind::Text, i, end, {}};
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Plain text: BREAK and SD.Next native's clean-up
// ---------------------------------------------------------------------------------------------

struct Span {
  size_t begin, end;
};

// The leftmost match of re_break in s at or after `from`.
std::optional<Span> find_break(std::string_view s, size_t from, const Dialect& d) {
  constexpr std::string_view kBreak = "BREAK";
  size_t p = from;
  while (p < s.size()) {
    // `\s*` is greedy and cannot usefully give back: it either reaches "BREAK" or fails.
    const size_t q = skip_spaces(s, p);
    if (s.substr(q).starts_with(kBreak) && at_word_boundary(s, q) && at_word_boundary(s, q + kBreak.size())) {
      const size_t end = q + kBreak.size();
      return Span{p, d.hash_break ? end : skip_spaces(s, end)};
    }
    if (d.hash_break && s.substr(p).starts_with("##")) return Span{p, skip_spaces(s, p + 2)};
    // Starting anywhere inside the same run of spaces fails the same way (and is no '#').
    p = q > p ? q : p + decode_at(s, p).size;
  }
  return std::nullopt;
}

// re.split(re_break, s)
std::vector<std::string_view> split_on_break(std::string_view s, const Dialect& d) {
  std::vector<std::string_view> parts;
  size_t from = 0;
  while (auto brk = find_break(s, from, d)) {
    parts.push_back(s.substr(from, brk->begin - from));
    from = brk->end;
  }
  parts.push_back(s.substr(from));
  return parts;
}

// SD.Next native: re_clean (`^\W+`) removed, whitespace runs made one space, then strip().
std::string clean_text(std::string_view part) {
  size_t i = 0;
  while (i < part.size() && !is_word(decode_at(part, i).value)) i += decode_at(part, i).size;
  std::string out;
  bool pending_space = false;  // a space is written only when more text follows: that is the strip()
  while (i < part.size()) {
    const CodePoint cp = decode_at(part, i);
    if (is_space(cp.value)) {
      pending_space = true;
    } else {
      if (pending_space) out += ' ';
      pending_space = false;
      out.append(part.substr(i, cp.size));
    }
    i += cp.size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------

constexpr double kRoundMultiplier = 1.1;
constexpr double kSquareMultiplier = 1 / 1.1;

class AttentionParser {
 public:
  AttentionParser(std::string_view text, const Dialect& d, std::vector<std::string>* warnings)
      : text_(text), d_(d), warnings_(warnings) {}

  Result<std::vector<PromptChunk>> run() {
    for (size_t i = 0; i < text_.size();) {
      const Token t = next_token(text_, i, d_);
      if (auto status = apply(t); !status) return status.error();
      i = t.end;
    }
    // Brackets never closed weigh until the end: round ones outermost first, then square ones.
    for (size_t start : round_) multiply_range(start, kRoundMultiplier);
    for (size_t start : square_) multiply_range(start, kSquareMultiplier);
    if (chunks_.empty()) chunks_.push_back({"", 1.0});
    return merge_equal_neighbours();
  }

 private:
  std::string_view token_text(const Token& t) const { return text_.substr(t.begin, t.end - t.begin); }

  // The branches of the original loop, in its order: a token that closes nothing is text.
  Status apply(const Token& t) {
    switch (t.kind) {
      case TokenKind::Escape: add_escaped(token_text(t).substr(1), t.begin); return {};
      case TokenKind::OpenRound: round_.push_back(chunks_.size()); return {};
      case TokenKind::OpenSquare: square_.push_back(chunks_.size()); return {};
      case TokenKind::Skipped: return {};
      case TokenKind::Weight:
        if (!round_.empty()) return close_weighted(t);
        break;
      case TokenKind::CloseRound:
        if (round_.empty()) break;
        close(round_, kRoundMultiplier);
        return {};
      case TokenKind::CloseSquare:
        if (square_.empty()) break;
        close(square_, kSquareMultiplier);
        return {};
      case TokenKind::Text: break;
    }
    add_text(token_text(t));
    return {};
  }

  void close(std::vector<size_t>& stack, double multiplier) {
    const size_t start = stack.back();
    stack.pop_back();
    multiply_range(start, multiplier);
  }

  // `(text:number)`. The bracket is popped before float() runs, so in SD.Next a bad number leaves
  // the bracket closed without any effect (`(cat:1.2.3)` is cat at 1.0).
  Status close_weighted(const Token& t) {
    const size_t start = round_.back();
    round_.pop_back();
    if (auto weight = python_float(t.number)) {
      multiply_range(start, *weight);
      return {};
    }
    if (!d_.recover_bad_weights) {
      return Error(cat("prompt weight '", t.number, "' is not a number (\"", token_text(t), "\" at character ",
                       count_code_points(text_.substr(0, t.begin)), ")"));
    }
    if (warnings_) {
      warnings_->push_back(cat("Prompt parser: section=\"", token_text(t), "\" position=",
                               count_code_points(text_.substr(0, t.begin)), ":",
                               count_code_points(text_.substr(0, t.end)), " text=\"", text_,
                               "\" error=could not convert string to float: '", t.number, "'"));
    }
    return {};
  }

  void multiply_range(size_t start, double multiplier) {
    for (size_t p = start; p < chunks_.size(); ++p) {
      const double w = chunks_[p].weight * multiplier;
      chunks_[p].weight = d_.round_products ? round3(w) : w;
    }
  }

  void add_escaped(std::string_view literal, size_t at) {
    // SD.Next glues the character onto the previous chunk whatever its weight, unless a space
    // precedes the backslash.
    if (d_.escape_extends_previous && !chunks_.empty() && at > 0 && text_[at - 1] != ' ') {
      chunks_.back().text += literal;
    } else {
      chunks_.push_back({std::string(literal), 1.0});
    }
  }

  void add_text(std::string_view section) {
    const auto parts = split_on_break(section, d_);
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) chunks_.push_back({"BREAK", -1.0});
      if (!d_.clean_text) {
        chunks_.push_back({std::string(parts[i]), 1.0});
      } else if (std::string part = clean_text(parts[i]); !part.empty()) {
        chunks_.push_back({std::move(part), 1.0});
      }
    }
  }

  Result<std::vector<PromptChunk>> merge_equal_neighbours() {
    std::vector<PromptChunk> merged;
    for (PromptChunk& chunk : chunks_) {
      if (merged.empty() || merged.back().weight != chunk.weight) {
        merged.push_back(std::move(chunk));
        continue;
      }
      PromptChunk& left = merged.back();
      if (d_.empty_merge_fails && left.text.empty()) {
        return Error(cat("prompt chunk ", merged.size() - 1,
                         " is empty (a lone '\\' escape?): SD.Next fails to merge it (IndexError)"));
      }
      if (ends_alnum(left.text)) left.text += d_.merge_separator;
      left.text += chunk.text;
    }
    return merged;
  }

  std::string_view text_;
  const Dialect& d_;
  std::vector<std::string>* warnings_;
  std::vector<PromptChunk> chunks_;
  std::vector<size_t> round_, square_;  // chunk index where each open bracket starts
};

std::string newlines_to_breaks(std::string_view prompt) {
  std::string out;
  for (char c : prompt) {
    if (c == '\n') {
      out += " BREAK ";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Result<std::vector<PromptChunk>> parse_prompt_attention(std::string_view prompt, PromptAttention mode,
                                                        std::vector<std::string>* warnings) {
  const Dialect& d = dialect_of(mode);
  const std::string text = d.newline_is_break ? newlines_to_breaks(prompt) : std::string(prompt);
  return AttentionParser(text, d, warnings).run();
}

}  // namespace easel
