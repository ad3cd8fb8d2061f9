// How much memory the machine can still give us, so work that would not fit is refused with a
// clear message up front instead of ending in the kernel's out-of-memory killer.
#pragma once

#include <cstdint>
#include <optional>

namespace easel {

// MemAvailable from /proc/meminfo (free memory plus what the kernel can reclaim), in bytes;
// nullopt where it cannot be read.
std::optional<uint64_t> available_memory_bytes();

}  // namespace easel
