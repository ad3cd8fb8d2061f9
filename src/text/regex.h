// A small owner of one compiled PCRE2 pattern, with the two calls the text code needs: search
// from an offset and match at an offset. Patterns are compiled once (static locals) by the users.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace easel::text {

struct RegexMatch {
  size_t begin = 0, end = 0;  // byte offsets into the subject
};

class Regex {
 public:
  enum Flags : uint32_t {
    kUtf = 1,         // UTF-8 subject and pattern, Unicode properties (PCRE2_UTF | PCRE2_UCP)
    kExtended = 2,    // Python's re.VERBOSE
    kCaseless = 4,    // IGNORECASE
    kAnchored = 8,    // match only at the start offset
  };
  // Throws easel::Exception when the pattern does not compile (a bug: patterns are constants).
  Regex(std::string_view pattern, uint32_t flags);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // First match starting at or after `from`; false when none. With kUtf the subject must be valid
  // UTF-8 (it is not checked again on every call).
  bool search(std::string_view subject, size_t from, RegexMatch* m) const;
  // A match starting exactly at `at`.
  bool match_at(std::string_view subject, size_t at, RegexMatch* m) const;

 private:
  bool run(std::string_view subject, size_t from, uint32_t options, RegexMatch* m) const;
  void* code_ = nullptr;  // pcre2_code*
  bool utf_ = false;
};

}  // namespace easel::text
