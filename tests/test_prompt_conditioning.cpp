// A1111 prompt-to-conditioning rules (modules/sd_hijack_clip.py, sd_emphasis.py): 75-token chunks
// wrapped BOS ... EOS, the comma rule, BREAK, per-token weights with the mean restored, batch and
// negative-prompt padding. Tokens from the real CLIP tokenizer (set clip_tokenizer); encodings from
// the tiny CLIP models of set clip_text_tiny, with CLIP's ids folded into their small vocabulary.
#include <gtest/gtest.h>

#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "models/clip_text.h"
#include "ops/ops.h"
#include "pipelines/prompt_conditioning.h"
#include "test_data.h"

namespace easel {
namespace {

constexpr int kBos = ClipTokenizer::kBos, kEos = ClipTokenizer::kEos;

ClipTokenizer tokenizer() {
  return ClipTokenizer::load(testing::set_dir("clip_tokenizer") / "bpe_simple_vocab_16e6.txt.gz").value();
}

int one_token(const ClipTokenizer& t, const std::string& word) {
  const auto ids = t.encode(word);
  EXPECT_EQ(ids.size(), 1u) << word;
  return ids.empty() ? -1 : ids[0];
}

std::string repeat(const std::string& word, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + word;
  return s;
}

// The chunk's 75 inner tokens.
std::vector<int> inner(const TokenChunk& c) {
  EXPECT_EQ(c.tokens.size(), 77u);
  EXPECT_EQ(c.multipliers.size(), 77u);
  EXPECT_EQ(c.tokens.front(), kBos);
  EXPECT_EQ(c.tokens.back(), kEos);
  return {c.tokens.begin() + 1, c.tokens.end() - 1};
}

std::vector<int> expected(std::initializer_list<std::pair<int, int>> runs) {  // {token, count}...
  std::vector<int> v;
  for (auto [token, n] : runs) v.insert(v.end(), size_t(n), token);
  v.resize(75, kEos);
  return v;
}

TEST(PromptConditioning, ShortAndEmptyPromptsAreOneChunk) {
  const auto tok = tokenizer();
  const int cat = one_token(tok, "cat"), dog = one_token(tok, "dog");
  auto p = tokenize_prompt(tok, "cat dog").value();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 1}, {dog, 1}}));
  EXPECT_EQ(p.token_count, 2);
  for (float m : p.chunks[0].multipliers) EXPECT_EQ(m, 1.0f);

  auto e = tokenize_prompt(tok, "").value();
  ASSERT_EQ(e.chunks.size(), 1u);
  EXPECT_EQ(e.token_count, 0);
  EXPECT_EQ(e.chunks[0].tokens, empty_chunk().tokens);
}

TEST(PromptConditioning, LongPromptsSplitInto75TokenChunks) {
  const auto tok = tokenizer();
  const int cat = one_token(tok, "cat");
  auto p = tokenize_prompt(tok, repeat("cat", 100)).value();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 75}}));
  EXPECT_EQ(inner(p.chunks[1]), expected({{cat, 25}}));
  EXPECT_EQ(p.token_count, 100);
  // Exactly 75 tokens: one chunk.
  EXPECT_EQ(tokenize_prompt(tok, repeat("cat", 75)).value().chunks.size(), 1u);
  EXPECT_EQ(tokenize_prompt(tok, repeat("cat", 76)).value().chunks.size(), 2u);
}

