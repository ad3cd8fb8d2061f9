#include "core/dtype.h"

#include <array>

#include "core/error.h"

namespace easel {
namespace {

constexpr std::array<DTypeInfo, 10> kInfo = {{
    {"f32", "F32", 1, 4, true},
    {"f16", "F16", 1, 2, true},
    {"bf16", "BF16", 1, 2, true},
    {"f64", "F64", 1, 8, true},
    {"i64", "I64", 1, 8, false},
    {"i32", "I32", 1, 4, false},
    {"i16", "I16", 1, 2, false},
    {"i8", "I8", 1, 1, false},
    {"u8", "U8", 1, 1, false},
    {"bool", "BOOL", 1, 1, false},
}};

}  // namespace

const DTypeInfo& dtype_info(DType t) { return kInfo.at(static_cast<size_t>(t)); }

size_t dtype_bytes(DType t, int64_t n) {
  const DTypeInfo& info = dtype_info(t);
  EASEL_CHECK(n % info.block_elems == 0, info.name, ": ", n, " elements is not a whole number of ",
              info.block_elems, "-element blocks");
  return static_cast<size_t>(n / info.block_elems) * info.block_bytes;
}

size_t dtype_size(DType t) {
  const DTypeInfo& info = dtype_info(t);
  EASEL_CHECK(info.block_elems == 1, info.name, " is a block type: it has no per-element size");
  return info.block_bytes;
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (kInfo[i].safetensors_name == name) return static_cast<DType>(i);
  return std::nullopt;
}

}  // namespace easel
