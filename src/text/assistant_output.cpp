#include "text/assistant_output.h"

#include <nlohmann/json.hpp>

namespace easel::text {
namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kCallOpen = "<tool_call>", kCallClose = "</tool_call>";

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// The template writes a value between newlines: `>\nvalue\n<`; the value is what is inside.
std::string_view strip_one_newline(std::string_view s) {
  if (s.starts_with('\n')) s.remove_prefix(1);
  if (s.ends_with('\n')) s.remove_suffix(1);
  return s;
}

Result<ToolCall> json_call(std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string())
    return Error(cat("tool call '", body.substr(0, 200), "' is not {\"name\": ..., \"arguments\": {...}}"));
  const nlohmann::json args = j.value("arguments", nlohmann::json::object());
  // Some models write the arguments as a JSON string already.
  return ToolCall{j["name"].get<std::string>(), args.is_string() ? args.get<std::string>() : args.dump()};
}

// <function=NAME> <parameter=ARG>value</parameter>... </function>. A value that reads as JSON
// (number, true, an object...) is that value; anything else is a string.
Result<ToolCall> xml_call(std::string_view body) {
  body = trim(body);
  constexpr std::string_view kFn = "<function=", kFnEnd = "</function>", kParam = "<parameter=", kParamEnd = "</parameter>";
  if (!body.starts_with(kFn)) return Error(cat("tool call '", body.substr(0, 200), "' has no <function=...>"));
  const size_t name_end = body.find('>');
  if (name_end == std::string_view::npos) return Error(cat("tool call '", body.substr(0, 200), "': <function= is not closed"));
  ToolCall call{std::string(trim(body.substr(kFn.size(), name_end - kFn.size()))), {}};
  if (call.name.empty()) return Error(cat("tool call '", body.substr(0, 200), "' names no function"));
  std::string_view rest = body.substr(name_end + 1);
  nlohmann::json args = nlohmann::json::object();
  for (size_t at = rest.find(kParam); at != std::string_view::npos; at = rest.find(kParam)) {
    const size_t key_end = rest.find('>', at);
    const size_t value_end = rest.find(kParamEnd, key_end);
    if (key_end == std::string_view::npos || value_end == std::string_view::npos)
      return Error(cat("tool call ", call.name, ": a <parameter=...> is not closed"));
    const std::string key(trim(rest.substr(at + kParam.size(), key_end - at - kParam.size())));
    const std::string value(strip_one_newline(rest.substr(key_end + 1, value_end - key_end - 1)));
    nlohmann::json parsed = nlohmann::json::parse(value, nullptr, false);
    args[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
    rest = rest.substr(value_end + kParamEnd.size());
  }
  if (trim(rest) != kFnEnd) return Error(cat("tool call ", call.name, ": text after the parameters is not </function>"));
  call.arguments = args.dump();
  return call;
}

}  // namespace

Result<AssistantMessage> parse_assistant_output(std::string_view text, const AssistantOutputFormat& format) {
  AssistantMessage m;
  if (format.split_reasoning) {
    const std::string_view lead = trim(text);
    const bool opened = format.thinking_open || lead.starts_with(kThinkOpen);
    const size_t close = text.find(kThinkClose);
    if (opened && close != std::string_view::npos) {
      std::string_view reasoning = text.substr(0, close);
      if (const size_t open = reasoning.find(kThinkOpen); open != std::string_view::npos)
        reasoning = reasoning.substr(open + kThinkOpen.size());
      m.reasoning = std::string(trim(reasoning));
      text = text.substr(close + kThinkClose.size());
    } else if (opened) {  // stopped (length, stop string) while still thinking
      std::string_view reasoning = lead.starts_with(kThinkOpen) ? lead.substr(kThinkOpen.size()) : text;
      m.reasoning = std::string(trim(reasoning));
      return m;
    }
  }
  if (format.tools == ToolCallSyntax::None) {
    m.content = std::string(trim(text));
    return m;
  }
  std::string content;
  size_t at = 0;
  for (size_t open = text.find(kCallOpen); open != std::string_view::npos; open = text.find(kCallOpen, at)) {
    content += text.substr(at, open - at);
    const size_t body = open + kCallOpen.size();
    const size_t close = text.find(kCallClose, body);
    if (close == std::string_view::npos) return Error("a <tool_call> is not closed (the output ended inside it)");
    auto call = format.tools == ToolCallSyntax::Json ? json_call(trim(text.substr(body, close - body)))
                                                     : xml_call(text.substr(body, close - body));
    if (!call.ok()) return call.error();
    m.tool_calls.push_back(std::move(*call));
    at = close + kCallClose.size();
  }
  content += text.substr(at);
  m.content = std::string(trim(content));
  return m;
}

}  // namespace easel::text