TEST(PromptConditioning, FullChunkBreaksAfterACommaWithin20Tokens) {
  const auto tok = tokenizer();
  const int cat = one_token(tok, "cat"), dog = one_token(tok, "dog"), comma = one_token(tok, ",");
  // 60 cats, a comma at index 60, 20 dogs: when the 75-token chunk fills, its last comma is 15 back.
  auto p = tokenize_prompt(tok, repeat("cat", 60) + ", " + repeat("dog", 20)).value();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 60}, {comma, 1}}));
  EXPECT_EQ(inner(p.chunks[1]), expected({{dog, 20}}));
  EXPECT_EQ(p.token_count, 75 + 20);

  // A comma 25 tokens back is too far: a plain split at 75.
  p = tokenize_prompt(tok, repeat("cat", 50) + ", " + repeat("dog", 30)).value();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 50}, {comma, 1}, {dog, 24}}));
  EXPECT_EQ(inner(p.chunks[1]), expected({{dog, 6}}));

  // Exactly 20 back still moves; comma_padding_backtrack = 0 turns the rule off.
  p = tokenize_prompt(tok, repeat("cat", 55) + ", " + repeat("dog", 25)).value();
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 55}, {comma, 1}}));
  PromptChunkingOptions off;
  off.comma_padding_backtrack = 0;
  p = tokenize_prompt(tok, repeat("cat", 60) + ", " + repeat("dog", 20), off).value();
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 60}, {comma, 1}, {dog, 14}}));
  EXPECT_EQ(inner(p.chunks[1]), expected({{dog, 6}}));
}

TEST(PromptConditioning, BreakStartsANewChunk) {
  const auto tok = tokenizer();
  const int cat = one_token(tok, "cat"), dog = one_token(tok, "dog");
  auto p = tokenize_prompt(tok, "cat BREAK dog").value();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 1}}));
  EXPECT_EQ(inner(p.chunks[1]), expected({{dog, 1}}));
  EXPECT_EQ(p.token_count, 75 + 1);
  // BREAK inside brackets is a weighted word, not a break; with emphasis None it is a word too.
  EXPECT_EQ(tokenize_prompt(tok, "(cat BREAK dog:1.2)").value().chunks.size(), 1u);
  PromptChunkingOptions none;
  none.emphasis = Emphasis::None;
  EXPECT_EQ(tokenize_prompt(tok, "cat BREAK dog", none).value().chunks.size(), 1u);
}

TEST(PromptConditioning, WeightsFollowTheirTokens) {
  const auto tok = tokenizer();
  const int cat = one_token(tok, "cat"), dog = one_token(tok, "dog");
  auto p = tokenize_prompt(tok, "(cat:1.5) [dog]").value();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(inner(p.chunks[0]), expected({{cat, 1}, {dog, 1}}));
  EXPECT_FLOAT_EQ(p.chunks[0].multipliers[0], 1.0f);
  EXPECT_FLOAT_EQ(p.chunks[0].multipliers[1], 1.5f);
  EXPECT_FLOAT_EQ(p.chunks[0].multipliers[2], float(1 / 1.1));
  EXPECT_FLOAT_EQ(p.chunks[0].multipliers[3], 1.0f);
  // A malformed weight is an error, as in A1111.
  EXPECT_FALSE(tokenize_prompt(tok, "(cat:1.2.3)").ok());
}

// --- encoding with the tiny models ----------------------------------------------------------------

struct TinyEncoders {
  std::vector<Checkpoint> files;
  ClipTextModel openai, openclip;
};

ClipTextModel load_flavour(Context& ctx, const std::filesystem::path& dir, const nlohmann::json& f,
                           const std::string& naming, std::vector<Checkpoint>& keep) {
  keep.push_back(Checkpoint::open(dir / f.at("weights").at(naming).get<std::string>()).value());
  ClipTextOptions o;
  o.heads = f.at("heads").get<int>();
  o.activation = f.at("hidden_act") == "quick_gelu" ? ClipActivation::QuickGelu : ClipActivation::Gelu;
  return ClipTextModel::load(ctx, tensors_under({&keep.back()}, ""), o).value();
}

TinyEncoders tiny_encoders(Context& ctx) {
  const auto dir = testing::set_dir("clip_text_tiny");
  std::ifstream in(dir / "config.json");
  const auto config = nlohmann::json::parse(in);
  TinyEncoders t;
  t.files.reserve(2);
  t.openai = load_flavour(ctx, dir, config.at("openai"), "transformers", t.files);
  t.openclip = load_flavour(ctx, dir, config.at("openclip"), "open_clip", t.files);
  return t;
}

