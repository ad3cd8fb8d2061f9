// Format sniffing, file I/O and the format-independent parts of io/image.h. The codecs themselves
// live in image_png.cpp, image_jpeg.cpp and image_webp.cpp.
#include "io/image.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <random>

#include "io/image_codecs.h"

namespace easel {
namespace {

bool starts_with(std::span<const uint8_t> bytes, std::string_view magic, size_t at = 0) {
  return bytes.size() >= at + magic.size() && std::memcmp(bytes.data() + at, magic.data(), magic.size()) == 0;
}

std::optional<ImageFormat> sniff_format(std::span<const uint8_t> bytes) {
  if (starts_with(bytes, "\x89PNG\r\n\x1a\n")) return ImageFormat::Png;
  if (starts_with(bytes, "\xff\xd8\xff")) return ImageFormat::Jpeg;
  if (starts_with(bytes, "RIFF") && starts_with(bytes, "WEBP", 8)) return ImageFormat::Webp;
  return std::nullopt;
}

// "3c 68 74 6d": the first bytes, so that an HTML error page saved as .png is easy to recognise.
std::string hex_prefix(std::span<const uint8_t> bytes) {
  std::ostringstream out;
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 4); ++i)
    out << (i ? " " : "") << std::hex << std::setw(2) << std::setfill('0') << int(bytes[i]);
  return out.str();
}

Status check_image(const Image& image) {
  if (image.width <= 0 || image.height <= 0)
    return Error(cat("image has no pixels (", image.width, " x ", image.height, ")"));
  if (image.channels != 3 && image.channels != 4)
    return Error(cat("image has ", image.channels, " channels; only RGB (3) and RGBA (4) can be encoded"));
  const uint64_t expected = uint64_t(image.width) * uint64_t(image.height) * uint64_t(image.channels);
  if (image.pixels.size() != expected)
    return Error(cat("image is ", image.width, " x ", image.height, " x ", image.channels, " = ", expected,
                     " bytes but holds ", image.pixels.size()));
  return {};
}

std::string errno_text(int err) { return std::strerror(err); }

// A fresh name beside the target: ".photo.png.1a2b3c4d5e6f7081.tmp". Random rather than a counter so
// that two processes (or threads) writing the same file never share a temporary.
std::filesystem::path temp_path_for(const std::filesystem::path& path) {
  std::random_device entropy;
  const uint64_t tag = (uint64_t(entropy()) << 32) ^ entropy();
  std::ostringstream name;
  name << "." << path.filename().string() << "." << std::hex << std::setw(16) << std::setfill('0') << tag << ".tmp";
  return path.parent_path() / name.str();
}

bool write_all(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(size_t(n));
  }
  return true;
}

// Creates the temporary with O_EXCL (never clobbers anything) and mode 0666 minus the umask, as an
// ordinary file would get; fsyncs it so that the rename publishes complete contents even after a
// crash.
Status write_file_atomically(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  const std::string name = path.string();
  std::filesystem::path temp;
  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    temp = temp_path_for(path);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) return Error(cat(name, ": cannot create a file there (", errno_text(errno), ")"));
  }
  if (fd < 0) return Error(cat(name, ": cannot create a temporary file beside it"));

  const bool written = write_all(fd, bytes) && ::fsync(fd) == 0;
  const int write_errno = errno;
  const bool closed = ::close(fd) == 0;
  std::error_code ec;
  if (!written || !closed) {
    std::filesystem::remove(temp, ec);
    return Error(cat(name, ": write failed (", errno_text(written ? errno : write_errno), ")"));
  }
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    return Error(cat(name, ": cannot replace the file (", ec.message(), ")"));
  }
  return {};
}

}  // namespace

