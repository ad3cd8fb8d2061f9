#include "text/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

namespace easel::text {

Regex::Regex(std::string_view pattern, uint32_t flags) : utf_(flags & kUtf) {
  uint32_t options = 0;
  if (flags & kUtf) options |= PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;
  if (flags & kExtended) options |= PCRE2_EXTENDED;
  if (flags & kCaseless) options |= PCRE2_CASELESS;
  if (flags & kAnchored) options |= PCRE2_ANCHORED;
  pcre2_compile_context* ctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);  // Python: '.' and '$' know only '\n'
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err,
                        &err_offset, ctx);
  pcre2_compile_context_free(ctx);
  if (!code_) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    throw Exception(cat("regex does not compile at offset ", err_offset, ": ",
                        reinterpret_cast<const char*>(buf)));
  }
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool Regex::run(std::string_view subject, size_t from, uint32_t options, RegexMatch* m) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  // Subjects are valid UTF-8 by construction (they come from UTF-32 in this module).
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), from,
                             options | (utf_ ? PCRE2_NO_UTF_CHECK : 0), md, nullptr);
  bool found = rc > 0;
  if (found) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    m->begin = ov[0];
    m->end = ov[1];
  } else if (rc != PCRE2_ERROR_NOMATCH) {
    pcre2_match_data_free(md);
    throw Exception(cat("regex match failed with PCRE2 error ", rc));
  }
  pcre2_match_data_free(md);
  return found;
}

bool Regex::search(std::string_view subject, size_t from, RegexMatch* m) const {
  return run(subject, from, 0, m);
}

bool Regex::match_at(std::string_view subject, size_t at, RegexMatch* m) const {
  return run(subject, at, PCRE2_ANCHORED, m);
}

}  // namespace easel::text
