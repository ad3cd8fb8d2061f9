// Golden test of the prompt emphasis parser against the `prompt_weights` set: every case, every
// parser the set lists. Texts must be byte-equal and weights double-equal; where the reference
// raised (result null) we must return an error, and SD.Next's logged messages must match.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "test_data.h"
#include "text/prompt_weights.h"

namespace easel {
namespace {

using nlohmann::json;

std::optional<PromptAttention> mode_of(const std::string& parser) {
  if (parser == "a1111") return PromptAttention::A1111;
  if (parser == "sdnext_native") return PromptAttention::SdNextNative;
  if (parser == "sdnext_a1111") return PromptAttention::SdNextA1111;
  return std::nullopt;
}

std::string describe(const std::vector<PromptChunk>& chunks) {
  json out = json::array();
  for (const auto& c : chunks) out.push_back(json::array({c.text, c.weight}));
  return out.dump();
}

// Checks one case under one parser; returns whether it matched exactly.
bool check_case(const json& c, const std::string& parser, PromptAttention mode) {
  const json& want = c.at(parser);
  const std::string prompt = c.at("text").get<std::string>();
  const std::string where = c.at("id").dump() + " " + parser + " " + c.at("text").dump();
  std::vector<std::string> warnings;
  const auto got = parse_prompt_attention(prompt, mode, &warnings);

  bool exact = true;
  const auto expect = [&](bool ok, const std::string& what) {
    EXPECT_TRUE(ok) << "case " << where << ": " << what;
    exact = exact && ok;
  };
  if (want.at("result").is_null()) {
    expect(!got.ok(), "the reference raised (" + want.value("exception", std::string()) +
                          ") but we returned " + (got.ok() ? describe(*got) : ""));
    if (!got.ok()) expect(!got.error().message().empty(), "error without a message");
  } else if (!got.ok()) {
    expect(false, "unexpected error: " + got.error().message());
  } else {
    const json& chunks = want.at("result");
    bool same = chunks.size() == got->size();
    for (size_t i = 0; same && i < chunks.size(); ++i) {
      same = chunks[i].at(0).get<std::string>() == (*got)[i].text && chunks[i].at(1).get<double>() == (*got)[i].weight;
    }
    expect(same, "want " + chunks.dump() + "\n got  " + describe(*got));
  }
  // Messages logged before a raise may go unrecorded, so an absent list is only checked (as empty)
  // where the reference returned.
  if (want.contains("logged_errors") || !want.at("result").is_null()) {
    const auto logged = want.value("logged_errors", std::vector<std::string>{});
    expect(logged == warnings, "logged errors differ: want " + json(logged).dump() + " got " + json(warnings).dump());
  }
  return exact;
}

TEST(PromptWeights, GoldenSet) {
  const auto path = testing::set_dir("prompt_weights") / "prompt_weights.json";
  std::ifstream file(path);
  ASSERT_TRUE(file) << "cannot open " << path;
  const json set = json::parse(file);
  const json& parsers = set.at("parsers");
  const json& cases = set.at("cases");
  ASSERT_FALSE(parsers.empty());
  ASSERT_FALSE(cases.empty());

  size_t exact_cases = 0;
  for (const json& c : cases) {
    bool all = true;
    for (const auto& [parser, provenance] : parsers.items()) {
      const auto mode = mode_of(parser);
      if (!mode) {
        ADD_FAILURE() << "unknown parser '" << parser << "': " << provenance.dump();
        all = false;
        continue;
      }
      if (!c.contains(parser)) continue;
      all = check_case(c, parser, *mode) && all;
    }
    exact_cases += all;
  }
  std::printf("prompt_weights: %zu of %zu cases x %zu parsers exact\n", exact_cases, cases.size(), parsers.size());
  EXPECT_EQ(exact_cases, cases.size());
}

}  // namespace
}  // namespace easel