namespace detail {

Status check_dimensions(int64_t width, int64_t height, std::string_view name, std::string_view format,
                        const ImageLimits& limits) {
  if (width <= 0 || height <= 0)
    return Error(cat(name, ": ", format, " image has no pixels (", width, " x ", height, ")"));
  // Both sides are below 2^32 for every format, so the product cannot overflow.
  if (width * height > limits.max_pixels)
    return Error(cat(name, ": ", format, " image is ", width, " x ", height, " pixels, more than the limit of ",
                     limits.max_pixels, " pixels"));
  return {};
}

bool append_bytes(std::vector<uint8_t>& out, const uint8_t* data, size_t count) noexcept {
  try {
    out.insert(out.end(), data, data + count);
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace detail

Result<Image> decode_image(std::span<const uint8_t> bytes, std::string_view name_for_errors,
                           const ImageLimits& limits) {
  if (bytes.empty()) return Error(cat(name_for_errors, ": empty file, not an image"));
  const auto format = sniff_format(bytes);
  if (!format)
    return Error(cat(name_for_errors, ": not a PNG, JPEG or WebP file (starts with ", hex_prefix(bytes), ")"));
  // The decoders allocate; running out of memory on a huge (but allowed) image is an error too.
  try {
    switch (*format) {
      case ImageFormat::Png: return detail::decode_png(bytes, name_for_errors, limits);
      case ImageFormat::Jpeg: return detail::decode_jpeg(bytes, name_for_errors, limits);
      case ImageFormat::Webp: return detail::decode_webp(bytes, name_for_errors, limits);
    }
  } catch (const std::bad_alloc&) {
    return Error(cat(name_for_errors, ": out of memory while decoding"));
  }
  return Error(cat(name_for_errors, ": unknown image format"));
}

Result<Image> read_image(const std::filesystem::path& path, const ImageLimits& limits) {
  const std::string name = path.string();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Error(cat(name, ": is a directory, not an image"));
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return Error(cat(name, ": cannot open (", errno_text(errno), ")"));
  const std::streamoff size = file.tellg();
  if (size < 0) return Error(cat(name, ": cannot read (not a regular file?)"));
  if (size > limits.max_file_bytes)
    return Error(cat(name, ": file is ", size, " bytes, more than the limit of ", limits.max_file_bytes));
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  file.seekg(0);
  if (!file.read(reinterpret_cast<char*>(bytes.data()), size)) return Error(cat(name, ": read failed"));
  return decode_image(bytes, name, limits);
}

Result<std::vector<uint8_t>> encode_image(const Image& image, ImageFormat format, int quality) {
  EASEL_TRY_STATUS(check_image(image));
  quality = std::clamp(quality, 0, 100);
  try {
    switch (format) {
      case ImageFormat::Png: return detail::encode_png(image);
      case ImageFormat::Jpeg: return detail::encode_jpeg(image, quality);
      case ImageFormat::Webp: return detail::encode_webp(image, quality);
    }
  } catch (const std::bad_alloc&) {
    return Error(cat("out of memory while encoding ", image_format_name(format)));
  }
  return Error("unknown image format");
}

Status write_image(const std::filesystem::path& path, const Image& image, std::optional<ImageFormat> format,
                   int quality) {
  if (!format) format = image_format_from_extension(path);
  if (!format)
    return Error(cat(path.string(), ": unknown image extension '", path.extension().string(),
                     "' (use .png, .jpg, .jpeg or .webp)"));
  auto bytes = encode_image(image, *format, quality);
  if (!bytes) return bytes.error().context(path.string());
  return write_file_atomically(path, *bytes);
}

std::optional<ImageFormat> image_format_from_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext == ".png") return ImageFormat::Png;
  if (ext == ".jpg" || ext == ".jpeg") return ImageFormat::Jpeg;
  if (ext == ".webp") return ImageFormat::Webp;
  return std::nullopt;
}

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Webp: return "WebP";
  }
  return "?";
}

Image to_rgb(const Image& image) {
  const int c = image.channels;
  EASEL_CHECK(c >= 1 && c <= 4, "to_rgb: image has ", c, " channels");
  const size_t n = size_t(std::max(image.width, 0)) * size_t(std::max(image.height, 0));
  EASEL_CHECK(image.pixels.size() == n * size_t(c), "to_rgb: ", image.width, " x ", image.height, " x ", c,
              " image holds ", image.pixels.size(), " bytes");
  Image out{image.width, image.height, 3, {}, image.text};
  if (c == 3) {
    out.pixels = image.pixels;
    return out;
  }
  out.pixels.resize(n * 3);
  const bool gray = c <= 2;  // 1 = gray, 2 = gray + alpha
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* src = &image.pixels[i * size_t(c)];
    uint8_t* dst = &out.pixels[i * 3];
    dst[0] = src[0];
    dst[1] = gray ? src[0] : src[1];
    dst[2] = gray ? src[0] : src[2];
  }
  return out;
}

}  // namespace easel
