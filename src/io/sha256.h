// SHA-256 (FIPS 180-4). Model files are identified by it the way A1111 / SD.Next / Civitai do
// ("Model hash" = first 10 hex digits of the whole file's digest), so it must be fast on
// multi-gigabyte checkpoints: the SHA extensions are used where the CPU has them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>

#include "core/error.h"

namespace easel {

class Sha256 {
 public:
  // `use_cpu_extensions` false forces the portable code (tests compare the two).
  explicit Sha256(bool use_cpu_extensions = true);
  void update(std::span<const uint8_t> bytes);
  std::array<uint8_t, 32> finish();  // the object is spent afterwards

 private:
  void compress(const uint8_t* blocks, size_t count);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_ = 0;
  bool use_shani_;
};

std::string to_hex(std::span<const uint8_t> bytes);
std::string sha256_hex(std::span<const uint8_t> bytes);
// Digest of a whole file, read through a memory map; `progress(done, total)` after each chunk.
Result<std::string> sha256_file_hex(const std::filesystem::path& path,
                                    const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace easel
