// A minimal ZIP reader for the archives torch.save writes (https://pkware.cachefly.net/webdocs/
// casestudies/APPNOTE.TXT): end of central directory (and its ZIP64 form), central directory,
// local headers. STORED entries are handed out as zero-copy spans of the mapped file; small
// DEFLATE entries can be inflated. Opening checks every offset and size against the file, so a
// truncated or corrupt archive gives an error, never a read outside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/mapped_file.h"

namespace easel {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;           // 0 STORED, 8 DEFLATE
  uint32_t crc32 = 0;
  uint64_t data_offset = 0;      // of the (compressed) bytes in the file, after the local header
  uint64_t compressed_size = 0;  // data_offset + compressed_size <= file size
  uint64_t size = 0;             // uncompressed
};

class ZipReader {
 public:
  // Parses the archive's directory (the name in errors is the file's path).
  static Result<ZipReader> parse(std::shared_ptr<const MappedFile> file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;
  const std::shared_ptr<const MappedFile>& file() const { return file_; }
  std::string name() const { return file_->path().string(); }

  // The bytes of a STORED entry, in place in the mapped file (not checked against the CRC: that
  // would read every page of a multi-gigabyte checkpoint up front).
  Result<std::span<const std::byte>> stored(const ZipEntry& entry) const;
  // A copy of an entry's contents, inflated if DEFLATEd, CRC checked; refuses over max_bytes.
  Result<std::vector<std::byte>> read(const ZipEntry& entry, uint64_t max_bytes) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  std::vector<ZipEntry> entries_;
};

}  // namespace easel
