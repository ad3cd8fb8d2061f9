// PNG through libpng's classic API (the simplified png_image_* API cannot read text chunks).
//
// libpng reports errors by longjmp-ing to a setjmp point. A longjmp must not skip a C++ frame that
// owns objects with destructors, so every libpng call that can fail runs inside a small "stage"
// function (read_header, read_pixels, write_png) that owns nothing but plain pointers; the C++
// objects (the pixel vector, the row pointers, the text strings, the RAII handle that destroys the
// libpng structs) live in the caller, which only ever sees a bool. The callbacks libpng calls
// (reading from memory, writing to a vector, errors) own nothing either.
#include <png.h>

#include <algorithm>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "io/image_codecs.h"

namespace easel::detail {
namespace {

constexpr size_t kMessageSize = 256;

// The error callback's pointer: where the message goes.
void on_png_error(png_structp png, png_const_charp message) {
  auto* buffer = static_cast<char*>(png_get_error_ptr(png));
  std::snprintf(buffer, kMessageSize, "%s", message ? message : "unknown error");
  png_longjmp(png, 1);
}

// libpng warns about damaged ancillary chunks (bad CRC, bad gamma...) and drops them; the image is
// still good, so decode it quietly rather than printing to stderr.
void on_png_warning(png_structp, png_const_charp) {}

// ---- text: tEXt and zTXt are Latin-1, iTXt is UTF-8 ----

std::string latin1_to_utf8(std::string_view latin1) {
  std::string out;
  out.reserve(latin1.size());
  for (unsigned char c : latin1) {
    if (c < 0x80) {
      out += char(c);
    } else {
      out += char(0xC0 | (c >> 6));
      out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// The Latin-1 bytes of `utf8` when every character is below U+0100; nullopt otherwise (including
// when it is not UTF-8 at all).
std::optional<std::string> utf8_to_latin1(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size(); ++i) {
    const unsigned char c = utf8[i];
    if (c < 0x80) {
      out += char(c);
    } else if ((c == 0xC2 || c == 0xC3) && i + 1 < utf8.size() && (uint8_t(utf8[i + 1]) & 0xC0) == 0x80) {
      out += char(((c & 0x03) << 6) | (uint8_t(utf8[i + 1]) & 0x3F));
      ++i;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

// Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), as iTXt requires.
bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int extra = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; min = 0x10000; }
    else return false;
    if (i + extra >= s.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      const unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// ---- reading ----

// What the read stages and callbacks share. Plain data only (see the top of the file).
struct PngReader {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  bool truncated = false;  // the file ended before libpng was done: say "truncated", not "invalid"
  char message[kMessageSize] = {};
};

void read_from_memory(png_structp png, png_bytep out, size_t count) {
  auto* reader = static_cast<PngReader*>(png_get_io_ptr(png));
  if (count > reader->size - reader->pos) {
    reader->truncated = true;
    png_error(png, "unexpected end of data");
  }
  std::memcpy(out, reader->data + reader->pos, count);
  reader->pos += count;
}

// Stage 1: the chunks before the first IDAT, which hold the size. Nothing big is allocated yet.
bool read_header(PngReader* r) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_set_read_fn(r->png, r, read_from_memory);
  png_read_info(r->png, r->info);
  return true;
}

// Stage 2: converts to 8-bit RGB(A) and decodes into `rows`, each `row_bytes` long, then reads the
// chunks after IDAT (text may come there too).
bool read_pixels(PngReader* r, png_bytep* rows, size_t row_bytes) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_set_expand(r->png);  // palette -> RGB, gray of 1/2/4 bits -> 8 bits, tRNS -> alpha
  // 16 -> 8 bits keeps the high byte, as PIL does for 16-bit RGB(A), so that an init image decodes
  // to the same pixels as in A1111 / SD.Next. (PIL clips 16-bit gray to 255 instead, a PIL quirk
  // not worth copying: we take the high byte there too.)
  png_set_strip_16(r->png);
  png_set_gray_to_rgb(r->png);
  png_set_interlace_handling(r->png);
  png_read_update_info(r->png, r->info);
  if (png_get_rowbytes(r->png, r->info) != row_bytes) png_error(r->png, "unexpected row size after conversion");
  png_read_image(r->png, rows);
  png_read_end(r->png, r->info);
  return true;
}

struct PngReadHandle {
  PngReader r;
  ~PngReadHandle() {
    if (r.png) png_destroy_read_struct(&r.png, r.info ? &r.info : nullptr, nullptr);
  }
};

std::vector<std::pair<std::string, std::string>> text_chunks(png_structp png, png_infop info) {
  png_textp texts = nullptr;
  const int count = png_get_text(png, info, &texts, nullptr);
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < count; ++i) {
    const png_text& t = texts[i];
    const bool itxt = t.compression == PNG_ITXT_COMPRESSION_NONE || t.compression == PNG_ITXT_COMPRESSION_zTXt;
    const size_t length = itxt ? t.itxt_length : t.text_length;
    const std::string_view value = t.text ? std::string_view(t.text, length) : std::string_view();
    out.emplace_back(latin1_to_utf8(t.key ? t.key : ""), itxt ? std::string(value) : latin1_to_utf8(value));
  }
  return out;
}

uint32_t read_be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// libpng allocates the length an ancillary chunk's header claims before reading its data, so one
// damaged length field in a 2 kB file makes it allocate (and the kernel zero) up to 2 GiB. Walking
// the chunk headers first — every chunk must fit in what is left of the file — rules that out.
Status check_chunk_lengths(std::span<const uint8_t> bytes, std::string_view name) {
  size_t pos = 8;  // after the signature
  while (pos < bytes.size()) {
    const size_t left = bytes.size() - pos;
    if (left < 12) return Error(cat(name, ": truncated PNG data (a chunk header is cut off)"));
    const uint32_t length = read_be32(&bytes[pos]);
    const std::string_view type(reinterpret_cast<const char*>(&bytes[pos + 4]), 4);
    const bool printable = std::all_of(type.begin(), type.end(), [](char c) { return std::isalpha(uint8_t(c)); });
    const std::string label = printable ? cat(" '", type, "'") : std::string();
    if (length > 0x7fffffffu) return Error(cat(name, ": invalid PNG data (chunk", label, " claims ", length, " bytes)"));
    if (length > left - 12)
      return Error(cat(name, ": truncated PNG data (chunk", label, " claims ", length, " bytes, ", left - 12, " left)"));
    pos += 12 + size_t(length);
    if (type == "IEND") break;
  }
  return {};
}

Error read_error(std::string_view name, const PngReader& r) {
  return Error(cat(name, r.truncated ? ": truncated PNG data (libpng: " : ": invalid PNG data (libpng: ", r.message, ")"));
}

// ---- writing ----

struct PngWriter {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<uint8_t>* out = nullptr;
  char message[kMessageSize] = {};
};

void write_to_memory(png_structp png, png_bytep data, size_t count) {
  auto* writer = static_cast<PngWriter*>(png_get_io_ptr(png));
  if (!append_bytes(*writer->out, data, count)) png_error(png, "out of memory");
}

void flush_nothing(png_structp) {}

struct PngLayout {
  int width, height, color_type;
  png_bytep* rows;
  png_textp texts;
  int text_count;
};

bool write_png(PngWriter* w, const PngLayout* layout) {
  if (setjmp(png_jmpbuf(w->png))) return false;
  png_set_write_fn(w->png, w, write_to_memory, flush_nothing);
  png_set_IHDR(w->png, w->info, png_uint_32(layout->width), png_uint_32(layout->height), 8, layout->color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  // Text before the pixels, as PIL writes it: readers that stop early still find the parameters.
  if (layout->text_count > 0) png_set_text(w->png, w->info, layout->texts, layout->text_count);
  png_write_info(w->png, w->info);
  png_write_image(w->png, layout->rows);
  png_write_end(w->png, w->info);
  return true;
}

struct PngWriteHandle {
  PngWriter w;
  ~PngWriteHandle() {
    if (w.png) png_destroy_write_struct(&w.png, w.info ? &w.info : nullptr);
  }
};

// The keyword and text of one chunk as libpng wants them: Latin-1 keyword; the text Latin-1 for
// tEXt or UTF-8 for iTXt. The strings must outlive the png_text that points into them.
struct EncodedText {
  std::string keyword, text;
  bool itxt = false;
};

bool is_valid_keyword(std::string_view k) {
  if (k.empty() || k.size() > 79 || k.front() == ' ' || k.back() == ' ' || k.find("  ") != k.npos) return false;
  for (unsigned char c : k)
    if (!((c >= 32 && c <= 126) || c >= 161)) return false;
  return true;
}

Result<EncodedText> encode_text(const std::string& keyword, const std::string& value) {
  auto key = utf8_to_latin1(keyword);
  if (!key || !is_valid_keyword(*key))
    return Error(cat("PNG text keyword '", keyword,
                     "' must be 1 to 79 printable Latin-1 characters without leading, trailing or double spaces"));
  if (value.find('\0') != std::string::npos)
    return Error(cat("PNG text '", keyword, "' contains a NUL character"));
  if (auto latin1 = utf8_to_latin1(value)) return EncodedText{*key, *latin1, false};
  if (!is_valid_utf8(value)) return Error(cat("PNG text '", keyword, "' is not valid UTF-8"));
  return EncodedText{*key, value, true};
}

}  // namespace

Result<Image> decode_png(std::span<const uint8_t> bytes, std::string_view name, const ImageLimits& limits) {
  EASEL_TRY_STATUS(check_chunk_lengths(bytes, name));
  PngReadHandle h;
  h.r.data = bytes.data();
  h.r.size = bytes.size();
  h.r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, h.r.message, on_png_error, on_png_warning);
  if (h.r.png) h.r.info = png_create_info_struct(h.r.png);
  if (!h.r.png || !h.r.info) return Error(cat(name, ": cannot start the PNG decoder (out of memory)"));

  if (!read_header(&h.r)) return read_error(name, h.r);
  const int64_t width = png_get_image_width(h.r.png, h.r.info);
  const int64_t height = png_get_image_height(h.r.png, h.r.info);
  EASEL_TRY_STATUS(check_dimensions(width, height, name, "PNG", limits));

  const bool alpha = (png_get_color_type(h.r.png, h.r.info) & PNG_COLOR_MASK_ALPHA) ||
                     png_get_valid(h.r.png, h.r.info, PNG_INFO_tRNS);
  Image image{int(width), int(height), alpha ? 4 : 3, {}, {}};
  const size_t row_bytes = size_t(width) * size_t(image.channels);
  image.pixels.resize(row_bytes * size_t(height));
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = image.pixels.data() + y * row_bytes;

  if (!read_pixels(&h.r, rows.data(), row_bytes)) return read_error(name, h.r);
  image.text = text_chunks(h.r.png, h.r.info);
  return image;
}

Result<std::vector<uint8_t>> encode_png(const Image& image) {
  std::vector<EncodedText> encoded;
  for (const auto& [keyword, value] : image.text) {
    EASEL_TRY(auto text, encode_text(keyword, value));
    encoded.push_back(std::move(text));
  }
  std::vector<png_text> texts(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    png_text& t = texts[i];
    std::memset(&t, 0, sizeof t);
    t.compression = encoded[i].itxt ? PNG_ITXT_COMPRESSION_NONE : PNG_TEXT_COMPRESSION_NONE;
    t.key = encoded[i].keyword.data();
    t.text = encoded[i].text.data();
    t.text_length = encoded[i].text.size();
    t.lang = const_cast<char*>("");
    t.lang_key = const_cast<char*>("");
  }

  const size_t row_bytes = size_t(image.width) * size_t(image.channels);
  std::vector<png_bytep> rows(size_t(image.height));
  for (size_t y = 0; y < rows.size(); ++y)
    rows[y] = const_cast<png_bytep>(image.pixels.data() + y * row_bytes);  // libpng only reads them

  std::vector<uint8_t> out;
  out.reserve(image.pixels.size() / 2 + 1024);
  PngWriteHandle h;
  h.w.out = &out;
  h.w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, h.w.message, on_png_error, on_png_warning);
  if (h.w.png) h.w.info = png_create_info_struct(h.w.png);
  if (!h.w.png || !h.w.info) return Error("cannot start the PNG encoder (out of memory)");
  const PngLayout layout{image.width, image.height,
                         image.channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, rows.data(),
                         texts.data(), int(texts.size())};
  if (!write_png(&h.w, &layout)) return Error(cat("PNG encoding failed (libpng: ", h.w.message, ")"));
  return out;
}

}  // namespace easel::detail
