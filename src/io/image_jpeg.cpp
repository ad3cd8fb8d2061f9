// JPEG through libjpeg(-turbo).
//
// libjpeg's default error handler calls exit(). Ours formats the message and longjmps back to the
// setjmp in a small "stage" function that owns no C++ objects (libjpeg's usual pattern), so the
// longjmp never skips a destructor; the pixel vector and the handle that destroys the libjpeg
// structs live in the caller. Every struct libjpeg's callbacks reach is plain data.
//
// Not handled yet: the EXIF orientation tag (APP1). Photos from phones may need rotating; read the
// APP1 marker with jpeg_save_markers and apply the orientation after decoding when that matters.
// ICC profiles are ignored too, as PIL does unless asked.
#include <cstdio>  // jpeglib.h needs FILE and size_t before it

#include <jerror.h>
#include <jpeglib.h>

#include <csetjmp>
#include <cstring>
#include <memory>

#include "io/image_codecs.h"

namespace easel::detail {
namespace {

// libjpeg-turbo's own fuzzers and TurboJPEG 3 cap progressive JPEGs at 500 scans: a crafted file
// with thousands of tiny scans would otherwise cost a full pass over the image per scan.
constexpr int kMaxScans = 500;

// cinfo->err points at `pub`, the first member, so the callbacks can get back to the rest.
struct JpegErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  bool truncated;  // the data ended before the image did: say "truncated", not "invalid"
  char message[JMSG_LENGTH_MAX];
};

JpegErrors* errors_of(j_common_ptr cinfo) { return reinterpret_cast<JpegErrors*>(cinfo->err); }

[[noreturn]] void fail(j_common_ptr cinfo, const char* message) {
  JpegErrors* errors = errors_of(cinfo);
  std::snprintf(errors->message, sizeof errors->message, "%s", message);
  std::longjmp(errors->jump, 1);
}

[[noreturn]] void on_jpeg_error(j_common_ptr cinfo) {
  JpegErrors* errors = errors_of(cinfo);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// Warnings (level -1) are damage libjpeg recovers from, e.g. corrupt entropy data: keep the image,
// as browsers and PIL do. Running out of data is the exception: libjpeg would pad the rest of the
// image with gray, which is not the picture the user meant, so stop with an error. Trace messages
// (level >= 0) are ignored; the default handler would print them to stderr.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    errors_of(cinfo)->truncated = true;
    fail(cinfo, "unexpected end of data");
  }
}

void on_jpeg_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor && reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxScans)
    fail(cinfo, "too many progressive scans");
}

void install_errors(JpegErrors& errors) {
  jpeg_std_error(&errors.pub);
  errors.pub.error_exit = on_jpeg_error;
  errors.pub.emit_message = on_jpeg_message;
}

// ---- reading ----

struct JpegReader {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  jpeg_progress_mgr progress;
};

// Stage 1: the markers up to the first scan, which hold the size and colour space.
bool read_header(JpegReader* r, const uint8_t* data, size_t size) {
  if (setjmp(r->errors.jump)) return false;
  jpeg_create_decompress(&r->cinfo);
  r->cinfo.progress = &r->progress;
  jpeg_mem_src(&r->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&r->cinfo, TRUE);
  return true;
}

// Stage 2: decodes into `pixels` (`components` bytes per pixel, in the colour space the caller set).
bool read_pixels(JpegReader* r, uint8_t* pixels, JDIMENSION width, JDIMENSION height, int components) {
  if (setjmp(r->errors.jump)) return false;
  j_decompress_ptr c = &r->cinfo;
  jpeg_start_decompress(c);
  if (c->output_width != width || c->output_height != height || c->output_components != components)
    fail(reinterpret_cast<j_common_ptr>(c), "unexpected output size");
  const size_t row_bytes = size_t(width) * size_t(components);
  while (c->output_scanline < c->output_height) {
    JSAMPROW row = pixels + size_t(c->output_scanline) * row_bytes;
    if (jpeg_read_scanlines(c, &row, 1) != 1) fail(reinterpret_cast<j_common_ptr>(c), "decoder stalled");
  }
  jpeg_finish_decompress(c);
  return true;
}

struct JpegReadHandle {
  JpegReader r;
  JpegReadHandle() {
    // Zeroed first, so that destroying after a failed jpeg_create_decompress is a no-op.
    std::memset(&r, 0, sizeof r);
    install_errors(r.errors);
    r.cinfo.err = &r.errors.pub;
    r.progress.progress_monitor = on_jpeg_progress;
  }
  ~JpegReadHandle() { jpeg_destroy_decompress(&r.cinfo); }
  JpegReadHandle(const JpegReadHandle&) = delete;
  JpegReadHandle& operator=(const JpegReadHandle&) = delete;
};

// Photoshop writes CMYK JPEGs inverted (255 = no ink) and marks them with an Adobe APP14 segment;
// others store ink amounts. R = (1 - C)(1 - K), the same naive conversion as PIL's.
// Converts in place: pixel i's 3 output bytes never overtake pixel i's 4 input bytes.
void cmyk_to_rgb(std::vector<uint8_t>& pixels, size_t count, bool inverted) {
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* in = &pixels[i * 4];
    int c = in[0], m = in[1], y = in[2], k = in[3];
    if (!inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
    uint8_t* out = &pixels[i * 3];
    out[0] = uint8_t((c * k + 127) / 255);
    out[1] = uint8_t((m * k + 127) / 255);
    out[2] = uint8_t((y * k + 127) / 255);
  }
  pixels.resize(count * 3);
}

