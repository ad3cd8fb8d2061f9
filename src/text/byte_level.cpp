#include "text/byte_level.h"

namespace easel::text {
namespace {

ByteLevelAlphabet make() {
  ByteLevelAlphabet a;
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  int k = 0, n = 0;
  for (int b = 0; b < 256; ++b)
    if (printable(b)) a.char_of[size_t(b)] = char32_t(b), a.order[size_t(k++)] = b;
  for (int b = 0; b < 256; ++b)
    if (!printable(b)) a.char_of[size_t(b)] = char32_t(256 + n++), a.order[size_t(k++)] = b;
  return a;
}

}  // namespace

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet alphabet = make();  // a constant table, built once
  return alphabet;
}

int ByteLevelAlphabet::byte_of(char32_t c) const {
  if (c < 256) {
    const int b = int(c);
    return char_of[size_t(b)] == c ? b : -1;
  }
  if (c < 256 + 68) {
    for (int b = 0; b < 256; ++b)
      if (char_of[size_t(b)] == c) return b;
  }
  return -1;
}

}  // namespace easel::text
