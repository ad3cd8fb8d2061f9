#include "io/zip_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <zlib.h>

namespace easel {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr size_t kEndSize = 22, kLocator64Size = 20, kEnd64Size = 56, kCentralSize = 46, kLocalSize = 30;
constexpr size_t kMaxComment = 0xffff;

// Little-endian reads from a range the caller has checked.
uint64_t le(const std::byte* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// [offset, offset + size) lies inside a file of `file_size` bytes.
bool fits(uint64_t offset, uint64_t size, uint64_t file_size) { return offset <= file_size && size <= file_size - offset; }

struct Directory {
  uint64_t entries = 0, offset = 0, size = 0;
};

Result<Directory> find_directory(const std::string& name, const std::byte* data, uint64_t size) {
  if (size < kEndSize) return Error(cat(name, ": ", size, " bytes is too short for a zip archive"));
  // The end record sits at the end, followed by a comment of up to 64 kB: search backwards.
  const uint64_t lowest = size - kEndSize > kMaxComment ? size - kEndSize - kMaxComment : 0;
  uint64_t end = std::numeric_limits<uint64_t>::max();
  for (uint64_t at = size - kEndSize + 1; at-- > lowest;) {
    if (le(data + at, 4) == kEndSig && at + kEndSize + le(data + at + 20, 2) == size) {
      end = at;
      break;
    }
  }
  if (end == std::numeric_limits<uint64_t>::max())
    return Error(cat(name, ": no zip end-of-central-directory record: the file is truncated or not a zip archive"));
  const std::byte* e = data + end;
  if (le(e + 4, 2) != 0 || (le(e + 6, 2) != 0 && le(e + 6, 2) != 0xffff))
    return Error(cat(name, ": multi-disk zip archives are not supported"));
  Directory dir{le(e + 10, 2), le(e + 16, 4), le(e + 12, 4)};
  const bool zip64 = dir.entries == 0xffff || dir.offset == 0xffffffff || dir.size == 0xffffffff;
  uint64_t dir_end = end;  // the directory must end before the records that follow it
  if (zip64) {
    if (end < kLocator64Size || le(data + end - kLocator64Size, 4) != kLocator64Sig)
      return Error(cat(name, ": zip64 archive without its end-of-central-directory locator"));
    const std::byte* loc = data + end - kLocator64Size;
    const uint64_t at = le(loc + 8, 8);
    if (!fits(at, kEnd64Size, end - kLocator64Size) || le(data + at, 4) != kEnd64Sig)
      return Error(cat(name, ": zip64 end-of-central-directory record at ", at, " is missing or outside the file"));
    const std::byte* e64 = data + at;
    dir = Directory{le(e64 + 32, 8), le(e64 + 48, 8), le(e64 + 40, 8)};
    dir_end = at;
  }
  if (!fits(dir.offset, dir.size, dir_end))
    return Error(cat(name, ": central directory [", dir.offset, ", +", dir.size, ") lies outside the archive (",
                     human_bytes(size), "): the file is truncated or corrupt"));
  if (dir.entries > dir.size / kCentralSize)
    return Error(cat(name, ": central directory claims ", dir.entries, " entries in ", dir.size, " bytes"));
  return dir;
}

// Reads the zip64 extra field's replacements for the fields that hold 0xffffffff.
Status read_zip64_extra(const std::string& where, const std::byte* extra, size_t len, ZipEntry& entry,
                        uint64_t& local_offset, bool need_size, bool need_csize, bool need_offset) {
  size_t at = 0;
  while (at + 4 <= len) {
    const uint64_t id = le(extra + at, 2), n = le(extra + at + 2, 2);
    if (at + 4 + n > len) break;
    if (id == 1) {
      const std::byte* p = extra + at + 4;
      size_t used = 0;
      auto take = [&](uint64_t& field) {
        if (used + 8 > n) return false;
        field = le(p + used, 8);
        used += 8;
        return true;
      };
      if ((need_size && !take(entry.size)) || (need_csize && !take(entry.compressed_size)) ||
          (need_offset && !take(local_offset)))
        return Error(where + ": zip64 extra field is too short");
      return {};
    }
    at += 4 + n;
  }
  if (need_size || need_csize || need_offset) return Error(where + ": zip64 sizes without a zip64 extra field");
  return {};
}

}  // namespace

Result<ZipReader> ZipReader::parse(std::shared_ptr<const MappedFile> file) {
  const std::string name = file->path().string();
  const std::byte* data = file->data();
  const uint64_t size = file->size();
  EASEL_TRY(Directory dir, find_directory(name, data, size));

  ZipReader zip;
  zip.entries_.reserve(static_cast<size_t>(dir.entries));
  uint64_t at = dir.offset;
  const uint64_t dir_end = dir.offset + dir.size;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (!fits(at, kCentralSize, dir_end) || le(data + at, 4) != kCentralSig)
      return Error(cat(name, ": central directory entry ", i, " at byte ", at, " is damaged"));
    const std::byte* c = data + at;
    const uint64_t flags = le(c + 8, 2), name_len = le(c + 28, 2), extra_len = le(c + 30, 2), comment_len = le(c + 32, 2);
    if (!fits(at + kCentralSize, name_len + extra_len + comment_len, dir_end))
      return Error(cat(name, ": central directory entry ", i, " runs past the directory"));
    ZipEntry entry;
    entry.name.assign(reinterpret_cast<const char*>(c + kCentralSize), name_len);
    const std::string where = cat(name, ": zip entry '", entry.name, "'");
    entry.method = static_cast<uint16_t>(le(c + 10, 2));
    entry.crc32 = static_cast<uint32_t>(le(c + 16, 4));
    entry.compressed_size = le(c + 20, 4);
    entry.size = le(c + 24, 4);
    uint64_t local = le(c + 42, 4);
    EASEL_TRY_STATUS(read_zip64_extra(where, c + kCentralSize + name_len, extra_len, entry, local,
                                      entry.size == 0xffffffff, entry.compressed_size == 0xffffffff,
                                      local == 0xffffffff));
    if (flags & 1) return Error(where + " is encrypted");
    if (entry.method != 0 && entry.method != 8)
      return Error(cat(where, " uses compression method ", entry.method, " (only stored and deflate are supported)"));
    if (entry.method == 0 && entry.compressed_size != entry.size)
      return Error(cat(where, " is stored but its sizes differ (", entry.compressed_size, " and ", entry.size, ")"));
    // The local header repeats the name and has its own extra field; the data follows it.
    if (!fits(local, kLocalSize, dir.offset) || le(data + local, 4) != kLocalSig)
      return Error(cat(where, ": local header at byte ", local, " is missing or outside the archive"));
    const uint64_t local_name = le(data + local + 26, 2), local_extra = le(data + local + 28, 2);
    entry.data_offset = local + kLocalSize + local_name + local_extra;
    if (!fits(entry.data_offset, entry.compressed_size, dir.offset))
      return Error(cat(where, ": its ", entry.compressed_size, " bytes at byte ", entry.data_offset,
                       " run past the end of the data (", dir.offset, "): the file is truncated or corrupt"));
    zip.entries_.push_back(std::move(entry));
    at += kCentralSize + name_len + extra_len + comment_len;
  }
  zip.file_ = std::move(file);
  return zip;
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  for (const ZipEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

Result<std::span<const std::byte>> ZipReader::stored(const ZipEntry& entry) const {
  if (entry.method != 0)
    return Error(cat(name(), ": zip entry '", entry.name, "' is compressed; tensor data must be stored uncompressed "
                     "(torch.save writes it so; was the archive re-zipped?)"));
  return std::span<const std::byte>(file_->data() + entry.data_offset, static_cast<size_t>(entry.size));
}

Result<std::vector<std::byte>> ZipReader::read(const ZipEntry& entry, uint64_t max_bytes) const {
  const std::string where = cat(name(), ": zip entry '", entry.name, "'");
  if (entry.size > max_bytes)
    return Error(cat(where, " is ", human_bytes(entry.size), ", over the ", human_bytes(max_bytes), " allowed"));
  std::vector<std::byte> out(static_cast<size_t>(entry.size));
  const std::byte* src = file_->data() + entry.data_offset;
  if (entry.method == 0) {
    if (!out.empty()) std::memcpy(out.data(), src, out.size());
  } else {
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return Error(where + ": cannot start zlib");
    uint64_t in_left = entry.compressed_size, out_done = 0;
    int rc = Z_OK;
    while (rc == Z_OK) {
      const uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      const uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(out.size() - out_done, 1u << 30));
      z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(src + (entry.compressed_size - in_left)));
      z.avail_in = in_chunk;
      z.next_out = reinterpret_cast<Bytef*>(out.data() + out_done);
      z.avail_out = out_chunk;
      rc = inflate(&z, Z_NO_FLUSH);
      in_left -= in_chunk - z.avail_in;
      out_done += out_chunk - z.avail_out;
      if (rc == Z_OK && z.avail_in == in_chunk && z.avail_out == out_chunk) rc = Z_BUF_ERROR;  // no progress
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || out_done != out.size())
      return Error(cat(where, ": deflate data is corrupt or does not inflate to ", entry.size, " bytes"));
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t done = 0; done < out.size();) {
    const uInt n = static_cast<uInt>(std::min<size_t>(out.size() - done, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + done), n);
    done += n;
  }
  if (static_cast<uint32_t>(crc) != entry.crc32) return Error(where + ": CRC mismatch: the file is corrupt");
  return out;
}

}  // namespace easel
