#include "pipelines/prompt_conditioning.h"

#include <map>

#include "ops/ops.h"

namespace easel {
namespace {

constexpr int kChunkLength = 75;  // tokens between BOS and EOS

// The id of "," (`,</w>`, 267 in CLIP's vocabulary), the comma rule's break point.
int comma_token(const ClipTokenizer& tokenizer) {
  const std::vector<int> ids = tokenizer.encode(",");
  return ids.size() == 1 ? ids[0] : -1;
}

// Mean of all elements, accumulated in double.
double mean(const Tensor& t) {
  double sum = 0;
  for (float v : t.to_vector<float>()) sum += v;
  return t.numel() ? sum / double(t.numel()) : 0.0;
}

}  // namespace

TokenChunk empty_chunk() {
  TokenChunk c;
  c.tokens.assign(kChunkLength + 2, ClipTokenizer::kEos);
  c.tokens[0] = ClipTokenizer::kBos;
  c.multipliers.assign(kChunkLength + 2, 1.0f);
  return c;
}

Result<TokenizedPrompt> tokenize_prompt(const ClipTokenizer& tokenizer, std::string_view prompt,
                                        const PromptChunkingOptions& options) {
  std::vector<PromptChunk> parsed;
  if (options.emphasis == Emphasis::None) {
    parsed.push_back({std::string(prompt), 1.0});
  } else {
    EASEL_TRY(parsed, parse_prompt_attention(prompt, options.parser));
  }
  const int comma = comma_token(tokenizer);

  TokenizedPrompt out;
  TokenChunk chunk;     // the tokens of the chunk being filled, without BOS / EOS
  int last_comma = -1;  // index in chunk.tokens of its last comma

  // Closes the chunk: pads it to 75 with EOS, wraps it in BOS ... EOS. A1111 counts a closed
  // chunk as 75 tokens, the last one as the tokens it holds.
  auto next_chunk = [&](bool is_last) {
    out.token_count += is_last ? int(chunk.tokens.size()) : kChunkLength;
    chunk.tokens.resize(kChunkLength, ClipTokenizer::kEos);
    chunk.multipliers.resize(kChunkLength, 1.0f);
    chunk.tokens.insert(chunk.tokens.begin(), ClipTokenizer::kBos);
    chunk.tokens.push_back(ClipTokenizer::kEos);
    chunk.multipliers.insert(chunk.multipliers.begin(), 1.0f);
    chunk.multipliers.push_back(1.0f);
    out.chunks.push_back(std::move(chunk));
    chunk = {};
    last_comma = -1;
  };

  for (const PromptChunk& run : parsed) {
    if (run.text == "BREAK" && run.weight == -1) {
      next_chunk(false);
      continue;
    }
    for (int token : tokenizer.encode(run.text)) {
      const int size = int(chunk.tokens.size());
      if (token == comma) {
        last_comma = size;
      } else if (options.comma_padding_backtrack != 0 && size == kChunkLength && last_comma != -1 &&
                 size - last_comma <= options.comma_padding_backtrack) {
        // The chunk is full and a comma is near its end: cut after the comma, the words after it
        // open the next chunk.
        const auto cut = size_t(last_comma + 1);
        std::vector<int> moved_tokens(chunk.tokens.begin() + long(cut), chunk.tokens.end());
        std::vector<float> moved_weights(chunk.multipliers.begin() + long(cut), chunk.multipliers.end());
        chunk.tokens.resize(cut);
        chunk.multipliers.resize(cut);
        next_chunk(false);
        chunk.tokens = std::move(moved_tokens);
        chunk.multipliers = std::move(moved_weights);
      }
      if (int(chunk.tokens.size()) == kChunkLength) next_chunk(false);
      chunk.tokens.push_back(token);
      chunk.multipliers.push_back(float(run.weight));
    }
  }
  if (!chunk.tokens.empty() || out.chunks.empty()) next_chunk(true);
  return out;
}

Tensor apply_emphasis(Context& ctx, const Tensor& z, const std::vector<std::vector<float>>& multipliers,
                      Emphasis emphasis) {
  if (emphasis == Emphasis::None || emphasis == Emphasis::Ignore) return z;
  EASEL_CHECK(z.dim() == 3 && z.size(0) == int64_t(multipliers.size()), "emphasis: hidden states ", z.describe(),
              " for ", multipliers.size(), " rows of weights");
  const int64_t B = z.size(0), T = z.size(1);
  std::vector<float> m;
  m.reserve(size_t(B * T));
  for (const auto& row : multipliers) {
    EASEL_CHECK(int64_t(row.size()) == T, "emphasis: ", row.size(), " weights for ", T, " tokens");
    m.insert(m.end(), row.begin(), row.end());
  }
  Tensor weighted = ops::mul(ctx, z, Tensor::from_vector(m, {B, T, 1}));  // z * multipliers
  if (emphasis == Emphasis::NoNorm) return weighted;
  // Restore the mean the chunk had before weighting (over the whole batch, as A1111 does).
  const double original_mean = mean(z), new_mean = mean(weighted);
  return ops::affine(ctx, weighted, float(original_mean / new_mean), 0.0f);
}

Result<PromptConditioning> encode_prompts(Context& ctx, const ClipTokenizer& tokenizer,
                                          std::span<const std::string> prompts, const ChunkEncoder& encoder,
                                          const PromptEncodeOptions& options) {
  if (prompts.empty()) return Error("encode_prompts: no prompts");
  PromptConditioning out;
  std::map<std::string, TokenizedPrompt> cache;  // a batch often repeats one prompt
  std::vector<const TokenizedPrompt*> batch;
  for (const std::string& p : prompts) {
    auto it = cache.find(p);
    if (it == cache.end()) {
      EASEL_TRY(TokenizedPrompt t, tokenize_prompt(tokenizer, p, options.chunking));
      it = cache.emplace(p, std::move(t)).first;
    }
    batch.push_back(&it->second);
    out.token_count = std::max(out.token_count, it->second.token_count);
    out.chunks = std::max(out.chunks, int(it->second.chunks.size()));
  }

  const TokenChunk empty = empty_chunk();
  const int64_t B = int64_t(batch.size()), T = kChunkLength + 2;
  std::vector<Tensor> zs;
  for (int i = 0; i < out.chunks; ++i) {
    std::vector<int32_t> ids;
    std::vector<std::vector<float>> multipliers;
    for (const TokenizedPrompt* p : batch) {
      const TokenChunk& c = i < int(p->chunks.size()) ? p->chunks[size_t(i)] : empty;
      // open_clip pads with 0: every id after the first EOS becomes the pad id.
      bool after_eos = false;
      for (int id : c.tokens) {
        ids.push_back(after_eos ? options.pad_id : id);
        after_eos = after_eos || id == ClipTokenizer::kEos;
      }
      multipliers.push_back(c.multipliers);
    }
    EASEL_TRY(ChunkEncoding enc, catch_errors([&] { return encoder(ctx, Tensor::from_vector(ids, {B, T})); }));
    if (!enc.hidden.defined() || enc.hidden.dim() != 3 || enc.hidden.size(0) != B || enc.hidden.size(1) != T)
      return Error(cat("encode_prompts: the text encoder returned ",
                       enc.hidden.defined() ? enc.hidden.describe() : std::string("nothing"), " for ids [", B, ", ",
                       T, "]"));
    EASEL_TRY(Tensor z, catch_errors([&] {
                return apply_emphasis(ctx, enc.hidden, multipliers, options.chunking.emphasis);
              }));
    zs.push_back(z);
    if (i == 0) {
      out.pooled = enc.pooled;
      out.projected = enc.projected;
    }
  }
  out.hidden = zs.size() == 1 ? zs[0] : ops::concat(ctx, zs, 1);
  return out;
}

void pad_to_same_length(Context& ctx, Tensor& cond, Tensor& uncond, const Tensor& empty) {
  EASEL_CHECK(cond.dim() == 3 && uncond.dim() == 3 && empty.dim() == 3 && empty.size(1) > 0,
              "pad_to_same_length: expected [B, tokens, W] tensors, got ", cond.describe(), ", ", uncond.describe(),
              " and ", empty.describe());
  const int64_t repeats = (cond.size(1) - uncond.size(1)) / empty.size(1);  // A1111: integer division
  if (repeats == 0) return;
  Tensor& shorter = repeats > 0 ? uncond : cond;
  const Tensor block = empty.expand({shorter.size(0), empty.size(1), empty.size(2)});
  std::vector<Tensor> parts{shorter};
  for (int64_t r = 0; r < (repeats > 0 ? repeats : -repeats); ++r) parts.push_back(block);
  shorter = ops::concat(ctx, parts, 1);
}

}  // namespace easel
