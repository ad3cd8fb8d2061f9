// Reasoning and tool calls in Qwen output, in the forms their chat templates ask for
// (shared/docs/qwen.md: Qwen3-VL JSON tool calls, Qwen3.5 XML tool calls and an open <think>).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/assistant_output.h"

namespace easel {
namespace {

using nlohmann::json;
using text::AssistantOutputFormat;
using text::ToolCallSyntax;

text::AssistantMessage parse(std::string_view s, AssistantOutputFormat f) {
  auto m = text::parse_assistant_output(s, f);
  EXPECT_TRUE(m.ok()) << m.error().message();
  return m.ok() ? *m : text::AssistantMessage{};
}

TEST(AssistantOutput, ReasoningIsReportedApart) {
  const auto closed = parse("<think>\nThe user greets.\n</think>\n\nHello!", {});
  EXPECT_EQ(closed.reasoning, "The user greets.");
  EXPECT_EQ(closed.content, "Hello!");
  // Qwen3.5's generation prompt ends in "<think>\n": the output starts inside the reasoning.
  const auto open = parse("Count the cats.\n</think>\n\nThree cats.", {.thinking_open = true});
  EXPECT_EQ(open.reasoning, "Count the cats.");
  EXPECT_EQ(open.content, "Three cats.");
  // Thinking off: the template wrote an empty block, the answer follows.
  const auto off = parse("A plain answer.", {.thinking_open = false});
  EXPECT_EQ(off.reasoning, "");
  EXPECT_EQ(off.content, "A plain answer.");
  // Stopped (max_tokens) while still thinking: all of it is reasoning.
  const auto cut = parse("Still thinking about", {.thinking_open = true});
  EXPECT_EQ(cut.reasoning, "Still thinking about");
  EXPECT_EQ(cut.content, "");
  // reasoning_format none: the text stays as generated.
  const auto kept = parse("<think>\nr\n</think>\n\nanswer", {.split_reasoning = false});
  EXPECT_EQ(kept.content, "<think>\nr\n</think>\n\nanswer");
}

TEST(AssistantOutput, JsonToolCallsOfQwen3Vl) {
  const auto m = parse(
      "Let me look both up.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n"
      "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
      {.tools = ToolCallSyntax::Json});
  EXPECT_EQ(m.content, "Let me look both up.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(m.tool_calls[0].arguments), (json{{"city", "Paris"}, {"days", 3}}));
  EXPECT_EQ(m.tool_calls[1].name, "get_time");
  EXPECT_EQ(json::parse(m.tool_calls[1].arguments), json::object());
}

TEST(AssistantOutput, XmlToolCallsOfQwen35AfterReasoning) {
  const auto m = parse(
      "The user wants the weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSan Francisco\n"
      "</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=units>\n{\"temp\": \"C\"}\n</parameter>\n"
      "<parameter=note>\nline one\nline two\n</parameter>\n</function>\n</tool_call>",
      {.thinking_open = true, .tools = ToolCallSyntax::Xml});
  EXPECT_EQ(m.reasoning, "The user wants the weather.");
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(m.tool_calls[0].arguments),
            (json{{"city", "San Francisco"}, {"days", 3}, {"units", {{"temp", "C"}}}, {"note", "line one\nline two"}}));
}

TEST(AssistantOutput, BrokenToolCallsAreErrorsThatSayWhy) {
  const auto error_of = [](std::string_view s, ToolCallSyntax t) {
    auto m = text::parse_assistant_output(s, {.tools = t});
    return m.ok() ? std::string("(parsed)") : m.error().message();
  };
  EXPECT_NE(error_of("<tool_call>\n{\"name\": \"f\"", ToolCallSyntax::Json).find("not closed"), std::string::npos);
  EXPECT_NE(error_of("<tool_call>\n{\"arguments\": {}}\n</tool_call>", ToolCallSyntax::Json).find("\"name\""),
            std::string::npos);
  EXPECT_NE(error_of("<tool_call>\nget_weather(Paris)\n</tool_call>", ToolCallSyntax::Xml).find("<function="),
            std::string::npos);
  EXPECT_NE(error_of("<tool_call>\n<function=f>\n<parameter=a>\n1\n</function>\n</tool_call>", ToolCallSyntax::Xml)
                .find("not closed"),
            std::string::npos);
  // Without tools, the tags are only text.
  EXPECT_EQ(error_of("<tool_call>", ToolCallSyntax::None), "(parsed)");
}

}  // namespace
}  // namespace easel
