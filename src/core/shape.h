// A tensor shape (or strides): up to kMaxDims sizes stored inline, no heap allocation.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace easel {

constexpr int kMaxDims = 8;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::span<const int64_t> dims);

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  // Python-style index: -1 is the last dimension.
  int64_t at(int i) const;
  int64_t numel() const;
  const int64_t* begin() const { return d_.data(); }
  const int64_t* end() const { return d_.data() + n_; }
  std::span<const int64_t> span() const { return {d_.data(), static_cast<size_t>(n_)}; }

  void push_back(int64_t v);
  void insert(int pos, int64_t v);
  void erase(int pos);

  bool operator==(const Shape& o) const {
    return n_ == o.n_ && std::equal(begin(), end(), o.begin());
  }
  std::string str() const;  // "[1, 3, 32, 32]"

 private:
  std::array<int64_t, kMaxDims> d_{};
  int n_ = 0;
};

// Row-major (C order) strides, in elements.
Shape contiguous_strides(const Shape& shape);
// Resolves a Python-style dimension index against ndim; throws on out of range.
int normalize_dim(int dim, int ndim);

}  // namespace easel
