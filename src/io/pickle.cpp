#include "io/pickle.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_map>

namespace easel::pickle {

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Custom: return "object";
  }
  return "?";
}

namespace {
const std::string kNoText;
const std::vector<Value> kNoItems;
const std::any kNoCustom;

bool is_container(const Value& v) { return v.kind == Kind::Tuple || v.kind == Kind::List || v.kind == Kind::Dict; }
int depth_of(const Value& v) { return is_container(v) && v.obj ? v.obj->depth : 0; }

// A name as it may appear in a message: printable, bounded.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 200) out += "...";
  return out;
}
}  // namespace

const std::string& Value::text() const { return obj ? obj->text : kNoText; }
const std::vector<Value>& Value::items() const { return obj ? obj->items : kNoItems; }
const std::any& Value::custom() const { return obj ? obj->custom : kNoCustom; }

Object* Document::make(Kind kind, Value& out) {
  arena_.push_back(std::make_unique<Object>());
  out = Value{kind, 0, 0, arena_.back().get()};
  return arena_.back().get();
}

Value Document::string(std::string text, Kind kind) {
  Value v;
  make(kind, v)->text = std::move(text);
  return v;
}

Value Document::tuple(std::vector<Value> items) {
  Value v;
  Object* o = make(Kind::Tuple, v);
  for (const Value& item : items) o->depth = std::max(o->depth, depth_of(item) + 1);
  o->items = std::move(items);
  return v;
}

Value Document::dict() {
  Value v;
  make(Kind::Dict, v);
  return v;
}

Value Document::custom(std::any value) {
  Value v;
  make(Kind::Custom, v)->custom = std::move(value);
  return v;
}

class Unpickler {
 public:
  Unpickler(std::span<const std::byte> bytes, const Rules& rules, const Limits& limits)
      : bytes_(bytes), rules_(rules), limits_(limits) {}

  Result<Document> run() {
    while (true) {
      if (pos_ >= bytes_.size()) return fail("the pickle ends without a STOP opcode (truncated?)");
      op_at_ = pos_;
      const uint8_t op = static_cast<uint8_t>(bytes_[pos_++]);
      if (op == '.') {
        EASEL_TRY(doc_.root, pop());
        return std::move(doc_);
      }
      EASEL_TRY_STATUS(step(op));
      if (stack_.size() > limits_.max_stack || marks_.size() > limits_.max_stack)
        return fail(cat("the pickle's stack grows past ", limits_.max_stack, " values"));
    }
  }

 private:
  Error fail(const std::string& what) const { return Error(cat(what, " (at byte ", op_at_, " of the pickle)")); }

