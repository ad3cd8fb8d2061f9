#include "io/torch_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "io/pickle.h"
#include "io/zip_reader.h"

namespace easel {
namespace {

using pickle::Kind;
using pickle::Value;

// torch.save of a pre-1.6 PyTorch starts with the pickled magic number 0x1950a86a20f9469cfc6c.
constexpr unsigned char kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr uint64_t kMaxPickleBytes = 512ull << 20;  // a Stable Diffusion data.pkl is a few hundred kB
constexpr int kMaxNameDepth = 64;                   // nested dicts in a state dict

bool starts_with(std::span<const std::byte> bytes, const void* magic, size_t n) {
  return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
}

// torch.<X>Storage: the element type of a storage.
std::optional<DType> storage_dtype(std::string_view name) {
  static const std::pair<std::string_view, DType> kTypes[] = {
      {"torch.FloatStorage", DType::F32},  {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
      {"torch.DoubleStorage", DType::F64}, {"torch.LongStorage", DType::I64},  {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},  {"torch.CharStorage", DType::I8},   {"torch.ByteStorage", DType::U8},
      {"torch.BoolStorage", DType::Bool},
  };
  for (const auto& [n, t] : kTypes)
    if (n == name) return t;
  return std::nullopt;
}

// Callables that build the data itself.
constexpr std::string_view kBuilders[] = {
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state", "collections.OrderedDict", "torch.Size",
};
// Callables found beside the weights (training state, hyper-parameters) that are harmless to
// name and are read as opaque values: nothing here is ever called.
constexpr std::string_view kInert[] = {
    "numpy.core.multiarray.scalar", "numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "_codecs.encode", "builtins.set", "builtins.frozenset", "torch.nn.modules.container.ParameterDict",
    "__builtin__.set", "argparse.Namespace", "torch.device",
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "torch.float32", "torch.float16", "torch.bfloat16", "torch.float64", "torch.int64", "torch.int32",
    "torch.uint8", "torch.bool",
};

bool in(std::span<const std::string_view> list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

struct StorageRef {
  size_t index;
  DType dtype;
  uint64_t numel;
};
struct TensorRef {
  size_t storage;
  DType dtype;
  uint64_t offset;  // elements
  Shape shape, strides;
};
struct Opaque {
  std::string what;
};

Result<Shape> int_tuple(const Value& v, const char* what) {
  if (!v.is(Kind::Tuple) && !v.is(Kind::List)) return Error(cat("tensor ", what, " is a ", pickle::kind_name(v.kind), ", not a tuple"));
  if (v.items().size() > static_cast<size_t>(kMaxDims))
    return Error(cat("tensor has ", v.items().size(), " dimensions (at most ", kMaxDims, " supported)"));
  Shape s;
  for (const Value& d : v.items()) {
    if (!d.is(Kind::Int) || d.i < 0) return Error(cat("tensor ", what, " holds something other than a non-negative integer"));
    s.push_back(d.i);
  }
  return s;
}

// Reads the pickle against the archive: storages become zip entries, tensors are checked.
class Reader {
 public:
  Reader(const ZipReader& zip, std::string prefix) : zip_(zip), prefix_(std::move(prefix)) {}

  std::vector<TorchCheckpointFile::StorageSpan> storages;

  pickle::Rules rules() {
    pickle::Rules r;
    r.allowed = [](std::string_view module, std::string_view name) {
      const std::string full = cat(module, ".", name);
      // Any torch.<X>Storage may be named; load_storage says which element types are supported.
      const bool storage = module == "torch" && name.size() > 7 && name.substr(name.size() - 7) == "Storage";
      return in(kBuilders, full) || in(kInert, full) || storage;
    };
    r.call = [this](pickle::Document& doc, const std::string& callable, std::span<const Value> args) {
      return call(doc, callable, args);
    };
    r.persistent_load = [this](pickle::Document& doc, const Value& pid) { return load_storage(doc, pid); };
    return r;
  }

 private:
  Result<Value> call(pickle::Document& doc, const std::string& callable, std::span<const Value> args) {
    if (callable == "collections.OrderedDict") {
      if (!args.empty()) return Error("OrderedDict with initial items is not supported");
      return doc.dict();
    }
    if (callable == "torch._utils._rebuild_tensor_v2" || callable == "torch._utils._rebuild_tensor")
      return rebuild_tensor(doc, args);
    if (callable == "torch._utils._rebuild_parameter" || callable == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || !std::any_cast<TensorRef>(&args[0].custom()))
        return Error(callable + " of something that is not a tensor");
      return args[0];
    }
    if (callable == "torch.Size") {
      if (args.size() != 1 || !args[0].is(Kind::Tuple)) return Error("torch.Size of something that is not a tuple");
      return args[0];
    }
    if (in(kInert, callable)) return doc.custom(Opaque{callable});
    return Error(cat("the pickle calls ", callable, ", which a state dict does not"));
  }

  // ('storage', torch.FloatStorage, key, location, numel)
  Result<Value> load_storage(pickle::Document& doc, const Value& pid) {
    const auto& t = pid.items();
    if (!pid.is(Kind::Tuple) || t.size() != 5 || !t[0].is(Kind::String) || t[0].text() != "storage" ||
        !t[1].is(Kind::Global) || !t[2].is(Kind::String) || !t[4].is(Kind::Int) || t[4].i < 0)
      return Error("a persistent id that is not a torch storage ('storage', type, key, location, numel)");
    const auto dtype = storage_dtype(t[1].text());
    if (!dtype) return Error(cat("storage type ", t[1].text(), " is not supported"));
    const std::string& key = t[2].text();
    const uint64_t numel = static_cast<uint64_t>(t[4].i);
    if (auto it = by_key_.find(key); it != by_key_.end()) {
      const StorageRef& s = it->second;
      if (s.dtype != *dtype || s.numel != numel)
        return Error(cat("storage '", key, "' is referred to with two different types or sizes"));
      return doc.custom(s);
    }
    const std::string record = prefix_ + "data/" + key;
    const ZipEntry* entry = zip_.find(record);
    if (!entry) return Error(cat("storage '", key, "' has no record ", record, " in the archive"));
    EASEL_TRY(auto bytes, zip_.stored(*entry));
    const size_t elem = dtype_size(*dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / elem || numel * elem != bytes.size())
      return Error(cat("storage '", key, "' holds ", numel, " ", dtype_name(*dtype), " elements but its record ", record,
                       " is ", bytes.size(), " bytes"));
    StorageRef s{storages.size(), *dtype, numel};
    storages.push_back({entry->data_offset, entry->size});
    by_key_.emplace(key, s);
    return doc.custom(s);
  }

  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  Result<Value> rebuild_tensor(pickle::Document& doc, std::span<const Value> args) {
    if (args.size() < 4) return Error("_rebuild_tensor_v2 with fewer than 4 arguments");
    const auto* storage = std::any_cast<StorageRef>(&args[0].custom());
    if (!storage) return Error("_rebuild_tensor_v2 of something that is not a storage");
    if (!args[1].is(Kind::Int) || args[1].i < 0) return Error("tensor storage offset is not a non-negative integer");
    EASEL_TRY(Shape shape, int_tuple(args[2], "size"));
    EASEL_TRY(Shape strides, int_tuple(args[3], "stride"));
    if (strides.size() != shape.size())
      return Error(cat("tensor size ", shape.str(), " and stride ", strides.str(), " differ in length"));
    const uint64_t offset = static_cast<uint64_t>(args[1].i);
    // The last element it reaches must lie inside the storage (sizes are < 2^63 each: use 128 bits).
    unsigned __int128 last = offset;
    bool empty = false;
    for (int i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0) empty = true;
      else last += static_cast<unsigned __int128>(shape[i] - 1) * static_cast<uint64_t>(strides[i]);
    }
    unsigned __int128 numel = 1;
    for (int i = 0; i < shape.size(); ++i) {
      numel *= static_cast<uint64_t>(shape[i]);
      if (numel > (static_cast<unsigned __int128>(1) << 62)) return Error(cat("tensor size ", shape.str(), " is too large"));
    }
    if (!empty && last >= storage->numel)
      return Error(cat("tensor of size ", shape.str(), ", stride ", strides.str(), " at offset ", offset,
                       " reaches past its storage of ", storage->numel, " elements"));
    if (empty && offset > storage->numel)
      return Error(cat("tensor offset ", offset, " is past its storage of ", storage->numel, " elements"));
    return doc.custom(TensorRef{storage->index, storage->dtype, offset, shape, strides});
  }

  const ZipReader& zip_;
  std::string prefix_;
  std::unordered_map<std::string, StorageRef> by_key_;
};

std::string key_text(const Value& key) {
  if (key.is(Kind::String)) return key.text();
  if (key.is(Kind::Int)) return std::to_string(key.i);
  return {};
}

std::string scalar_text(const Value& v) {
  switch (v.kind) {
    case Kind::Int: return std::to_string(v.i);
    case Kind::Bool: return v.i ? "True" : "False";
    case Kind::Float: return cat(v.f);
    case Kind::String: return v.text();
    default: return {};
  }
}

}  // namespace

bool looks_like_torch_checkpoint(std::span<const std::byte> bytes) {
  return starts_with(bytes, "PK\x03\x04", 4) || starts_with(bytes, "PK\x05\x06", 4) ||
         starts_with(bytes, kLegacyMagic, sizeof kLegacyMagic);
}

Result<TorchCheckpointFile> TorchCheckpointFile::open(const std::filesystem::path& path) {
  EASEL_TRY(auto file, MappedFile::open(path));
  return parse(std::move(file));
}

Result<TorchCheckpointFile> TorchCheckpointFile::parse(std::shared_ptr<const MappedFile> file) {
  const std::string name = file->path().string();
  if (starts_with(file->bytes(), kLegacyMagic, sizeof kLegacyMagic))
    return Error(name + ": legacy torch format (saved by PyTorch before 1.6) is not supported; re-save it with a recent "
                        "PyTorch (torch.save(torch.load(f), f)) or convert it to safetensors");
  EASEL_TRY(ZipReader zip, ZipReader::parse(file));

  // The records sit under one folder named after the file: "<name>/data.pkl".
  const ZipEntry* pkl = nullptr;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos || e.name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    if (pkl) return Error(cat(name, ": holds two pickles (", pkl->name, " and ", e.name, "): not a torch checkpoint"));
    pkl = &e;
  }
  if (!pkl) return Error(name + ": a zip archive without <name>/data.pkl: not a PyTorch checkpoint");
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - std::string_view("data.pkl").size());
  if (const ZipEntry* order = zip.find(prefix + "byteorder")) {
    EASEL_TRY(auto text, zip.read(*order, 64));
    const std::string_view s(reinterpret_cast<const char*>(text.data()), text.size());
    if (s != "little") return Error(cat(name, ": byte order '", s.substr(0, 16), "' is not supported (only little-endian)"));
  }
  EASEL_TRY(auto pickle_bytes, zip.read(*pkl, kMaxPickleBytes));

  Reader reader(zip, prefix);
  auto doc = pickle::unpickle(pickle_bytes, reader.rules());
  if (!doc.ok()) return doc.error().context(name);  // "model.ckpt: refuses to load: the pickle calls os.system, ..."
  const Value& root = doc->root;

  TorchCheckpointFile ck;
  ck.file_ = file;
  ck.storages_ = std::move(reader.storages);
  const Value* tensors = &root;
  if (const auto* t = std::any_cast<TensorRef>(&root.custom()); t)
    return Error(name + ": holds a single tensor, not a state dict of named tensors");
  if (!root.is(Kind::Dict)) return Error(cat(name, ": holds a ", pickle::kind_name(root.kind), ", not a state dict"));
  const auto& top = root.items();
  for (size_t i = 0; i + 1 < top.size(); i += 2) {
    const std::string key = key_text(top[i]);
    if (key == "state_dict" && top[i + 1].is(Kind::Dict)) tensors = &top[i + 1];
    const std::string text = scalar_text(top[i + 1]);
    if (!key.empty() && !text.empty() && text.size() < 4096) ck.metadata_[key] = text;
  }

  // Depth-first over nested dicts, with an explicit stack (the pickle may nest, or even cycle).
  struct Frame {
    const Value* dict;
    size_t next;
    std::string prefix;
  };
  std::vector<Frame> stack{{tensors, 0, ""}};
  while (!stack.empty()) {
    Frame& f = stack.back();
    const auto& items = f.dict->items();
    if (f.next + 1 >= items.size()) {
      stack.pop_back();
      continue;
    }
    const Value& key = items[f.next];
    const Value& value = items[f.next + 1];
    f.next += 2;
    const std::string tensor_name = f.prefix + key_text(key);
    if (value.is(Kind::Dict)) {
      if (static_cast<int>(stack.size()) >= kMaxNameDepth)
        return Error(cat(name, ": the state dict nests more than ", kMaxNameDepth, " levels deep"));
      stack.push_back({&value, 0, tensor_name + "."});
      continue;
    }
    const auto* t = std::any_cast<TensorRef>(&value.custom());
    if (!t) continue;  // a number, a string, training state: not a weight
    if (!key.is(Kind::String) && !key.is(Kind::Int)) return Error(cat(name, ": a tensor under a key that is not a name"));
    if (ck.index_.count(tensor_name)) return Error(cat(name, ": two tensors are named '", tensor_name, "'"));
    const size_t elem = dtype_size(t->dtype);
    TensorEntry e;
    e.name = tensor_name;
    e.dtype = t->dtype;
    e.shape = t->shape;
    e.begin = static_cast<size_t>(ck.storages_[t->storage].offset + t->offset * elem);
    e.end = e.begin + dtype_bytes(t->dtype, t->shape.numel());
    ck.index_.emplace(tensor_name, ck.entries_.size());
    ck.entries_.push_back(std::move(e));
    ck.layouts_.push_back({t->storage, t->offset * elem, t->strides});
  }
  return ck;
}