// CLIP ids folded into the tiny vocabulary: BOS / EOS to its two highest ids, pad 0 stays 0.
ChunkEncoder tiny_encoder(const ClipTextModel& m, std::vector<std::vector<int>>* seen = nullptr) {
  return [&m, seen](Context& ctx, const Tensor& ids) {
    const int64_t V = m.config().vocab_size;
    std::vector<int32_t> v = ids.to_vector<int32_t>();
    if (seen) seen->push_back({v.begin(), v.end()});
    for (int32_t& id : v) id = id == kBos ? int32_t(V - 2) : id == kEos ? int32_t(V - 1) : id == 0 ? 0 : id % int32_t(V - 2);
    ClipEncodeOptions o;
    o.pooled = true;
    auto out = m.forward(ctx, Tensor::from_vector(v, ids.shape()), o);
    return ChunkEncoding{out.hidden, out.pooled, out.projected};
  };
}

TEST(PromptConditioning, WeightsScaleTokensAndTheMeanIsRestored) {
  const auto tok = tokenizer();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto enc = tiny_encoders(ctx);
  const std::vector<std::string> plain{"cat dog"}, weighted{"(cat:1.5) (dog:0.5)"};
  const Tensor z = encode_prompts(ctx, tok, plain, tiny_encoder(enc.openai)).value().hidden;
  const auto zw = encode_prompts(ctx, tok, weighted, tiny_encoder(enc.openai)).value();
  ASSERT_EQ(z.shape(), zw.hidden.shape());
  const auto a = z.to_vector<float>(), b = zw.hidden.to_vector<float>();
  const int64_t W = z.size(2);
  const double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / double(a.size());
  const double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / double(b.size());
  EXPECT_NEAR(mean_b, mean_a, 1e-6 * std::max(1.0, std::fabs(mean_a)));
  // Per token: z * w * (mean before / mean after weighting), the same ratio for every token.
  double weighted_sum = 0;
  std::vector<float> mult(77, 1.0f);
  mult[1] = 1.5f, mult[2] = 0.5f;
  for (int64_t t = 0; t < 77; ++t)
    for (int64_t c = 0; c < W; ++c) weighted_sum += double(a[size_t(t * W + c)]) * mult[size_t(t)];
  const double ratio = mean_a / (weighted_sum / double(a.size()));
  float worst = 0;
  for (int64_t t = 0; t < 77; ++t)
    for (int64_t c = 0; c < W; ++c) {
      const size_t i = size_t(t * W + c);
      worst = std::max(worst, float(std::fabs(b[i] - a[i] * mult[size_t(t)] * ratio)));
    }
  EXPECT_LE(worst, 1e-5f);

  // No norm: the plain product; Ignore: the unweighted encoding.
  PromptEncodeOptions o;
  o.chunking.emphasis = Emphasis::NoNorm;
  const auto nn = encode_prompts(ctx, tok, weighted, tiny_encoder(enc.openai), o).value().hidden.to_vector<float>();
  for (int64_t t = 0; t < 77; ++t)
    for (int64_t c = 0; c < W; ++c) ASSERT_FLOAT_EQ(nn[size_t(t * W + c)], a[size_t(t * W + c)] * mult[size_t(t)]);
  o.chunking.emphasis = Emphasis::Ignore;
  EXPECT_EQ(testing::max_abs_diff(encode_prompts(ctx, tok, weighted, tiny_encoder(enc.openai), o).value().hidden, z), 0.0f);
}

