// The byte-level BPE tokenizer of the Qwen models against the qwen_tokenizer set: llama.cpp's
// tokenizer cases with the ids the Hugging Face tokenizer gives, the vocabulary rebuilt from the
// merges list as the set's README describes; the tokenizer.json loader on the same vocabulary;
// round trips; and what a broken file gets.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_data.h"
#include "text/bpe_tokenizer.h"
#include "text/byte_level.h"
#include "text/stream_decoder.h"
#include "text/unicode.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using text::BpeTokenizer;
using text::BpeTokenizerOptions;

// The Qwen2 / Qwen3 / Qwen3-VL pre-tokenizer (their tokenizer.json's Split pattern).
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TokenizerCase {
  std::string text;
  std::vector<int> ids;
};

// llama.cpp's format: inputs separated by "\n__ggml_vocab_test__\n", one line of ids per input.
std::vector<TokenizerCase> llama_cpp_cases(const fs::path& dir) {
  std::vector<TokenizerCase> cases;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".inp") continue;
    const std::string inp = read_file(e.path());
    std::istringstream out(read_file(fs::path(e.path()).replace_extension(".out")));
    const std::string sep = "\n__ggml_vocab_test__\n";
    size_t at = 0;
    while (at < inp.size()) {
      const size_t end = inp.find(sep, at);
      TokenizerCase c;
      c.text = inp.substr(at, end == std::string::npos ? std::string::npos : end - at);
      std::string line;
      EXPECT_TRUE(bool(std::getline(out, line))) << e.path() << ": fewer id lines than inputs";
      std::istringstream ids(line);
      for (int id; ids >> id;) c.ids.push_back(id);
      cases.push_back(std::move(c));
      if (end == std::string::npos) break;
      at = end + sep.size();
    }
  }
  return cases;
}

BpeTokenizerOptions qwen2_options() {
  BpeTokenizerOptions o;
  o.pre_tokenizer = kQwen2Pattern;
  return o;
}

class QwenTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path dir = testing::set_dir("qwen_tokenizer");
    auto t = BpeTokenizer::from_merges(read_file(dir / "qwen2_merges.txt"), "qwen2_merges.txt", qwen2_options());
    ASSERT_TRUE(t.ok()) << t.error().message();
    tokenizer_ = new BpeTokenizer(std::move(*t));
    cases_ = new std::vector<TokenizerCase>(llama_cpp_cases(dir));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete cases_;
  }
  static BpeTokenizer* tokenizer_;
  static std::vector<TokenizerCase>* cases_;
};
BpeTokenizer* QwenTokenizer::tokenizer_ = nullptr;
std::vector<TokenizerCase>* QwenTokenizer::cases_ = nullptr;

TEST_F(QwenTokenizer, EveryLlamaCppCaseGivesTheHfIds) {
  ASSERT_FALSE(cases_->empty()) << "the set has no .inp / .out cases";
  int exact = 0;
  for (const TokenizerCase& c : *cases_) {
    SCOPED_TRACE(c.text);
    const std::vector<int> ids = tokenizer_->encode(c.text);
    EXPECT_EQ(ids, c.ids);
    exact += ids == c.ids;
    // Decoding gives the text back (these inputs are NFC already).
    EXPECT_EQ(tokenizer_->decode(c.ids), c.text);
  }
  std::printf("qwen_tokenizer: %d of %zu llama.cpp cases exact\n", exact, cases_->size());
}

// Random text from several scripts, emoji and whitespace: decode(encode(x)) is NFC(x).
TEST_F(QwenTokenizer, RoundTripsRandomUtf8) {
  std::mt19937 rng(1234);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x24F}, {0x300, 0x36F}, {0x391, 0x3C9}, {0x400, 0x4FF}, {0x600, 0x6FF},
      {0x900, 0x97F}, {0x3040, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0x1F300, 0x1FAFF}, {0xFF01, 0xFF5E}};
  for (int i = 0; i < 300; ++i) {
    std::u32string s;
    const int n = int(rng() % 40);
    for (int k = 0; k < n; ++k) {
      const auto [lo, hi] = ranges[rng() % ranges.size()];
      s.push_back(char32_t(lo + rng() % (hi - lo + 1)));
    }
    const std::string utf8 = text::u32_to_utf8(s);
    SCOPED_TRACE(utf8);
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(utf8)), text::u32_to_utf8(text::nfc(s)));
  }
}

// Long runs (a pasted document: 100k spaces, one 100k-letter "word", 100k newlines) tokenize
// and decode back, without the regex giving up or the merging taking quadratic time per run.
TEST_F(QwenTokenizer, LongRunsTokenize) {
  for (const std::string& run : {std::string(100000, ' '), std::string(100000, 'a'), std::string(100000, '\n'),
                                 "x" + std::string(100000, ' ') + "y"}) {
    std::vector<int> ids;
    ASSERT_NO_THROW(ids = tokenizer_->encode(run));
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tokenizer_->decode(ids), run);
  }
}

