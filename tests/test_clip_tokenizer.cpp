// Golden test of the CLIP tokenizer: every case of <root>/clip_tokenizer/tokenizer_cases.json,
// every stage the file gives (ftfy, basic_clean, cleaned, regex pieces, BPE symbols, ids, the
// 77-token sequences for both padding conventions, open_clip's own encode, decode).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <algorithm>
#include <fstream>
#include <map>

#include "test_data.h"
#include "text/clip_tokenizer.h"

namespace easel {
namespace {

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

template <class T>
std::vector<T> as_vector(const nlohmann::json& j) {
  return j.get<std::vector<T>>();
}

TEST(ClipTokenizer, GoldenCases) {
  const auto dir = testing::set_dir("clip_tokenizer");
  std::ifstream in(dir / "tokenizer_cases.json");
  ASSERT_TRUE(in) << "missing " << (dir / "tokenizer_cases.json");
  const nlohmann::json doc = nlohmann::json::parse(in);
  // Special ids and pads from the file where it gives them.
  const nlohmann::json special = doc.value("special_ids", nlohmann::json::object());
  const int bos_id = special.value("bos", ClipTokenizer::kBos), eos_id = special.value("eos", ClipTokenizer::kEos);
  const int sd1_pad = special.value("sd1_pad", ClipTokenizer::kEos), open_clip_pad = special.value("open_clip_pad", 0);
  EXPECT_EQ(bos_id, ClipTokenizer::kBos);
  EXPECT_EQ(eos_id, ClipTokenizer::kEos);

  const nlohmann::json vocab_file = doc.value("vocab_file", nlohmann::json::object());
  const auto merges = dir / vocab_file.value("name", std::string("bpe_simple_vocab_16e6.txt.gz"));
  auto openai = ClipTokenizer::load(merges, ClipFlavor::kOpenAI);
  ASSERT_TRUE(openai.ok()) << openai.error().message();
  auto open_clip = ClipTokenizer::load(merges, ClipFlavor::kOpenClip);
  ASSERT_TRUE(open_clip.ok()) << open_clip.error().message();
  if (vocab_file.contains("vocab_size")) {
    EXPECT_EQ(openai->vocab_size(), vocab_file["vocab_size"].get<int>());
  }

  const auto& cases = doc.at("cases");
  ASSERT_GT(cases.size(), 0u);
  std::map<std::string, std::pair<int, int>> per_category;  // exact, total
  int exact = 0;
  for (const auto& c : cases) {
    const std::string category = c.value("category", std::string("?"));
    const std::string text = c.contains("text_utf8_hex") ? from_hex(c["text_utf8_hex"].get<std::string>())
                                                         : c.at("text").get<std::string>();
    SCOPED_TRACE("case " + std::to_string(c.value("id", -1)) + " [" + category + "] " + text);
    bool ok = true;
    const auto check = [&](bool equal, const char* what) {
      EXPECT_TRUE(equal) << what << " differs";
      ok = ok && equal;
    };
    if (c.contains("text_utf8_hex") && c.contains("text")) check(c["text"].get<std::string>() == text, "text_utf8_hex vs text");
    if (c.contains("after_ftfy")) {
      const std::string got = ClipTokenizer::fix_text(text);
      EXPECT_EQ(got, c["after_ftfy"].get<std::string>());
      check(got == c["after_ftfy"].get<std::string>(), "after_ftfy");
    }
    if (c.contains("after_basic_clean")) {
      const std::string got = ClipTokenizer::basic_clean(text);
      EXPECT_EQ(got, c["after_basic_clean"].get<std::string>());
      check(got == c["after_basic_clean"].get<std::string>(), "after_basic_clean");
    }
    const std::string cleaned = openai->clean(text);
    if (c.contains("cleaned")) {
      EXPECT_EQ(cleaned, c["cleaned"].get<std::string>());
      check(cleaned == c["cleaned"].get<std::string>(), "cleaned");
    }
    if (c.contains("pre_tokens")) {
      const auto got = openai->pre_tokenize(cleaned);
      EXPECT_EQ(got, as_vector<std::string>(c["pre_tokens"]));
      check(got == as_vector<std::string>(c["pre_tokens"]), "pre_tokens");
    }
    if (c.contains("bpe_tokens")) {
      const auto got = openai->bpe_tokens(text);
      EXPECT_EQ(got, as_vector<std::string>(c["bpe_tokens"]));
      check(got == as_vector<std::string>(c["bpe_tokens"]), "bpe_tokens");
    }
    const std::vector<int> ids = openai->encode(text);
    const auto want_ids = as_vector<int>(c.at("ids"));
    EXPECT_EQ(ids, want_ids);
    check(ids == want_ids, "ids");
    if (c.contains("n_ids")) check(static_cast<int>(ids.size()) == c["n_ids"].get<int>(), "n_ids");
    if (c.contains("truncated")) check((ids.size() > 75) == c["truncated"].get<bool>(), "truncated");

    const std::vector<int> sd1 = openai->tokenize77(text, sd1_pad);
    if (c.contains("ids_77_sd1")) {
      EXPECT_EQ(sd1, as_vector<int>(c["ids_77_sd1"]));
      check(sd1 == as_vector<int>(c["ids_77_sd1"]), "ids_77_sd1");
    }
    if (c.contains("eos_index_77")) {
      // The data holds the index of the EOS that tokenization appends, min(n_ids, 75) + 1 (the
      // README's formula), also where a prompt holds a literal <|endoftext|> before it.
      const long eos = static_cast<long>(std::min<size_t>(ids.size(), ClipTokenizer::kContext - 2)) + 1;
      check(eos == c["eos_index_77"].get<long>() && sd1[eos] == eos_id, "eos_index_77");
    }
    const bool differs = c.value("open_clip_encode_differs", false);
    if (differs && c.contains("open_clip_ids")) {
      const auto got = open_clip->encode(text);
      EXPECT_EQ(got, as_vector<int>(c["open_clip_ids"]));
      check(got == as_vector<int>(c["open_clip_ids"]), "open_clip_ids");
    } else {
      check(open_clip->encode(text) == want_ids, "open_clip encode (same as openai's)");
    }
    if (c.contains("ids_77_open_clip")) {
      const auto want = as_vector<int>(c["ids_77_open_clip"]);
      const auto got = open_clip->tokenize77(text, open_clip_pad);
      EXPECT_EQ(got, want);
      check(got == want, "ids_77_open_clip");
      if (!differs) check(openai->tokenize77(text, open_clip_pad) == want, "openai ids with zero padding");
    }
    if (c.contains("decoded")) {
      const std::string got = openai->decode(want_ids);
      EXPECT_EQ(got, c["decoded"].get<std::string>());
      check(got == c["decoded"].get<std::string>(), "decoded");
    }
    auto& [n_exact, n_total] = per_category[category];
    ++n_total;
    if (ok) ++n_exact, ++exact;
  }
  for (const auto& [category, counts] : per_category)
    std::printf("clip_tokenizer: %-13s %d of %d exact\n", category.c_str(), counts.first, counts.second);
  std::printf("clip_tokenizer: %d of %zu cases exact\n", exact, cases.size());
  EXPECT_EQ(exact, static_cast<int>(cases.size()));
}

TEST(ClipTokenizer, InvalidUtf8IsReadAsReplacementCharacters) {
  auto t = ClipTokenizer::load(testing::set_dir("clip_tokenizer") / "bpe_simple_vocab_16e6.txt.gz");
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->pre_tokenize("a\xff\xfe b"), (std::vector<std::string>{"a", "\xef\xbf\xbd\xef\xbf\xbd", "b"}));
  EXPECT_FALSE(t->encode("cat \xc3 \xed\xa0\x80 dog").empty());
}

TEST(ClipTokenizer, BuiltInMergesMatchTheSetsFile) {
  auto from_file = ClipTokenizer::load(testing::set_dir("clip_tokenizer") / "bpe_simple_vocab_16e6.txt.gz");
  auto builtin = ClipTokenizer::builtin();
  ASSERT_TRUE(from_file.ok() && builtin.ok());
  EXPECT_EQ(builtin->vocab_size(), from_file->vocab_size());
  const char* prompt = "a photograph of an astronaut riding a horse, (masterpiece:1.2), 8k";
  EXPECT_EQ(builtin->tokenize77(prompt, ClipTokenizer::kEos), from_file->tokenize77(prompt, ClipTokenizer::kEos));
}

TEST(ClipTokenizer, MissingMergesFileIsAnError) {
  auto t = ClipTokenizer::load("no/such/bpe_simple_vocab_16e6.txt.gz");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message().find("no/such"), std::string::npos);
}

}  // namespace
}  // namespace easel
