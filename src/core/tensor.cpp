#include "core/tensor.h"

#include <cstdlib>
#include <numeric>

#include "core/allocator.h"

namespace easel {

Tensor Tensor::empty(Allocator& allocator, const Shape& shape, DType dtype) {
  for (int64_t d : shape) EASEL_CHECK(d >= 0, "negative dimension in shape ", shape.str());
  auto storage = allocator.allocate(dtype_bytes(dtype, shape.numel()));
  return Tensor(std::move(storage), 0, shape, contiguous_strides(shape), dtype);
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t byte_offset, const Shape& shape, DType dtype) {
  EASEL_CHECK(storage != nullptr, "from_storage: no storage");
  const size_t bytes = dtype_bytes(dtype, shape.numel());
  EASEL_CHECK(byte_offset <= storage->size() && bytes <= storage->size() - byte_offset, "tensor ",
              dtype_name(dtype), shape.str(), " needs ", bytes, " bytes at offset ", byte_offset,
              " but the storage holds ", storage->size());
  return Tensor(std::move(storage), byte_offset, shape, contiguous_strides(shape), dtype);
}

Tensor Tensor::from_storage_strided(std::shared_ptr<Storage> storage, size_t byte_offset, const Shape& shape,
                                    const Shape& strides, DType dtype) {
  EASEL_CHECK(storage != nullptr, "from_storage_strided: no storage");
  EASEL_CHECK(strides.size() == shape.size(), "from_storage_strided: ", strides.size(), " strides for shape ",
              shape.str());
  const size_t elem = dtype_size(dtype);
  // Bytes from the first element to the end of the last one it can reach (0 for an empty view).
  unsigned __int128 reach = 0;
  bool empty = false;
  for (int i = 0; i < shape.size(); ++i) {
    EASEL_CHECK(shape[i] >= 0 && strides[i] >= 0, "from_storage_strided: shape ", shape.str(), " strides ",
                strides.str());
    if (shape[i] == 0) empty = true;
    else reach += static_cast<unsigned __int128>(shape[i] - 1) * static_cast<uint64_t>(strides[i]);
  }
  if (!empty) reach = (reach + 1) * elem;
  else reach = 0;
  EASEL_CHECK(byte_offset <= storage->size() && reach <= storage->size() - byte_offset, "tensor ",
              dtype_name(dtype), shape.str(), " with strides ", strides.str(), " at offset ", byte_offset,
              " reaches past the storage of ", storage->size(), " bytes");
  return Tensor(std::move(storage), byte_offset, shape, strides, dtype);
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::view(const Shape& requested) const {
  EASEL_CHECK(is_contiguous(), "view ", requested.str(), " of non-contiguous ", describe(),
              ": make it contiguous first");
  Shape shape = requested;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      EASEL_CHECK(infer < 0, "view ", requested.str(), ": only one dimension can be -1");
      infer = i;
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    EASEL_CHECK(known > 0 && numel() % known == 0, "view ", requested.str(), " does not fit ", describe());
    shape[infer] = numel() / known;
  }
  EASEL_CHECK(shape.numel() == numel(), "view ", requested.str(), " has ", shape.numel(), " elements, ",
              describe(), " has ", numel());
  return Tensor(storage_, offset_, shape, contiguous_strides(shape), dtype_);
}

Tensor Tensor::permute(std::initializer_list<int> dims) const {
  return permute(std::span<const int>(dims.begin(), dims.size()));
}

Tensor Tensor::permute(std::span<const int> dims) const {
  EASEL_CHECK(static_cast<int>(dims.size()) == dim(), "permute of ", describe(), " needs ", dim(), " dims, got ",
              dims.size());
  Shape shape = shape_, strides = strides_;
  bool used[kMaxDims] = {};
  for (int i = 0; i < dim(); ++i) {
    const int d = normalize_dim(dims[i], dim());
    EASEL_CHECK(!used[d], "permute: dimension ", d, " repeated");
    used[d] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return Tensor(storage_, offset_, shape, strides, dtype_);
}

Tensor Tensor::transpose(int a, int b) const {
  a = normalize_dim(a, dim());
  b = normalize_dim(b, dim());
  Tensor t = *this;
  std::swap(t.shape_[a], t.shape_[b]);
  std::swap(t.strides_[a], t.strides_[b]);
  return t;
}

Tensor Tensor::slice(int d, int64_t start, int64_t end, int64_t step) const {
  d = normalize_dim(d, dim());
  const int64_t n = shape_[d];
  EASEL_CHECK(step > 0, "slice: step must be positive, got ", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Tensor t = *this;
  t.offset_ += static_cast<size_t>(start * strides_[d]) * dtype_size(dtype_);
  t.shape_[d] = (end - start + step - 1) / step;
  t.strides_[d] = strides_[d] * step;
  return t;
}

Tensor Tensor::select(int d, int64_t index) const {
  d = normalize_dim(d, dim());
  if (index < 0) index += shape_[d];
  EASEL_CHECK(index >= 0 && index < shape_[d], "select: index ", index, " out of range for dim ", d, " of ",
              describe());
  Tensor t = slice(d, index, index + 1);
  t.shape_.erase(d);
  t.strides_.erase(d);
  return t;
}

Tensor Tensor::unsqueeze(int d) const {
  d = normalize_dim(d, dim() + 1);
  Tensor t = *this;
  const int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(d, 1);
  t.strides_.insert(d, stride);
  return t;
}

Tensor Tensor::squeeze(int d) const {
  d = normalize_dim(d, dim());
  EASEL_CHECK(shape_[d] == 1, "squeeze: dim ", d, " of ", describe(), " is not 1");
  Tensor t = *this;
  t.shape_.erase(d);
  t.strides_.erase(d);
  return t;
}

Tensor Tensor::flatten(int start_dim, int end_dim) const {
  start_dim = normalize_dim(start_dim, dim());
  end_dim = normalize_dim(end_dim, dim());
  Shape shape;
  for (int i = 0; i < start_dim; ++i) shape.push_back(shape_[i]);
  int64_t merged = 1;
  for (int i = start_dim; i <= end_dim; ++i) merged *= shape_[i];
  shape.push_back(merged);
  for (int i = end_dim + 1; i < dim(); ++i) shape.push_back(shape_[i]);
  return view(shape);
}

Tensor Tensor::expand(const Shape& shape) const {
  EASEL_CHECK(shape.size() >= dim(), "expand ", describe(), " to ", shape.str(), ": fewer dimensions");
  Shape strides = shape;
  const int lead = shape.size() - dim();
  for (int i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      strides[i] = 0;
      continue;
    }
    const int64_t have = shape_[i - lead];
    EASEL_CHECK(have == shape[i] || have == 1, "cannot broadcast ", describe(), " to ", shape.str());
    strides[i] = have == shape[i] ? strides_[i - lead] : 0;
  }
  return Tensor(storage_, offset_, shape, strides, dtype_);
}

Tensor Tensor::bitcast(DType dtype) const {
  EASEL_CHECK(dtype_size(dtype) == dtype_size(dtype_), "bitcast ", describe(), " to ", dtype_name(dtype),
              ": element sizes differ");
  Tensor t = *this;
  t.dtype_ = dtype;
  return t;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  std::string s = std::string(dtype_name(dtype_)) + shape_.str();
  if (!device().is_cpu()) s += " on " + device().str();
  return s;
}

namespace detail {

std::shared_ptr<Storage> make_vector_storage(const void* data, size_t bytes) {
  auto buffer = std::make_shared<std::vector<std::byte>>(std::max<size_t>(bytes, 1));
  if (bytes) std::memcpy(buffer->data(), data, bytes);
  std::byte* ptr = buffer->data();
  return std::make_shared<BorrowedStorage>(std::move(buffer), ptr, bytes, Device{}, false);
}

void strided_copy_out(const Tensor& t, void* dst) {
  const size_t elem = dtype_size(t.dtype());
  const auto* src = static_cast<const std::byte*>(t.raw());
  auto* out = static_cast<std::byte*>(dst);
  if (t.numel() == 0) return;  // an empty vector's data() may be null
  if (t.is_contiguous()) {
    std::memcpy(out, src, t.nbytes());
    return;
  }
  const int nd = t.dim();
  int64_t index[kMaxDims] = {};
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (int d = 0; d < nd; ++d) off += index[d] * t.stride(d);
    std::memcpy(out + i * elem, src + off * static_cast<int64_t>(elem), elem);
    for (int d = nd - 1; d >= 0; --d) {
      if (++index[d] < t.size(d)) break;
      index[d] = 0;
    }
  }
}

}  // namespace detail
}  // namespace easel
