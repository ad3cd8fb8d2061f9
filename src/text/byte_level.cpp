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
  a.byte_of_char.fill(-1);
  for (int b = 0; b < 256; ++b) a.byte_of_char[a.char_of[size_t(b)]] = int16_t(b);
  return a;
}

}  // namespace

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet alphabet = make();  // a constant table, built once
  return alphabet;
}

}  // namespace easel::text