// Streaming: tokens decoded one at a time give valid UTF-8 chunks whose concatenation is the
// whole decode, though byte-level tokens cut characters (emoji, CJK) apart.
TEST_F(QwenTokenizer, StreamedTextIsValidUtf8AndAddsUpToTheDecode) {
  std::mt19937 rng(99);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E}, {0x4E00, 0x9FFF}, {0x1F300, 0x1FAFF}, {0x3040, 0x30FF}, {0x600, 0x6FF}};
  int cut = 0;
  for (int i = 0; i < 200; ++i) {
    std::u32string s;
    for (int k = 0, n = 1 + int(rng() % 30); k < n; ++k) {
      const auto [lo, hi] = ranges[rng() % ranges.size()];
      s.push_back(char32_t(lo + rng() % (hi - lo + 1)));
    }
    const std::string utf8 = text::u32_to_utf8(s);
    const std::vector<int> ids = tokenizer_->encode(utf8);
    text::StreamDecoder stream(*tokenizer_);
    std::string joined;
    for (int id : ids) {
      const std::string chunk = stream.push(id);
      EXPECT_EQ(text::u32_to_utf8(text::utf8_to_u32(chunk)), chunk) << "chunk is not valid UTF-8";
      const std::string bytes = tokenizer_->decode(std::span<const int>(&id, 1));
      cut += text::u32_to_utf8(text::utf8_to_u32(bytes)) != bytes;
      joined += chunk;
    }
    joined += stream.finish();
    EXPECT_EQ(joined, tokenizer_->decode(ids)) << utf8;
  }
  EXPECT_GT(cut, 0) << "no token cut a character: the test did not test the hold-back";
  // A byte that can start no character (F5..FF) is not held back waiting for one.
  const auto lone = tokenizer_->token_id("\u00ff");  // byte 0xFF's byte-level character
  ASSERT_TRUE(lone.has_value());
  text::StreamDecoder stream(*tokenizer_);
  EXPECT_EQ(stream.push(*lone), "\ufffd");
}

// The tokenizer.json a checkpoint ships, written here from the same vocabulary with two added
// tokens: the same ids, and added tokens are split off before the pre-tokenizer sees the text.
TEST_F(QwenTokenizer, ReadsTokenizerJsonWithAddedTokens) {
  const fs::path dir = testing::set_dir("qwen_tokenizer");
  nlohmann::json merges = nlohmann::json::array();
  std::istringstream lines(read_file(dir / "qwen2_merges.txt"));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) merges.push_back(line);
  nlohmann::json vocab = nlohmann::json::object();
  // Rebuild as the README says: bytes in bytes_to_unicode() order, then one token per merge.
  std::vector<std::string> tokens;
  const text::ByteLevelAlphabet& alphabet = text::ByteLevelAlphabet::get();
  for (int b : alphabet.order) tokens.push_back(text::u32_to_utf8(std::u32string(1, alphabet.char_of[size_t(b)])));
  for (const auto& m : merges) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    tokens.push_back(s.substr(0, space) + s.substr(space + 1));
  }
  for (size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;
  const int start = int(tokens.size()), end = start + 1;
  const nlohmann::json json = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", kQwen2Pattern}}}, {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"added_tokens",
       {{{"id", start}, {"content", "<|im_start|>"}, {"special", true}},
        {{"id", end}, {"content", "<|im_end|>"}, {"special", true}}}},
  };
  const fs::path file = fs::temp_directory_path() / ("easel_tokenizer_" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << json.dump();
  auto loaded = BpeTokenizer::from_tokenizer_json(file);
  fs::remove(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  for (const TokenizerCase& c : *cases_) EXPECT_EQ(loaded->encode(c.text), c.ids) << c.text;
  ASSERT_FALSE(cases_->empty());
  const TokenizerCase& c = cases_->back();
  std::vector<int> expected = {start};
  expected.insert(expected.end(), c.ids.begin(), c.ids.end());
  expected.push_back(end);
  EXPECT_EQ(loaded->encode("<|im_start|>" + c.text + "<|im_end|>"), expected);
  EXPECT_EQ(loaded->decode(expected), "<|im_start|>" + c.text + "<|im_end|>");
  EXPECT_EQ(loaded->decode(expected, /*skip_special=*/true), c.text);
  EXPECT_EQ(loaded->token_id("<|im_end|>"), end);
}

TEST(BpeTokenizerFiles, BrokenFilesGetClearErrors) {
  const fs::path dir = fs::temp_directory_path() / ("easel_bad_tokenizer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto error_of = [&](const std::string& body) {
    std::ofstream(dir / "tokenizer.json") << body;
    auto t = BpeTokenizer::from_tokenizer_json(dir / "tokenizer.json");
    return t.ok() ? std::string("(loaded)") : t.error().message();
  };
  EXPECT_NE(error_of("{\"model\": ").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "Unigram"}})").find("not BPE"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})").find("byte"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "BPE", "vocab": [], "merges": 3}})").find("tokenizer.json"), std::string::npos);
  // An id far beyond the vocabulary would make a table of millions of entries: refused.
  EXPECT_NE(error_of(R"({"model": {"type": "BPE", "vocab": {"a": 900000000}, "merges": []}})").find("out of range"),
            std::string::npos);
  auto missing = BpeTokenizer::from_tokenizer_json(dir / "absent.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("cannot open"), std::string::npos);
  // A merge naming tokens the vocabulary lacks.
  auto bad = BpeTokenizer::from_merges("a b\nzz qq\n", "merges.txt", qwen2_options());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("merge 1"), std::string::npos) << bad.error().message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace easel