const TensorEntry* TorchCheckpointFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Result<Tensor> TorchCheckpointFile::get(std::string_view name) const {
  const TensorEntry* e = find(name);
  if (!e) return Error(cat(path().string(), ": no tensor '", name, "'"));
  return tensor(*e);
}

Tensor TorchCheckpointFile::tensor(const TensorEntry& entry) const {
  const size_t i = static_cast<size_t>(&entry - entries_.data());
  EASEL_CHECK(i < entries_.size(), "tensor(): the entry is not from ", path().string());
  const Layout& layout = layouts_[i];
  const StorageSpan& span = storages_[layout.storage];
  std::byte* data = const_cast<std::byte*>(file_->data()) + span.offset;
  std::shared_ptr<Storage> storage;
  const size_t align = std::min<size_t>(dtype_size(entry.dtype), 8);
  if (reinterpret_cast<uintptr_t>(data) % align != 0) {
    // torch aligns storages to 64 bytes; copy the rare archive that does not (re-zipped by hand).
    storage = detail::make_vector_storage(data, static_cast<size_t>(span.bytes));
  } else {
    storage = std::make_shared<BorrowedStorage>(file_, data, static_cast<size_t>(span.bytes), Device{}, /*read_only=*/true);
  }
  if (contiguous_strides(entry.shape) == layout.strides)
    return Tensor::from_storage(std::move(storage), static_cast<size_t>(layout.byte_offset), entry.shape, entry.dtype);
  return Tensor::from_storage_strided(std::move(storage), static_cast<size_t>(layout.byte_offset), entry.shape,
                                      layout.strides, entry.dtype);
}

}  // namespace easel