  // --- reading the opcode's arguments ---
  Result<uint64_t> uint(int n) {
    if (bytes_.size() - pos_ < static_cast<size_t>(n)) return fail("the pickle ends inside an opcode (truncated?)");
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes_[pos_ + i]);
    pos_ += n;
    return v;
  }
  Result<std::string> raw(uint64_t n) {
    if (n > limits_.max_text) return fail(cat("a string of ", n, " bytes is over the limit"));
    if (bytes_.size() - pos_ < n) return fail(cat("a string of ", n, " bytes runs past the end of the pickle"));
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  Result<std::string> line() {
    const auto* begin = reinterpret_cast<const char*>(bytes_.data() + pos_);
    const auto* nl = static_cast<const char*>(std::memchr(begin, '\n', bytes_.size() - pos_));
    if (!nl) return fail("the pickle ends inside a text line (truncated?)");
    std::string s(begin, nl);
    pos_ += s.size() + 1;
    return s;
  }

  // --- the stack; MARK starts a frame that later opcodes cannot reach below (as in CPython) ---
  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  Result<Value> pop() {
    if (stack_.size() <= base()) return fail("stack underflow: the pickle is malformed");
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Result<Value*> top() {
    if (stack_.size() <= base()) return fail("stack underflow: the pickle is malformed");
    return &stack_.back();
  }
  Result<std::vector<Value>> pop_mark() {
    if (marks_.empty()) return fail("the pickle closes a MARK it never opened");
    const size_t from = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(stack_.begin() + static_cast<std::ptrdiff_t>(from), stack_.end());
    stack_.resize(from);
    return items;
  }
  void push(Value v) { stack_.push_back(v); }

  // --- building ---
  Status grow(Object* parent, const Value& child) {
    parent->depth = std::max(parent->depth, depth_of(child) + 1);
    if (parent->depth > limits_.max_depth) return fail(cat("the pickle nests more than ", limits_.max_depth, " levels deep"));
    return {};
  }
  Result<Value> make_tuple(std::vector<Value> items) {
    Value v = doc_.tuple(std::move(items));
    if (v.obj->depth > limits_.max_depth) return fail(cat("the pickle nests more than ", limits_.max_depth, " levels deep"));
    return v;
  }
  Result<Value> make_list(Kind kind, std::vector<Value> items) {
    Value v;
    Object* o = doc_.make(kind, v);
    for (const Value& item : items) {
      EASEL_TRY_STATUS(grow(o, item));
    }
    o->items = std::move(items);
    return v;
  }
  Status extend(std::span<const Value> items) {  // APPEND(S), ADDITEMS
    EASEL_TRY(Value* list, top());
    if (!list->is(Kind::List)) return fail(cat("the pickle appends to a ", kind_name(list->kind), ", not a list"));
    for (const Value& item : items) {
      EASEL_TRY_STATUS(grow(list->obj, item));
      list->obj->items.push_back(item);
    }
    return {};
  }
  Status set_items(std::span<const Value> items) {  // SETITEM(S)
    if (items.size() % 2) return fail("the pickle sets a dict item without a value");
    EASEL_TRY(Value* dict, top());
    if (!dict->is(Kind::Dict)) return fail(cat("the pickle sets an item of a ", kind_name(dict->kind), ", not a dict"));
    for (const Value& item : items) {
      EASEL_TRY_STATUS(grow(dict->obj, item));
      dict->obj->items.push_back(item);
    }
    return {};
  }
  Status put(uint64_t index) {
    EASEL_TRY(Value* v, top());
    memo_[index] = *v;
    return {};
  }
  Status get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) return fail(cat("the pickle refers to memo entry ", index, ", which it never stored"));
    push(it->second);
    return {};
  }
  Status global(std::string module, const std::string& name) {
    if (module == "__builtin__") module = "builtins";  // Python 2 names, mapped as CPython does
    if (module == "copy_reg") module = "copyreg";
    if (!rules_.allowed || !rules_.allowed(module, name))
      return Error(cat("refuses to load: the pickle calls ", printable(module), ".", printable(name),
                       ", which a checkpoint never needs (this file may be malicious)"));
    push(doc_.string(module + "." + name, Kind::Global));
    return {};
  }
  Status call(const Value& callable, std::vector<Value> args) {
    if (!callable.is(Kind::Global))
      return fail(cat("the pickle calls a ", kind_name(callable.kind), ", which is not a callable"));
    if (!rules_.call) return fail("the pickle calls " + callable.text() + ", which is not supported");
    auto result = rules_.call(doc_, callable.text(), args);
    if (!result.ok()) return fail(result.error().message());
    push(*result);
    return {};
  }
  Status call_with_tuple(const Value& callable, const Value& args) {
    if (!callable.is(Kind::Global))
      return fail(cat("the pickle calls a ", kind_name(callable.kind), ", which is not a callable"));
    if (!args.is(Kind::Tuple)) return fail(cat("the pickle calls ", callable.text(), " with a ", kind_name(args.kind), " for arguments"));
    return call(callable, args.items());
  }
  Status persistent(const Value& pid) {
    if (!rules_.persistent_load) return fail("the pickle refers to external data, which is not supported here");
    auto result = rules_.persistent_load(doc_, pid);
    if (!result.ok()) return fail(result.error().message());
    push(*result);
    return {};
  }

  Status step(uint8_t op);

  std::span<const std::byte> bytes_;
  const Rules& rules_;
  const Limits& limits_;
  size_t pos_ = 0, op_at_ = 0;
  Document doc_;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value> memo_;
};

