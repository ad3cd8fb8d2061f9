// Errors as values. Anything that can fail because of user input (a file, a request, a checkpoint)
// returns Result<T>; the message says what went wrong in words a user can act on, e.g.
// "model.safetensors: tensor 'x' needs 1.2 MB but the file ends at 800 kB".
//
// Ops check their preconditions once, in the op front end, and throw easel::Exception when they
// are violated (a bug or a mis-shaped weight the loader should have caught). The pipeline and CLI
// boundaries catch it and turn it back into an Error, so nothing crashes.
#pragma once

#include <new>
#include <sstream>
#include <type_traits>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace easel {

// Concatenates anything streamable into one string: cat("tensor '", name, "' has ", n, " dims").
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

class Error {
 public:
  explicit Error(std::string message) : message_(std::move(message)) {}
  const std::string& message() const { return message_; }
  // "what we were doing: the original message"
  Error context(const std::string& what) const { return Error(what + ": " + message_); }

 private:
  std::string message_;
};

class Exception : public std::runtime_error {
 public:
  explicit Exception(const Error& error) : std::runtime_error(error.message()) {}
  explicit Exception(const std::string& message) : std::runtime_error(message) {}
  Error error() const { return Error(what()); }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return std::get<1>(v_); }

  // Accessing the value of a failed result throws the error: a bug, but never undefined behaviour.
  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void check() const {
    if (!ok()) throw Exception(error());
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }
  void value() const {
    if (!ok_) throw Exception(error_);
  }

 private:
  Error error_{""};
  bool ok_ = true;
};

using Status = Result<void>;

template <class T>
struct is_result : std::false_type {};
template <class T>
struct is_result<Result<T>> : std::true_type {};

// Runs f, turning an easel::Exception (or any std::exception) into an Error. Used at the
// boundaries (pipeline, CLI, server) so that a failed op never escapes as a crash. f may return a
// plain value, void, or a Result (which is passed through).
template <class F>
auto catch_errors(F&& f) {
  using R = decltype(f());
  using Out = std::conditional_t<is_result<R>::value, R, Result<R>>;
  try {
    if constexpr (std::is_void_v<R>) {
      f();
      return Out{};
    } else {
      return Out(f());
    }
  } catch (const std::bad_alloc&) {
    return Out(Error("out of memory"));
  } catch (const std::exception& e) {
    return Out(Error(e.what()));
  }
}

}  // namespace easel

// Precondition check for op front ends: EASEL_CHECK(x.dim() == 4, "conv2d: input must be NCHW, got ", x.describe());
#define EASEL_CHECK(cond, ...)                                   \
  do {                                                           \
    if (!(cond)) throw ::easel::Exception(::easel::cat(__VA_ARGS__)); \
  } while (0)

// Propagates a failed Result from the enclosing function: EASEL_TRY(auto file, SafetensorsFile::open(p));
#define EASEL_CONCAT_INNER(a, b) a##b
#define EASEL_CONCAT(a, b) EASEL_CONCAT_INNER(a, b)
#define EASEL_TRY(decl, expr) EASEL_TRY_IMPL(EASEL_CONCAT(easel_result_, __LINE__), decl, expr)
#define EASEL_TRY_IMPL(tmp, decl, expr)          \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.error();             \
  decl = std::move(tmp).value()
#define EASEL_TRY_STATUS(expr)                   \
  do {                                           \
    auto easel_status = (expr);                  \
    if (!easel_status.ok()) return easel_status.error(); \
  } while (0)
