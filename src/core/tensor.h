// Tensor: a view (shape, strides in elements, byte offset, dtype) over refcounted Storage.
// Views (slice, permute, transpose, reshape of contiguous data) share the storage; ops in
// src/ops produce new tensors. Weights loaded from a checkpoint are tensors over the mapped file.
#pragma once

#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace easel {

class Allocator;

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false (an absent bias, an optional input)

  // Uninitialised contiguous tensor from an allocator.
  static Tensor empty(Allocator& allocator, const Shape& shape, DType dtype);
  // Contiguous tensor over existing storage starting at byte_offset; checks the bytes fit.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t byte_offset, const Shape& shape, DType dtype);
  // Strided view over existing storage (strides in elements, non-negative; e.g. a transposed
  // weight in a torch checkpoint); checks that every element it can reach lies inside the storage.
  static Tensor from_storage_strided(std::shared_ptr<Storage> storage, size_t byte_offset, const Shape& shape,
                                     const Shape& strides, DType dtype);
  // Host tensor owning a copy of `values` (tests, small constants).
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int dim() const { return shape_.size(); }
  int64_t size(int d) const { return shape_.at(d); }
  int64_t stride(int d) const { return strides_.at(d); }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return dtype_bytes(dtype_, numel()); }
  Device device() const { return storage_ ? storage_->device() : Device{}; }
  bool is_contiguous() const;
  bool read_only() const { return storage_ && storage_->read_only(); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t byte_offset() const { return offset_; }

  // Pointer to the first element. data<T>() checks T matches the dtype.
  void* raw() const { return storage_ ? storage_->data() + offset_ : nullptr; }
  template <class T>
  T* data() const {
    EASEL_CHECK(dtype_of<T>() == dtype_, "tensor is ", dtype_name(dtype_), ", not ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }
  // Copies the elements out in C order (any strides). For tests and small tensors.
  template <class T>
  std::vector<T> to_vector() const;

  // --- views: share storage, never copy ---
  // New shape over the same contiguous data; one dimension may be -1.
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const { return view(shape); }
  Tensor permute(std::initializer_list<int> dims) const;
  Tensor permute(std::span<const int> dims) const;
  Tensor transpose(int a, int b) const;
  // Elements start, start+step, ... < end along `dim` (negative start/end count from the end).
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const { return slice(dim, start, start + length); }
  Tensor select(int dim, int64_t index) const;  // removes `dim`
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor flatten(int start_dim = 0, int end_dim = -1) const;
  // Broadcast view: size-1 dimensions (and missing leading ones) repeat with stride 0.
  Tensor expand(const Shape& shape) const;
  // Same bytes seen as another dtype of the same size (e.g. f16 bits as i16).
  Tensor bitcast(DType dtype) const;

  // "f32[1, 64, 32, 32]"
  std::string describe() const;

 private:
  Tensor(std::shared_ptr<Storage> storage, size_t offset, const Shape& shape, const Shape& strides, DType dtype)
      : storage_(std::move(storage)), offset_(offset), shape_(shape), strides_(strides), dtype_(dtype) {}

  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  Shape strides_;  // elements
  DType dtype_ = DType::F32;
};

namespace detail {
std::shared_ptr<Storage> make_vector_storage(const void* data, size_t bytes);
void strided_copy_out(const Tensor& t, void* dst);  // C-order gather of any view
}  // namespace detail

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  EASEL_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
              " values for shape ", shape.str());
  auto storage = detail::make_vector_storage(values.data(), values.size() * sizeof(T));
  return from_storage(std::move(storage), 0, shape, dtype_of<T>());
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  EASEL_CHECK(dtype_of<T>() == dtype_, "to_vector: tensor is ", dtype_name(dtype_), ", not ",
              dtype_name(dtype_of<T>()));
  EASEL_CHECK(device().is_cpu(), "to_vector: tensor is on ", device().str(),
              "; bring it to the host with ops::to_host first");
  std::vector<T> out(static_cast<size_t>(numel()));
  detail::strided_copy_out(*this, out.data());
  return out;
}

}  // namespace easel
