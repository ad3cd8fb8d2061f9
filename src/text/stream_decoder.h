// Text of a token stream as it is generated, one token at a time, for streamed answers (SSE
// chunks, the terminal): a byte-level token may end inside a UTF-8 character (an emoji, CJK split
// over two tokens), so the bytes of an unfinished character are held back until the token that
// completes them arrives. What push() returns is always valid UTF-8; finish() flushes the rest
// (an incomplete tail becomes U+FFFD, as the reference's decode does).
#pragma once

#include <string>

#include "text/bpe_tokenizer.h"

namespace easel::text {

class StreamDecoder {
 public:
  explicit StreamDecoder(const BpeTokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(&tokenizer), skip_special_(skip_special) {}

  std::string push(int id);  // the text this token completes (possibly empty)
  std::string finish();      // what is still held back

 private:
  const BpeTokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;  // bytes of an unfinished UTF-8 character
};

}  // namespace easel::text
