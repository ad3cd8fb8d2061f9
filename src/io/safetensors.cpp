#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

namespace easel {
namespace {

using json = nlohmann::json;

// The reference implementation refuses headers over 100 MB; a real one is a few hundred kB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Parses one header entry; `name` is only for messages.
Result<TensorEntry> parse_entry(const std::string& file, const std::string& name, const json& j,
                                uint64_t data_size) {
  const std::string where = cat(file, ": tensor '", name, "'");
  if (!j.is_object()) return Error(where + ": header entry is not an object");
  const auto dt = j.find("dtype");
  const auto sh = j.find("shape");
  const auto off = j.find("data_offsets");
  if (dt == j.end() || !dt->is_string()) return Error(where + ": missing 'dtype'");
  if (sh == j.end() || !sh->is_array()) return Error(where + ": missing 'shape'");
  if (off == j.end() || !off->is_array() || off->size() != 2) return Error(where + ": missing 'data_offsets'");

  TensorEntry e;
  e.name = name;
  const std::string dtype_name = dt->get<std::string>();
  auto dtype = dtype_from_safetensors(dtype_name);
  if (!dtype) return Error(cat(where, ": unsupported dtype '", dtype_name, "'"));
  e.dtype = *dtype;

  if (sh->size() > static_cast<size_t>(kMaxDims))
    return Error(cat(where, ": ", sh->size(), " dimensions (at most ", kMaxDims, " supported)"));
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) return Error(where + ": shape holds a value that is not a non-negative integer");
    const uint64_t v = d.get<uint64_t>();
    if (v > 0 && numel > std::numeric_limits<uint64_t>::max() / 2 / v)
      return Error(where + ": shape " + sh->dump() + " is too large");
    numel *= v;
    e.shape.push_back(static_cast<int64_t>(v));
  }
  for (const auto& o : *off)
    if (!o.is_number_unsigned()) return Error(where + ": data_offsets are not non-negative integers");
  const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (begin > end) return Error(cat(where, ": data_offsets [", begin, ", ", end, "] are reversed"));
  const uint64_t need = static_cast<uint64_t>(dtype_bytes(e.dtype, static_cast<int64_t>(numel)));
  if (end - begin != need)
    return Error(cat(where, ": ", dtype_name, sh->dump(), " needs ", human_bytes(need), " (", need,
                     " bytes) but its data_offsets [", begin, ", ", end, "] hold ", end - begin));
  if (end > data_size)
    return Error(cat(where, " needs bytes up to ", end, " of the data block but the file ends at ", data_size,
                     " (", human_bytes(data_size), "): the file is truncated"));
  e.begin = begin;
  e.end = end;
  return e;
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  EASEL_TRY(auto file, MappedFile::open(path));
  return parse(std::move(file));
}

Result<SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<const MappedFile> file) {
  const std::string name = file->path().string();
  const uint64_t size = file->size();
  if (size < 8) return Error(cat(name, ": ", size, " bytes is too short for a safetensors file (no 8-byte header length)"));
  const uint64_t header_len = read_u64_le(file->data());
  if (header_len > kMaxHeaderBytes)
    return Error(cat(name, ": header length ", header_len, " is implausible (over ", human_bytes(kMaxHeaderBytes),
                     "): not a safetensors file, or a corrupt one"));
  if (header_len > size - 8)
    return Error(cat(name, ": header needs ", header_len, " bytes but the file has only ", size - 8,
                     " after the length: the file is truncated"));
  const char* text = reinterpret_cast<const char*>(file->data() + 8);
  json header = json::parse(text, text + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Error(name + ": header is not valid JSON: not a safetensors file, or a corrupt one");
  if (!header.is_object()) return Error(name + ": header is not a JSON object");

  SafetensorsFile st;
  st.file_ = std::move(file);
  st.data_start_ = static_cast<size_t>(8 + header_len);
  const uint64_t data_size = size - st.data_start_;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return Error(name + ": __metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) return Error(cat(name, ": metadata '", mk, "' is not a string"));
        st.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    EASEL_TRY(TensorEntry entry, parse_entry(name, key, value, data_size));
    st.entries_.push_back(std::move(entry));
  }
  std::sort(st.entries_.begin(), st.entries_.end(),
            [](const TensorEntry& a, const TensorEntry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (size_t i = 1; i < st.entries_.size(); ++i) {
    const auto &prev = st.entries_[i - 1], &cur = st.entries_[i];
    if (cur.begin < prev.end)
      return Error(cat(name, ": tensors '", prev.name, "' [", prev.begin, ", ", prev.end, ") and '", cur.name, "' [",
                       cur.begin, ", ", cur.end, ") overlap"));
  }
  for (size_t i = 0; i < st.entries_.size(); ++i) st.index_.emplace(st.entries_[i].name, i);
  return st;
}

const TensorEntry* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::tensor(const TensorEntry& e) const {
  std::byte* data = const_cast<std::byte*>(file_->data()) + data_start_ + e.begin;
  const size_t bytes = e.end - e.begin;
  const size_t align = dtype_info(e.dtype).block_bytes;
  if (align > 1 && reinterpret_cast<uintptr_t>(data) % std::min<size_t>(align, 8) != 0) {
    // The format does not promise alignment; kernels may assume it, so copy the rare odd one.
    auto storage = detail::make_vector_storage(data, bytes);
    return Tensor::from_storage(std::move(storage), 0, e.shape, e.dtype);
  }
  auto storage = std::make_shared<BorrowedStorage>(file_, data, bytes, Device{}, /*read_only=*/true);
  return Tensor::from_storage(std::move(storage), 0, e.shape, e.dtype);
}

Result<Tensor> SafetensorsFile::get(std::string_view name) const {
  const TensorEntry* e = find(name);
  if (!e) return Error(cat(path().string(), ": no tensor '", name, "'"));
  return tensor(*e);
}

// ---------------------------------------------------------------------------------------------
// Writing

Status write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!t.device().is_cpu()) return Error(cat(path.string(), ": tensor '", name, "' is not on the CPU"));
    const uint64_t bytes = t.nbytes();
    header[name] = {{"dtype", std::string(dtype_info(t.dtype()).safetensors_name)},
                    {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data block 8-byte aligned

  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Error(cat(path.string(), ": cannot write: ", std::strerror(errno)));
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t(text.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    std::vector<std::byte> buffer;
    for (const auto& [name, t] : tensors) {
      buffer.resize(t.nbytes());
      detail::strided_copy_out(t, buffer.data());
      out.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
    }
    out.flush();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      return Error(cat(path.string(), ": write failed (disk full?)"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error(cat(path.string(), ": cannot move the written file into place: ", ec.message()));
  return {};
}

}  // namespace easel
