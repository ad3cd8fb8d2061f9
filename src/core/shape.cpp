#include "core/shape.h"

#include "core/error.h"

namespace easel {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const int64_t> dims) {
  EASEL_CHECK(dims.size() <= kMaxDims, "a tensor has at most ", kMaxDims, " dimensions, got ", dims.size());
  n_ = static_cast<int>(dims.size());
  std::copy(dims.begin(), dims.end(), d_.begin());
}

int64_t Shape::at(int i) const { return d_[normalize_dim(i, n_)]; }

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < n_; ++i) n *= d_[i];
  return n;
}

void Shape::push_back(int64_t v) { insert(n_, v); }

void Shape::insert(int pos, int64_t v) {
  EASEL_CHECK(n_ < kMaxDims, "a tensor has at most ", kMaxDims, " dimensions");
  EASEL_CHECK(pos >= 0 && pos <= n_, "Shape::insert: position ", pos, " out of range for ", str());
  for (int i = n_; i > pos; --i) d_[i] = d_[i - 1];
  d_[pos] = v;
  ++n_;
}

void Shape::erase(int pos) {
  EASEL_CHECK(pos >= 0 && pos < n_, "Shape::erase: position ", pos, " out of range for ", str());
  for (int i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
  --n_;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < n_; ++i) {
    if (i) s += ", ";
    s += std::to_string(d_[i]);
  }
  return s + "]";
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides = shape;
  int64_t s = 1;
  for (int i = shape.size() - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

int normalize_dim(int dim, int ndim) {
  const int d = dim < 0 ? dim + ndim : dim;
  EASEL_CHECK(d >= 0 && d < ndim, "dimension ", dim, " out of range for a ", ndim, "-d tensor");
  return d;
}

}  // namespace easel
