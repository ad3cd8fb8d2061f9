// A safe reader for Python pickles (https://github.com/python/cpython/blob/main/Lib/pickletools.py
// documents every opcode). It is a stack machine over the data opcodes, and it never calls
// anything: a pickle names callables (GLOBAL, STACK_GLOBAL, INST) and applies them (REDUCE, NEWOBJ,
// OBJ); each name is first checked by the caller's `allowed` rule, which refuses anything it does
// not know, and each application is handed to the caller's `call`, which interprets it as plain
// data (e.g. torch's _rebuild_tensor_v2 becomes a tensor description). Depth, stack and size are
// bounded, and a malformed pickle is an error, never a crash.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace easel::pickle {

enum class Kind : uint8_t { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Custom };
std::string_view kind_name(Kind kind);

struct Object;

// A value: scalars inline, everything else a pointer into its Document's arena (so values copy
// cheaply, and shared or even cyclic references cannot leak).
struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;  // Bool, Int
  double f = 0;   // Float
  Object* obj = nullptr;

  bool is(Kind k) const { return kind == k; }
  // String, Bytes, and Global ("module.name") text.
  const std::string& text() const;
  // Tuple and List items; Dict items as key, value, key, value, ...
  const std::vector<Value>& items() const;
  // The caller's own objects (see Document::custom).
  const std::any& custom() const;
};

struct Object {
  std::string text;
  std::vector<Value> items;
  std::any custom;
  int depth = 0;  // nesting below this object, as built
};

// The result of unpickling: the root value and the arena that owns everything it refers to.
class Document {
 public:
  Value root;

  Value string(std::string text, Kind kind = Kind::String);
  Value tuple(std::vector<Value> items);
  Value dict();
  Value custom(std::any value);

 private:
  friend class Unpickler;
  Object* make(Kind kind, Value& out);
  std::vector<std::unique_ptr<Object>> arena_;
};

struct Rules {
  // May the pickle refer to module.name? (Checked when the name is read, before any use.)
  std::function<bool(std::string_view module, std::string_view name)> allowed;
  // Interprets callable(args) for an allowed callable ("module.name") as data.
  std::function<Result<Value>(Document& doc, const std::string& callable, std::span<const Value> args)> call;
  // Interprets a persistent id (BINPERSID), e.g. torch's ('storage', type, key, location, numel).
  std::function<Result<Value>(Document& doc, const Value& pid)> persistent_load;
};

struct Limits {
  int max_depth = 200;             // nesting of tuples, lists and dicts
  size_t max_stack = 1u << 22;     // values on the stack
  uint64_t max_text = 1ull << 30;  // bytes of one string
};

// Reads one pickle. Errors say what is wrong and where ("at byte 1234"); a refused callable is
// "refuses to load: the pickle calls os.system, which a checkpoint never needs (this file may be
// malicious)". The caller prefixes the file name.
Result<Document> unpickle(std::span<const std::byte> bytes, const Rules& rules, const Limits& limits = {});

}  // namespace easel::pickle
