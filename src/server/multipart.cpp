#include "server/multipart.h"

#include <algorithm>
#include <cctype>

#include "server/header_text.h"

namespace easel::server {

namespace {

// `key=value` / `key="quoted \" value"` parameters after the first ';' of a header value.
std::string header_param(std::string_view value, std::string_view key) {
  size_t i = value.find(';');
  while (i != std::string_view::npos && i < value.size()) {
    ++i;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    const size_t eq = value.find('=', i);
    if (eq == std::string_view::npos) return "";
    const std::string name = ascii_lower(trim_blanks(value.substr(i, eq - i)));
    size_t j = eq + 1;
    std::string v;
    if (j < value.size() && value[j] == '"') {
      for (++j; j < value.size() && value[j] != '"'; ++j) {
        if (value[j] == '\\' && j + 1 < value.size()) ++j;
        v += value[j];
      }
      if (j < value.size()) ++j;  // closing quote
    } else {
      const size_t end = std::min(value.find(';', j), value.size());
      v = std::string(trim_blanks(value.substr(j, end - j)));
      j = end;
    }
    if (name == key) return v;
    i = value.find(';', j);
  }
  return "";
}

}  // namespace

Result<std::string> multipart_boundary(std::string_view content_type) {
  const size_t semi = content_type.find(';');
  if (ascii_lower(trim_blanks(content_type.substr(0, semi))) != "multipart/form-data")
    return Error("expected a multipart/form-data body (Content-Type is '" + std::string(content_type) + "')");
  const std::string boundary = header_param(content_type, "boundary");
  // RFC 2046: 1 to 70 characters; no CR/LF (they would end the delimiter line).
  if (boundary.empty() || boundary.size() > 70 || boundary.find_first_of("\r\n") != std::string::npos)
    return Error("the multipart/form-data Content-Type has no valid boundary");
  return boundary;
}

Result<std::vector<MultipartPart>> parse_multipart(std::string_view body, std::string_view content_type,
                                                   const MultipartLimits& limits) {
  EASEL_TRY(const std::string boundary, multipart_boundary(content_type));
  const std::string delimiter = "--" + boundary;
  const std::string next_delimiter = "\r\n" + delimiter;
  // The first delimiter opens the body or follows a preamble line.
  size_t pos;
  if (body.substr(0, delimiter.size()) == delimiter) pos = delimiter.size();
  else if (size_t d = body.find(next_delimiter); d != std::string_view::npos) pos = d + next_delimiter.size();
  else return Error("multipart body: the boundary never appears");

  std::vector<MultipartPart> parts;
  for (;;) {
    // After a delimiter: "--" closes the body; otherwise (optional whitespace) CRLF opens a part.
    if (body.substr(pos, 2) == "--") return parts;
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") return Error("multipart body: malformed or truncated after a boundary");
    pos += 2;
    if (parts.size() >= limits.max_parts)
      return Error("multipart body: more than " + std::to_string(limits.max_parts) + " parts");

    const size_t headers_end = body.find("\r\n\r\n", pos);
    const bool no_headers = body.substr(pos, 2) == "\r\n";  // a part may have an empty header block
    if (!no_headers && headers_end == std::string_view::npos) return Error("multipart body: a part's headers are truncated");
    const size_t header_len = no_headers ? 0 : headers_end - pos;
    if (header_len > limits.max_header_bytes) return Error("multipart body: a part's headers are too long");
    MultipartPart part;
    bool disposition = false;
    std::string_view headers = body.substr(pos, header_len);
    while (!headers.empty()) {
      const size_t eol = headers.find("\r\n");
      const std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) return Error("multipart body: a part header has no ':'");
      const std::string name = ascii_lower(trim_blanks(line.substr(0, colon)));
      const std::string_view value = trim_blanks(line.substr(colon + 1));
      if (name == "content-disposition") {
        if (ascii_lower(trim_blanks(value.substr(0, value.find(';')))) != "form-data")
          return Error("multipart body: a part's Content-Disposition is not form-data");
        part.name = header_param(value, "name");
        part.filename = header_param(value, "filename");
        disposition = true;
      } else if (name == "content-type") {
        part.content_type = std::string(value);
      }
    }
    if (!disposition || part.name.empty()) return Error("multipart body: a part has no Content-Disposition name");
    pos += header_len + (no_headers ? 2 : 4);

    const size_t end = body.find(next_delimiter, pos);
    if (end == std::string_view::npos)
      return Error("multipart body: part '" + part.name + "' is truncated (no closing boundary)");
    part.data = body.substr(pos, end - pos);
    parts.push_back(std::move(part));
    pos = end + next_delimiter.size();
  }
}

}  // namespace easel::server
