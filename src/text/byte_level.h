// GPT-2's byte-level alphabet (bytes_to_unicode): every byte has a printable character, so BPE
// vocabularies of byte sequences are written as text. Printable Latin-1 bytes stand for themselves,
// the other 68 for U+0100 and up, in byte order. CLIP, Qwen and most GPT-style tokenizers use it.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace easel::text {

struct ByteLevelAlphabet {
  std::array<char32_t, 256> char_of{};  // byte -> its character
  std::array<int, 256> order{};         // the bytes in bytes_to_unicode() order (printable first)
  std::array<int16_t, 256 + 68> byte_of_char{};  // character -> its byte (-1: no byte)

  static const ByteLevelAlphabet& get();
  // The byte a character stands for, or -1 for a character outside the alphabet.
  int byte_of(char32_t c) const { return c < byte_of_char.size() ? byte_of_char[c] : -1; }
};

}  // namespace easel::text
