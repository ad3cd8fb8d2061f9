// Element types. Plain types have a fixed size per element; quantized block types (added later:
// q8_0, q4_0, q4_k, ...) store `block_elems` elements in `block_bytes` bytes, so sizes are always
// computed through the helpers here, never as numel * sizeof.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace easel {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I64,
  I32,
  I16,
  I8,
  U8,
  Bool,
  // Quantized block types go here.
};

struct DTypeInfo {
  std::string_view name;             // our name: "f32", "f16", ...
  std::string_view safetensors_name; // "F32", "F16", ...
  int64_t block_elems;               // elements per block (1 for plain types)
  size_t block_bytes;                // bytes per block
  bool is_float;
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
inline bool dtype_is_float(DType t) { return dtype_info(t).is_float; }
// Bytes for n elements; n must be a whole number of blocks.
size_t dtype_bytes(DType t, int64_t n);
// Element size in bytes for plain types (throws for block types).
size_t dtype_size(DType t);
std::optional<DType> dtype_from_safetensors(std::string_view name);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int16_t>() { return DType::I16; }
template <> constexpr DType dtype_of<int8_t>() { return DType::I8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

}  // namespace easel
