// What a Qwen model's generated text means for the OpenAI chat API: its reasoning
// (`<think>…</think>`, reported apart as `reasoning_content`), its answer, and its tool calls in
// the syntax of its chat template:
//   Qwen3 / Qwen3-VL (JSON):     <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
//   Qwen3.5 / Qwen3-Coder (XML): <tool_call>\n<function=f>\n<parameter=a>\nvalue\n</parameter>\n</function>\n</tool_call>
// A template whose generation prompt ends in `<think>\n` (Qwen3.5's default) leaves the opening tag
// in the prompt: the output then starts inside the reasoning.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel::text {

enum class ToolCallSyntax { None, Json, Xml };

struct AssistantOutputFormat {
  bool split_reasoning = true;   // report <think> text as reasoning (else it stays in the content)
  bool thinking_open = false;    // the prompt ended inside <think>
  ToolCallSyntax tools = ToolCallSyntax::None;
};

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object, as text (OpenAI's function.arguments)
};

struct AssistantMessage {
  std::string reasoning;  // empty when none
  std::string content;
  std::vector<ToolCall> tool_calls;
};

// The whole output of one generation. A tool call that does not parse is an error naming it (the
// API answers with the raw text as content instead, as llama.cpp does).
Result<AssistantMessage> parse_assistant_output(std::string_view text, const AssistantOutputFormat& format);

}  // namespace easel::text
