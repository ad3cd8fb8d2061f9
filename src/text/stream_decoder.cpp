#include "text/stream_decoder.h"

#include "text/unicode.h"

namespace easel::text {
namespace {

// Length of the complete-UTF-8 prefix of s: an incomplete character at the end is left out
// (a byte sequence that can never become a character is complete: it decodes to U+FFFD now).
size_t complete_prefix(const std::string& s) {
  const size_t n = s.size();
  // A lead byte within the last 3 bytes whose character needs more bytes than follow it.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    // 2-, 3- and 4-byte lead bytes; anything else (ASCII, C0 / C1, F5..FF) stands alone.
    const size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

std::string valid_utf8(const std::string& bytes) { return u32_to_utf8(utf8_to_u32(bytes)); }

}  // namespace

std::string StreamDecoder::push(int id) {
  pending_ += tokenizer_->decode(std::span<const int>(&id, 1), skip_special_);
  const size_t ready = complete_prefix(pending_);
  std::string out = valid_utf8(pending_.substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = valid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace easel::text
