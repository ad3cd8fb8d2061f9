// Prompt -> text conditioning as AUTOMATIC1111 makes it (modules/sd_hijack_clip.py,
// FrozenCLIPEmbedderWithCustomWordsBase; modules/sd_emphasis.py), for the CLIP text encoders:
//
//   prompt -> emphasis parser ([text, weight] runs, `BREAK`) -> CLIP tokens of each run
//          -> 77-token chunks: BOS + 75 tokens + EOS, padded with EOS; a chunk that fills up is cut
//             after its last comma when that comma is at most `comma_padding_backtrack` (20) tokens
//             back, the words after it moving to the next chunk; `BREAK` starts a new chunk
//          -> each chunk through the encoder (open_clip: ids after the first EOS set to pad 0)
//          -> z *= per-token weights; z *= mean(z before) / mean(z after)   ("Original" emphasis)
//          -> chunks concatenated along tokens: [B, 77 * chunks, W]
// Prompts of one batch are padded to the same number of chunks with empty chunks (BOS + EOS...),
// and a negative prompt is padded to its prompt's length with the empty prompt's encoding
// (A1111's pad_cond_uncond; `pad_to_same_length`).
// Textual-inversion embeddings are not supported yet.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "core/tensor.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_weights.h"

namespace easel {

// A1111's "emphasis" option.
enum class Emphasis {
  None,      // no parsing: brackets and weights are literal text
  Ignore,    // parsed (and BREAK honoured), weights not applied
  Original,  // weights applied, the chunk's mean restored (A1111's default)
  NoNorm,    // weights applied, no mean restore
};

struct PromptChunkingOptions {
  Emphasis emphasis = Emphasis::Original;
  PromptAttention parser = PromptAttention::A1111;
  int comma_padding_backtrack = 20;  // A1111 default; 0 disables the comma rule
};

// One encoder input: kContext (77) ids and their weights.
struct TokenChunk {
  std::vector<int> tokens;          // BOS, 75 tokens (EOS-padded), EOS
  std::vector<float> multipliers;   // 1 for BOS, EOS and padding
};

struct TokenizedPrompt {
  std::vector<TokenChunk> chunks;  // at least one
  int token_count = 0;             // A1111's count (the "12/75" in its UI)
};

// A1111 tokenize_line: fails only where the emphasis parser fails (a malformed weight).
Result<TokenizedPrompt> tokenize_prompt(const ClipTokenizer& tokenizer, std::string_view prompt,
                                        const PromptChunkingOptions& options = {});
// BOS followed by 76 EOS, weights 1 (the encoding of "").
TokenChunk empty_chunk();

// One batch of chunks through a text encoder: ids [B, 77] i32 -> hidden [B, 77, W] f32, and,
// when the encoder computes them, pooled [B, W] / projected [B, P] (SDXL's pooled embedding).
struct ChunkEncoding {
  Tensor hidden;
  Tensor pooled;
  Tensor projected;
};
using ChunkEncoder = std::function<ChunkEncoding(Context& ctx, const Tensor& ids)>;

struct PromptEncodeOptions {
  PromptChunkingOptions chunking;
  // Id written after the first EOS of every chunk: EOS (49407) for openai CLIP (SD 1.x, SDXL's
  // first encoder), 0 for open_clip (SD 2.x, SDXL's second encoder).
  int pad_id = ClipTokenizer::kEos;
};

struct PromptConditioning {
  Tensor hidden;     // f32 [B, 77 * chunks, W], weighted
  Tensor pooled;     // from the first chunk (A1111: zs[0].pooled), undefined unless the encoder gives it
  Tensor projected;  // likewise
  int token_count = 0;  // the largest over the batch
  int chunks = 0;
};

// A1111 FrozenCLIPEmbedderWithCustomWordsBase.forward for a batch of prompts (usually one).
Result<PromptConditioning> encode_prompts(Context& ctx, const ClipTokenizer& tokenizer,
                                          std::span<const std::string> prompts, const ChunkEncoder& encoder,
                                          const PromptEncodeOptions& options = {});

// sd_emphasis after_transformers: z [B, T, W] with multipliers [B][T] -> the weighted z (a new tensor).
Tensor apply_emphasis(Context& ctx, const Tensor& z, const std::vector<std::vector<float>>& multipliers,
                      Emphasis emphasis);

// A1111 pad_cond_uncond: appends copies of `empty` ([B or 1, 77, W], the encoding of "") to the
// shorter of cond / uncond ([B, 77·n, W]) until both have the same number of tokens.
void pad_to_same_length(Context& ctx, Tensor& cond, Tensor& uncond, const Tensor& empty);

}  // namespace easel