Error read_error(std::string_view name, const JpegReader& r) {
  return Error(cat(name, r.errors.truncated ? ": truncated JPEG data (libjpeg: " : ": invalid JPEG data (libjpeg: ",
                   r.errors.message, ")"));
}

// ---- writing ----

// cinfo->dest points at `pub`, the first member. Output goes through a fixed chunk into `out`.
struct JpegDestination {
  jpeg_destination_mgr pub;
  std::vector<uint8_t>* out;
  uint8_t chunk[1 << 16];
};

JpegDestination* destination_of(j_compress_ptr cinfo) { return reinterpret_cast<JpegDestination*>(cinfo->dest); }

void start_chunk(j_compress_ptr cinfo) {
  JpegDestination* d = destination_of(cinfo);
  d->pub.next_output_byte = d->chunk;
  d->pub.free_in_buffer = sizeof d->chunk;
}

// libjpeg calls this when the chunk is full (whatever free_in_buffer says).
boolean flush_chunk(j_compress_ptr cinfo) {
  JpegDestination* d = destination_of(cinfo);
  if (!append_bytes(*d->out, d->chunk, sizeof d->chunk)) fail(reinterpret_cast<j_common_ptr>(cinfo), "out of memory");
  start_chunk(cinfo);
  return TRUE;
}

void flush_last_chunk(j_compress_ptr cinfo) {
  JpegDestination* d = destination_of(cinfo);
  if (!append_bytes(*d->out, d->chunk, sizeof d->chunk - d->pub.free_in_buffer))
    fail(reinterpret_cast<j_common_ptr>(cinfo), "out of memory");
}

struct JpegWriter {
  jpeg_compress_struct cinfo;
  JpegErrors errors;
  JpegDestination destination;
};

struct JpegLayout {
  JDIMENSION width, height;
  int channels, quality;
  const uint8_t* pixels;
};

bool write_jpeg(JpegWriter* w, const JpegLayout* l) {
  if (setjmp(w->errors.jump)) return false;
  j_compress_ptr c = &w->cinfo;
  jpeg_create_compress(c);
  c->dest = &w->destination.pub;
  c->image_width = l->width;
  c->image_height = l->height;
  // libjpeg-turbo reads RGBA directly and ignores the alpha byte: no RGB copy needed.
  c->input_components = l->channels;
  c->in_color_space = l->channels == 4 ? JCS_EXT_RGBA : JCS_RGB;
  jpeg_set_defaults(c);
  jpeg_set_quality(c, l->quality, TRUE);
  c->optimize_coding = TRUE;
  // At high quality, chroma subsampling is the largest remaining loss (colour fringes on the sharp
  // edges generated images are full of); keep full-resolution chroma there, as GIMP does.
  if (l->quality >= 90)
    for (int i = 0; i < c->num_components; ++i) c->comp_info[i].h_samp_factor = c->comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(c, TRUE);
  const size_t row_bytes = size_t(l->width) * size_t(l->channels);
  while (c->next_scanline < c->image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(l->pixels + size_t(c->next_scanline) * row_bytes);  // only read
    jpeg_write_scanlines(c, &row, 1);
  }
  jpeg_finish_compress(c);
  return true;
}

struct JpegWriteHandle {
  JpegWriter w;
  explicit JpegWriteHandle(std::vector<uint8_t>* out) {
    std::memset(&w, 0, sizeof w);
    install_errors(w.errors);
    w.cinfo.err = &w.errors.pub;
    w.destination.out = out;
    w.destination.pub.init_destination = start_chunk;
    w.destination.pub.empty_output_buffer = flush_chunk;
    w.destination.pub.term_destination = flush_last_chunk;
  }
  ~JpegWriteHandle() { jpeg_destroy_compress(&w.cinfo); }
  JpegWriteHandle(const JpegWriteHandle&) = delete;
  JpegWriteHandle& operator=(const JpegWriteHandle&) = delete;
};

}  // namespace

Result<Image> decode_jpeg(std::span<const uint8_t> bytes, std::string_view name, const ImageLimits& limits) {
  auto h = std::make_unique<JpegReadHandle>();  // a few kB of libjpeg state: keep it off the stack
  JpegReader& r = h->r;
  if (!read_header(&r, bytes.data(), bytes.size())) return read_error(name, r);
  const int64_t width = r.cinfo.image_width, height = r.cinfo.image_height;
  EASEL_TRY_STATUS(check_dimensions(width, height, name, "JPEG", limits));

  // libjpeg-turbo converts gray and YCbCr to RGB itself; CMYK and YCCK come out as CMYK.
  const bool cmyk = r.cinfo.jpeg_color_space == JCS_CMYK || r.cinfo.jpeg_color_space == JCS_YCCK;
  r.cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  const int components = cmyk ? 4 : 3;
  Image image{int(width), int(height), 3, {}, {}};
  image.pixels.resize(size_t(width) * size_t(height) * size_t(components));
  if (!read_pixels(&r, image.pixels.data(), JDIMENSION(width), JDIMENSION(height), components))
    return read_error(name, r);
  if (cmyk) cmyk_to_rgb(image.pixels, size_t(width) * size_t(height), r.cinfo.saw_Adobe_marker);
  return image;
}

Result<std::vector<uint8_t>> encode_jpeg(const Image& image, int quality) {
  std::vector<uint8_t> out;
  auto h = std::make_unique<JpegWriteHandle>(&out);
  const JpegLayout layout{JDIMENSION(image.width), JDIMENSION(image.height), image.channels, quality,
                          image.pixels.data()};
  if (!write_jpeg(&h->w, &layout)) return Error(cat("JPEG encoding failed (libjpeg: ", h->w.errors.message, ")"));
  return out;
}

}  // namespace easel::detail
