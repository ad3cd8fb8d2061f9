// Prompt emphasis ("attention") syntax: `(word)`, `[word]`, `(word:1.3)`, escapes and `BREAK`.
// Turns a prompt into [text, weight] chunks before tokenisation, exactly as the parsers we stay
// compatible with do (golden set `prompt_weights`):
//   A1111        AUTOMATIC1111 modules/prompt_parser.py parse_prompt_attention (the A1111 API's meaning)
//   SdNextNative SD.Next's default ("native") mode of its parse_prompt_attention
//   SdNextA1111  SD.Next's "a1111" mode, which rounds every product to 3 decimals
// Weights are reproduced bit for bit: products are formed in the same order as the originals.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel {

enum class PromptAttention { A1111, SdNextNative, SdNextA1111 };

// One run of text with its weight. A `BREAK` is the chunk {"BREAK", -1}, as in A1111; the -1 is
// multiplied like any weight when the BREAK sits inside brackets (`(a BREAK b:1.2)` gives -1.2).
struct PromptChunk {
  std::string text;
  double weight;
  bool operator==(const PromptChunk&) const = default;
};

// Parses `prompt` (UTF-8). Fails where the reference raises: A1111 on a weight that is not a
// number (`(cat:1.2.3)`), SD.Next when it merges an empty chunk (`\:` in its a1111 mode).
// SD.Next recovers from a bad weight by logging and going on; those messages, worded as SD.Next
// logs them, are appended to `warnings` when it is given.
Result<std::vector<PromptChunk>> parse_prompt_attention(std::string_view prompt, PromptAttention mode,
                                                        std::vector<std::string>* warnings = nullptr);

}  // namespace easel