TEST(PromptConditioning, ChunksConcatenateAndBatchesPadWithEmptyChunks) {
  const auto tok = tokenizer();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto enc = tiny_encoders(ctx);
  const std::vector<std::string> one{"cat BREAK dog"};
  const auto r = encode_prompts(ctx, tok, one, tiny_encoder(enc.openai)).value();
  EXPECT_EQ(r.chunks, 2);
  EXPECT_EQ(r.hidden.shape(), Shape({1, 154, enc.openai.config().width}));
  // Each half is the chunk encoded on its own.
  const Tensor cat = encode_prompts(ctx, tok, std::vector<std::string>{"cat"}, tiny_encoder(enc.openai)).value().hidden;
  const Tensor dog = encode_prompts(ctx, tok, std::vector<std::string>{"dog"}, tiny_encoder(enc.openai)).value().hidden;
  EXPECT_LE(testing::max_abs_diff(r.hidden.narrow(1, 0, 77), cat), 1e-6f);
  EXPECT_LE(testing::max_abs_diff(r.hidden.narrow(1, 77, 77), dog), 1e-6f);

  // A batch pads its shorter prompt with empty chunks (= the encoding of "").
  const std::vector<std::string> batch{"cat BREAK dog", "cat"};
  const auto b = encode_prompts(ctx, tok, batch, tiny_encoder(enc.openai)).value();
  EXPECT_EQ(b.hidden.shape(), Shape({2, 154, enc.openai.config().width}));
  const Tensor empty = encode_prompts(ctx, tok, std::vector<std::string>{""}, tiny_encoder(enc.openai)).value().hidden;
  EXPECT_LE(testing::max_abs_diff(b.hidden.select(0, 1).narrow(0, 77, 77).unsqueeze(0), empty), 1e-6f);

  // A negative prompt padded to its prompt's length with the empty prompt's encoding.
  Tensor cond = r.hidden, uncond = cat;
  pad_to_same_length(ctx, cond, uncond, empty);
  EXPECT_EQ(uncond.shape(), cond.shape());
  EXPECT_EQ(testing::max_abs_diff(uncond.narrow(1, 0, 77), cat), 0.0f);
  EXPECT_EQ(testing::max_abs_diff(uncond.narrow(1, 77, 77), empty), 0.0f);
  Tensor cond2 = cat, uncond2 = r.hidden;  // and the other way round
  pad_to_same_length(ctx, cond2, uncond2, empty);
  EXPECT_EQ(cond2.shape(), uncond2.shape());
}

TEST(PromptConditioning, OpenClipPadsAfterTheFirstEosWithZero) {
  const auto tok = tokenizer();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  auto enc = tiny_encoders(ctx);
  std::vector<std::vector<int>> seen;
  PromptEncodeOptions o;
  o.pad_id = 0;
  const auto r = encode_prompts(ctx, tok, std::vector<std::string>{"cat dog"}, tiny_encoder(enc.openclip, &seen), o).value();
  ASSERT_EQ(seen.size(), 1u);
  const int cat = one_token(tok, "cat"), dog = one_token(tok, "dog");
  std::vector<int> want(77, 0);
  want[0] = kBos, want[1] = cat, want[2] = dog, want[3] = kEos;
  EXPECT_EQ(seen[0], want);
  EXPECT_TRUE(r.pooled.defined());
  EXPECT_TRUE(r.projected.defined());
  EXPECT_EQ(r.projected.size(1), enc.openclip.config().projection_dim);
}

TEST(PromptConditioning, EncoderErrorsBecomeErrors) {
  const auto tok = tokenizer();
  auto rt = Runtime::create().value();
  Context ctx = rt->context();
  ChunkEncoder failing = [](Context&, const Tensor&) -> ChunkEncoding { throw Exception("boom"); };
  auto r = encode_prompts(ctx, tok, std::vector<std::string>{"cat"}, failing);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("boom"), std::string::npos);
  ChunkEncoder wrong = [](Context& c, const Tensor&) { return ChunkEncoding{ops::zeros(c, {1, 5, 4}), {}, {}}; };
  r = encode_prompts(ctx, tok, std::vector<std::string>{"cat"}, wrong);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("returned"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace easel