Status Unpickler::step(uint8_t op) {
  switch (op) {
    case 0x80: {  // PROTO
      EASEL_TRY(uint64_t proto, uint(1));
      if (proto > 5) return fail(cat("pickle protocol ", proto, " is newer than any known (5)"));
      return {};
    }
    case 0x95: {  // FRAME: a length hint only
      EASEL_TRY(uint64_t len, uint(8));
      (void)len;
      return {};
    }
    case '(': marks_.push_back(stack_.size()); return {};  // MARK
    case '0': {  // POP (of an empty frame: its MARK)
      if (stack_.size() > base()) {
        stack_.pop_back();
        return {};
      }
      EASEL_TRY(auto items, pop_mark());
      return {};
    }
    case '1': {  // POP_MARK
      EASEL_TRY(auto items, pop_mark());
      return {};
    }
    case '2': {  // DUP
      EASEL_TRY(Value* v, top());
      push(*v);
      return {};
    }
    case 'N': push(Value{}); return {};
    case 0x88: push(Value{Kind::Bool, 1}); return {};
    case 0x89: push(Value{Kind::Bool, 0}); return {};
    case 'J': {  // BININT
      EASEL_TRY(uint64_t v, uint(4));
      push(Value{Kind::Int, static_cast<int32_t>(static_cast<uint32_t>(v))});
      return {};
    }
    case 'K': {  // BININT1
      EASEL_TRY(uint64_t v, uint(1));
      push(Value{Kind::Int, static_cast<int64_t>(v)});
      return {};
    }
    case 'M': {  // BININT2
      EASEL_TRY(uint64_t v, uint(2));
      push(Value{Kind::Int, static_cast<int64_t>(v)});
      return {};
    }
    case 0x8a:    // LONG1
    case 0x8b: {  // LONG4
      EASEL_TRY(uint64_t n, uint(op == 0x8a ? 1 : 4));
      if (n > 8) return fail(cat("an integer of ", n, " bytes is too large"));
      EASEL_TRY(uint64_t v, uint(static_cast<int>(n)));
      if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
      push(Value{Kind::Int, static_cast<int64_t>(v)});
      return {};
    }
    case 'G': {  // BINFLOAT, big-endian
      EASEL_TRY(uint64_t bits, uint(8));
      bits = __builtin_bswap64(bits);
      push(Value{Kind::Float, 0, std::bit_cast<double>(bits)});
      return {};
    }
    case 'X': case 0x8c: case 0x8d:  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
    case 'T': case 'U':              // BINSTRING, SHORT_BINSTRING (protocol 1 text)
    case 'B': case 'C': case 0x8e: case 0x96: {  // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
      const int width = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
      EASEL_TRY(uint64_t n, uint(width));
      if (op == 'T' && n >= 0x80000000u) return fail("a string of negative length");
      EASEL_TRY(std::string s, raw(n));
      const bool bytes = op == 'B' || op == 'C' || op == 0x8e || op == 0x96;
      push(doc_.string(std::move(s), bytes ? Kind::Bytes : Kind::String));
      return {};
    }
    case ')': {  // EMPTY_TUPLE
      EASEL_TRY(Value v, make_tuple({}));
      push(v);
      return {};
    }
    case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
      std::vector<Value> items(op - 0x84);
      for (size_t i = items.size(); i-- > 0;) {
        EASEL_TRY(items[i], pop());
      }
      EASEL_TRY(Value v, make_tuple(std::move(items)));
      push(v);
      return {};
    }
    case 't': {  // TUPLE
      EASEL_TRY(auto items, pop_mark());
      EASEL_TRY(Value v, make_tuple(std::move(items)));
      push(v);
      return {};
    }
    case ']': case 0x8f: {  // EMPTY_LIST, EMPTY_SET (a set is read as a list)
      EASEL_TRY(Value v, make_list(Kind::List, {}));
      push(v);
      return {};
    }
    case 'l': case 0x91: {  // LIST, FROZENSET
      EASEL_TRY(auto items, pop_mark());
      EASEL_TRY(Value v, make_list(Kind::List, std::move(items)));
      push(v);
      return {};
    }
    case '}': {  // EMPTY_DICT
      EASEL_TRY(Value v, make_list(Kind::Dict, {}));
      push(v);
      return {};
    }
    case 'd': {  // DICT
      EASEL_TRY(auto items, pop_mark());
      if (items.size() % 2) return fail("the pickle builds a dict from an odd number of values");
      EASEL_TRY(Value v, make_list(Kind::Dict, std::move(items)));
      push(v);
      return {};
    }
    case 'a': {  // APPEND
      EASEL_TRY(Value v, pop());
      return extend({&v, 1});
    }
    case 'e': case 0x90: {  // APPENDS, ADDITEMS
      EASEL_TRY(auto items, pop_mark());
      return extend(items);
    }
    case 's': {  // SETITEM
      EASEL_TRY(Value v, pop());
      EASEL_TRY(Value k, pop());
      const Value kv[2] = {k, v};
      return set_items(kv);
    }
    case 'u': {  // SETITEMS
      EASEL_TRY(auto items, pop_mark());
      return set_items(items);
    }
    case 'h': { EASEL_TRY(uint64_t i, uint(1)); return get(i); }   // BINGET
    case 'j': { EASEL_TRY(uint64_t i, uint(4)); return get(i); }   // LONG_BINGET
    case 'q': { EASEL_TRY(uint64_t i, uint(1)); return put(i); }   // BINPUT
    case 'r': { EASEL_TRY(uint64_t i, uint(4)); return put(i); }   // LONG_BINPUT
    case 0x94: return put(memo_.size());                            // MEMOIZE
    case 'c': case 'i': {  // GLOBAL, INST: "module\nname\n"
      EASEL_TRY(std::string module, line());
      EASEL_TRY(std::string name, line());
      EASEL_TRY_STATUS(global(module, name));
      if (op == 'c') return {};
      EASEL_TRY(Value callable, pop());
      EASEL_TRY(auto args, pop_mark());
      return call(callable, std::move(args));
    }
    case 0x93: {  // STACK_GLOBAL
      EASEL_TRY(Value name, pop());
      EASEL_TRY(Value module, pop());
      if (!name.is(Kind::String) || !module.is(Kind::String))
        return fail("STACK_GLOBAL needs a module and a name as strings");
      return global(module.text(), name.text());
    }
    case 'o': {  // OBJ: MARK callable args...
      EASEL_TRY(auto items, pop_mark());
      if (items.empty()) return fail("OBJ without a class");
      const Value callable = items.front();
      items.erase(items.begin());
      return call(callable, std::move(items));
    }
    case 'R': case 0x81: {  // REDUCE, NEWOBJ
      EASEL_TRY(Value args, pop());
      EASEL_TRY(Value callable, pop());
      return call_with_tuple(callable, args);
    }
    case 0x92: {  // NEWOBJ_EX
      EASEL_TRY(Value kwargs, pop());
      EASEL_TRY(Value args, pop());
      EASEL_TRY(Value callable, pop());
      if (!kwargs.is(Kind::Dict) || !kwargs.items().empty())
        return fail("the pickle calls " + callable.text() + " with keyword arguments, which is not supported");
      return call_with_tuple(callable, args);
    }
    case 'b': {  // BUILD: sets an object's attributes; we keep data only, so the state is dropped
      EASEL_TRY(Value state, pop());
      EASEL_TRY(Value* target, top());
      (void)state;
      (void)target;
      return {};
    }
    case 'Q': {  // BINPERSID
      EASEL_TRY(Value pid, pop());
      return persistent(pid);
    }
    case 'P': {  // PERSID
      EASEL_TRY(std::string pid, line());
      return persistent(doc_.string(std::move(pid)));
    }
    default:
      return fail(cat("unsupported pickle opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15],
                      " (not a checkpoint, or a corrupt one)"));
  }
}

Result<Document> unpickle(std::span<const std::byte> bytes, const Rules& rules, const Limits& limits) {
  return Unpickler(bytes, rules, limits).run();
}

}  // namespace easel::pickle
