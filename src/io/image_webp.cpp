// WebP through libwebp's advanced API, which reports why a decode failed (the simple API only
// returns null) and lets lossless encoding keep the exact RGB under transparent pixels.
#include <webp/decode.h>
#include <webp/encode.h>

#include "io/image_codecs.h"

namespace easel::detail {
namespace {

Error decode_error(std::string_view name, VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_NOT_ENOUGH_DATA: return Error(cat(name, ": truncated WebP data"));
    case VP8_STATUS_UNSUPPORTED_FEATURE: return Error(cat(name, ": WebP file uses a feature libwebp does not support"));
    case VP8_STATUS_OUT_OF_MEMORY: return Error(cat(name, ": out of memory while decoding WebP"));
    case VP8_STATUS_BITSTREAM_ERROR: return Error(cat(name, ": invalid WebP data (libwebp: bitstream error)"));
    default: return Error(cat(name, ": invalid WebP data (libwebp status ", int(status), ")"));
  }
}

struct PictureHandle {
  WebPPicture picture;
  PictureHandle() { WebPPictureInit(&picture); }
  ~PictureHandle() { WebPPictureFree(&picture); }
  PictureHandle(const PictureHandle&) = delete;
  PictureHandle& operator=(const PictureHandle&) = delete;
};

struct MemoryWriterHandle {
  WebPMemoryWriter writer;
  MemoryWriterHandle() { WebPMemoryWriterInit(&writer); }
  ~MemoryWriterHandle() { WebPMemoryWriterClear(&writer); }
  MemoryWriterHandle(const MemoryWriterHandle&) = delete;
  MemoryWriterHandle& operator=(const MemoryWriterHandle&) = delete;
};

}  // namespace

Result<Image> decode_webp(std::span<const uint8_t> bytes, std::string_view name, const ImageLimits& limits) {
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) return Error(cat(name, ": libwebp version mismatch"));
  VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &config.input);
  if (status != VP8_STATUS_OK) return decode_error(name, status);
  if (config.input.has_animation) return Error(cat(name, ": animated WebP is not supported"));
  EASEL_TRY_STATUS(check_dimensions(config.input.width, config.input.height, name, "WebP", limits));

  const bool alpha = config.input.has_alpha;
  Image image{config.input.width, config.input.height, alpha ? 4 : 3, {}, {}};
  image.pixels.resize(size_t(image.width) * size_t(image.height) * size_t(image.channels));
  // Decode straight into our buffer: libwebp allocates nothing for the output.
  config.output.colorspace = alpha ? MODE_RGBA : MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = image.pixels.data();
  config.output.u.RGBA.stride = image.width * image.channels;
  config.output.u.RGBA.size = image.pixels.size();
  status = WebPDecode(bytes.data(), bytes.size(), &config);
  WebPFreeDecBuffer(&config.output);
  if (status != VP8_STATUS_OK) return decode_error(name, status);
  return image;
}

Result<std::vector<uint8_t>> encode_webp(const Image& image, int quality) {
  if (image.width > WEBP_MAX_DIMENSION || image.height > WEBP_MAX_DIMENSION)
    return Error(cat("image is ", image.width, " x ", image.height, " pixels; WebP allows at most ",
                     WEBP_MAX_DIMENSION, " per side"));
  WebPConfig config;
  if (!WebPConfigInit(&config)) return Error("libwebp version mismatch");
  const bool lossless = quality >= 100;
  if (lossless) {
    config.lossless = 1;
    config.exact = 1;  // keep RGB under fully transparent pixels, so a round trip is bit-exact
  } else {
    config.quality = float(quality);
  }

  PictureHandle pic;
  MemoryWriterHandle memory;
  pic.picture.use_argb = lossless;  // lossless works on ARGB; lossy on YUV
  pic.picture.width = image.width;
  pic.picture.height = image.height;
  const int stride = image.width * image.channels;
  const int imported = image.channels == 4 ? WebPPictureImportRGBA(&pic.picture, image.pixels.data(), stride)
                                           : WebPPictureImportRGB(&pic.picture, image.pixels.data(), stride);
  if (!imported) return Error("out of memory while encoding WebP");
  pic.picture.writer = WebPMemoryWrite;
  pic.picture.custom_ptr = &memory.writer;
  if (!WebPEncode(&config, &pic.picture))
    return Error(cat("WebP encoding failed (libwebp error ", int(pic.picture.error_code), ")"));
  return std::vector<uint8_t>(memory.writer.mem, memory.writer.mem + memory.writer.size);
}

}  // namespace easel::detail
