// Layout ops (copy, contiguous, permute, cast, concat, pad, fill, upsample) against reference
// loops written independently of the kernels: views are read back with Tensor::to_vector,
// conversions are spelled out with the scalar helpers of core/half.h.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/half.h"
#include "ops_test_util.h"

namespace easel {
namespace {

using testing::expect_same;
using testing::OpsTest;
using testing::random_tensor;
using testing::random_values;

// Random raw elements of any plain dtype, as a contiguous tensor.
Tensor random_raw(const Shape& shape, DType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t bytes = dtype_bytes(dtype, shape.numel());
  std::vector<uint8_t> raw(bytes);
  for (uint8_t& b : raw) b = static_cast<uint8_t>(rng());
  if (dtype == DType::Bool)
    for (uint8_t& b : raw) b &= 1;
  Tensor t = Tensor::from_vector(raw, {static_cast<int64_t>(bytes)});
  // Reinterpret the bytes: a u8 tensor of the right byte count viewed as `dtype` elements.
  return Tensor::from_storage(t.storage(), 0, shape, dtype);
}

// C-order bytes of any view, element by element (through Tensor::to_vector of a same-size type).
std::vector<uint8_t> bytes_of(const Tensor& t) {
  if (t.numel() == 0) return {};  // (to_vector of an empty tensor memcpys from a null pointer)
  switch (dtype_size(t.dtype())) {
    case 1: {
      const auto v = t.bitcast(DType::U8).to_vector<uint8_t>();
      return {v.begin(), v.end()};
    }
    case 2: {
      const auto v = t.bitcast(DType::I16).to_vector<int16_t>();
      std::vector<uint8_t> b(v.size() * 2);
      if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
      return b;
    }
    case 4: {
      const auto v = t.bitcast(DType::I32).to_vector<int32_t>();
      std::vector<uint8_t> b(v.size() * 4);
      if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
      return b;
    }
    default: {
      const auto v = t.bitcast(DType::I64).to_vector<int64_t>();
      std::vector<uint8_t> b(v.size() * 8);
      if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
      return b;
    }
  }
}

TEST_F(OpsTest, ContiguousAndPermuteCopyEveryLayout) {
  struct Case {
    Shape shape;
    std::vector<int> perm;
  };
  const Case cases[] = {
      {{1, 320, 64}, {0, 2, 1}},        // NCHW -> NHWC: the blocked transpose
      {{2, 300, 250}, {0, 2, 1}},       // large enough to be split over threads
      {{37, 53}, {1, 0}},               // odd sizes, partial tiles
      {{2, 67, 45}, {0, 2, 1}},
      {{3, 9, 10, 11}, {0, 3, 1, 2}},
      {{4, 5, 6}, {2, 1, 0}},
      {{2, 3, 40, 2}, {0, 2, 1, 3}},    // innermost dimension stays put
      {{5, 7}, {0, 1}},                 // identity: already contiguous
      {{6, 1, 5}, {2, 1, 0}},
      {{0, 4, 3}, {2, 0, 1}},           // empty
  };
  const DType dtypes[] = {DType::F32, DType::F16, DType::F64, DType::U8, DType::I16};
  uint32_t seed = 1;
  for (const Case& c : cases)
    for (DType dtype : dtypes) {
      const Tensor x = random_raw(c.shape, dtype, ++seed);
      const Tensor view = x.permute(std::span<const int>(c.perm));
      const Tensor out = ops::contiguous(ctx, view);
      ASSERT_TRUE(out.is_contiguous());
      ASSERT_EQ(out.shape(), view.shape());
      EXPECT_EQ(bytes_of(out), bytes_of(view)) << c.shape.str() << " " << dtype_name(dtype);
      // A sliced view too: every other element of the permuted view's first dimension.
      if (view.dim() && view.size(0) > 1) {
        const Tensor sliced = view.slice(0, 1, view.size(0), 2);
        EXPECT_EQ(bytes_of(ops::contiguous(ctx, sliced)), bytes_of(sliced)) << c.shape.str() << " sliced";
      }
    }
}

TEST_F(OpsTest, PermuteOpAndContiguousIdentity) {
  const Tensor x = random_tensor({2, 3, 4, 5}, 1);
  const Tensor p = ops::permute(ctx, x, {0, 2, 3, 1});
  ASSERT_TRUE(p.is_contiguous());
  EXPECT_EQ(p.shape(), Shape({2, 4, 5, 3}));
  EXPECT_EQ(p.to_vector<float>(), x.permute({0, 2, 3, 1}).to_vector<float>());
  // contiguous() of a contiguous tensor is the tensor itself, not a copy.
  EXPECT_EQ(ops::contiguous(ctx, x).raw(), x.raw());
  EXPECT_THROW(ops::permute(ctx, x, {0, 1, 2}), Exception);
  EXPECT_THROW(ops::permute(ctx, x, {0, 1, 1, 2}), Exception);
  EXPECT_THROW(ops::contiguous(ctx, Tensor()), Exception);
}

// --- dtype conversion --------------------------------------------------------------------------

constexpr DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64,
                                DType::I32, DType::I16, DType::I8,   DType::U8,  DType::Bool};

bool is_floating(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

// An element's value: floating types as double, integer types as int64.
struct Value {
  bool floating;
  double f;
  int64_t i;
};

Value read(const uint8_t* p, DType t) {
  auto load = [&](auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  switch (t) {
    case DType::F32: return {true, load(float{}), 0};
    case DType::F16: return {true, f16_to_f32(load(uint16_t{})), 0};
    case DType::BF16: return {true, bf16_to_f32(load(uint16_t{})), 0};
    case DType::F64: return {true, load(double{}), 0};
    case DType::I64: return {false, 0, load(int64_t{})};
    case DType::I32: return {false, 0, load(int32_t{})};
    case DType::I16: return {false, 0, load(int16_t{})};
    case DType::I8: return {false, 0, load(int8_t{})};
    case DType::U8: return {false, 0, load(uint8_t{})};
    case DType::Bool: return {false, 0, load(uint8_t{}) != 0};
  }
  return {};
}

// The conversion the ops document: like torch, halves go through float, float -> int truncates
// toward zero; unlike C it saturates and sends NaN to 0 rather than being undefined.
Value convert(Value v, DType to) {
  if (to == DType::Bool) return {false, 0, v.floating ? int64_t(v.f != 0) : int64_t(v.i != 0)};
  if (is_floating(to)) {
    double f = v.floating ? v.f : (to == DType::F64 ? double(v.i) : double(float(v.i)));
    if (to == DType::F32) f = float(f);
    if (to == DType::F16) f = f16_to_f32(f32_to_f16(float(f)));
    if (to == DType::BF16) f = bf16_to_f32(f32_to_bf16(float(f)));
    return {true, f, 0};
  }
  const int bits = int(dtype_size(to)) * 8;
  const bool is_unsigned = to == DType::U8;
  if (!v.floating) {  // integer to integer wraps (two's complement)
    const uint64_t mask = bits == 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
    uint64_t u = uint64_t(v.i) & mask;
    if (!is_unsigned && bits < 64 && (u >> (bits - 1)) & 1) u |= ~mask;
    return {false, 0, int64_t(u)};
  }
  const double lo = is_unsigned ? 0.0 : -std::ldexp(1.0, bits - 1);
  const double hi = is_unsigned ? 255.0 : std::ldexp(1.0, bits - 1) - 1;
  // Sources narrower than f64 saturate at the float nearest the limit.
  if (std::isnan(v.f)) return {false, 0, 0};
  if (v.f <= lo) return {false, 0, int64_t(lo)};
  if (v.f >= hi) return {false, 0, is_unsigned || bits < 64 ? int64_t(hi) : std::numeric_limits<int64_t>::max()};
  return {false, 0, int64_t(std::trunc(v.f))};
}

bool same_value(const Value& a, const Value& b) {
  if (a.floating != b.floating) return false;
  if (!a.floating) return a.i == b.i;
  if (std::isnan(a.f) || std::isnan(b.f)) return std::isnan(a.f) && std::isnan(b.f);
  return a.f == b.f && std::signbit(a.f) == std::signbit(b.f);
}

// Source values with every edge a conversion has: fractions, rounding ties of f16 and bf16,
// integer limits, values beyond them, infinities, NaN, f16 subnormals.
Tensor edge_values(DType dtype, uint32_t seed) {
  std::vector<double> v = {0.0, -0.0, 0.5, -0.5, 1.5, -2.7, 100.9, -129.3, 127.5, 128.0, 255.9, 256.0, 300.0,
                           -40000.0, 32767.5, 70000.5, 3e9, -3e9, 1e19, -1e19, 1e30, -1e30, NAN, INFINITY,
                           -INFINITY, 1e-8, 6e-5, 65504.0, 65519.0, 65520.0, 1.0 + 1.0 / 2048, 1.0 + 3.0 / 2048,
                           1.0 + 1.0 / 256, 2.0 + 3.0 / 256, 0.1, 1.0 / 3};
  for (float r : random_values(64, seed, -1000.0f, 1000.0f)) v.push_back(r);
  const int64_t n = static_cast<int64_t>(v.size());
  switch (dtype) {
    case DType::F64: return Tensor::from_vector(v, {n});
    case DType::F32: return Tensor::from_vector(std::vector<float>(v.begin(), v.end()), {n});
    case DType::F16:
    case DType::BF16: {
      std::vector<int16_t> bits;
      for (double d : v) bits.push_back(int16_t(dtype == DType::F16 ? f32_to_f16(float(d)) : f32_to_bf16(float(d))));
      return Tensor::from_vector(bits, {n}).bitcast(dtype);
    }
    default: return random_raw({257}, dtype, seed);
  }
}

void expect_converted(const Tensor& src, const Tensor& dst, const std::string& what) {
  ASSERT_EQ(src.shape(), dst.shape()) << what;
  const std::vector<uint8_t> sb = bytes_of(src), db = bytes_of(dst);
  const size_t ss = dtype_size(src.dtype()), ds = dtype_size(dst.dtype());
  for (int64_t i = 0; i < src.numel(); ++i) {
    const Value in = read(&sb[i * ss], src.dtype());
    const Value want = convert(in, dst.dtype()), got = read(&db[i * ds], dst.dtype());
    ASSERT_TRUE(same_value(got, want)) << what << " element " << i << ": from " << (in.floating ? in.f : in.i)
                                       << " got " << (got.floating ? got.f : got.i) << ", expected "
                                       << (want.floating ? want.f : want.i);
  }
}

TEST_F(OpsTest, CastBetweenEveryPairOfDTypes) {
  uint32_t seed = 10;
  for (DType from : kAllDTypes)
    for (DType to : kAllDTypes) {
      const Tensor x = edge_values(from, ++seed);
      const Tensor y = ops::cast(ctx, x, to);
      ASSERT_EQ(y.dtype(), to);
      const std::string what = std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to));
      expect_converted(x, y, what);
      // Strided source and destination go through the element-by-element path.
      const Tensor xs = x.slice(0, 1, x.size(0), 3);
      Tensor dst_base = ops::zeros(ctx, {xs.size(0), 2}, to);
      Tensor dst = dst_base.select(1, 1);
      ops::copy_(ctx, xs, dst);
      expect_converted(xs, dst, what + " strided");
    }
  // cast to the same dtype is the tensor itself, as torch's .to().
  const Tensor x = random_tensor({3, 4}, 1);
  EXPECT_EQ(ops::cast(ctx, x, DType::F32).raw(), x.raw());
}

// The vectorised f16/bf16 conversions agree with the scalar reference on every f16 and bf16 value
// and on a sweep of f32 values including every rounding tie.
TEST_F(OpsTest, HalfConversionsMatchScalarReference) {
  std::vector<int16_t> all(65536);
  std::iota(all.begin(), all.end(), int16_t(-32768));
  for (DType half : {DType::F16, DType::BF16}) {
    const Tensor h = Tensor::from_vector(all, {65536}).bitcast(half);
    const std::vector<float> f = ops::cast(ctx, h, DType::F32).to_vector<float>();
    for (int i = 0; i < 65536; ++i) {
      const uint16_t b = uint16_t(all[i]);
      const float want = half == DType::F16 ? f16_to_f32(b) : bf16_to_f32(b);
      if (std::isnan(want)) {
        ASSERT_TRUE(std::isnan(f[i])) << dtype_name(half) << " bits " << b;
      } else {
        ASSERT_EQ(std::bit_cast<uint32_t>(f[i]), std::bit_cast<uint32_t>(want)) << dtype_name(half) << " bits " << b;
      }
    }
  }
  std::vector<float> xs;
  for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4099) xs.push_back(std::bit_cast<float>(uint32_t(bits)));
  std::mt19937 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t r = rng();
    xs.push_back(std::bit_cast<float>((r & ~0x1fffu) | 0x1000u));  // an f16 tie (normal range)
    xs.push_back(std::bit_cast<float>((r & ~0xffffu) | 0x8000u));  // a bf16 tie
  }
  const Tensor x = Tensor::from_vector(xs, {static_cast<int64_t>(xs.size())});
  for (DType half : {DType::F16, DType::BF16}) {
    const std::vector<int16_t> h = ops::cast(ctx, x, half).bitcast(DType::I16).to_vector<int16_t>();
    for (size_t i = 0; i < xs.size(); ++i) {
      const uint16_t want = half == DType::F16 ? f32_to_f16(xs[i]) : f32_to_bf16(xs[i]);
      const uint16_t got = uint16_t(h[i]);
      if (std::isnan(xs[i])) {
        const float g = half == DType::F16 ? f16_to_f32(got) : bf16_to_f32(got);
        ASSERT_TRUE(std::isnan(g)) << dtype_name(half) << " of NaN bits " << std::bit_cast<uint32_t>(xs[i]);
      } else {
        ASSERT_EQ(got, want) << dtype_name(half) << " of " << xs[i] << " bits " << std::bit_cast<uint32_t>(xs[i]);
      }
    }
  }
}

// --- fill, zeros, full -------------------------------------------------------------------------

TEST_F(OpsTest, FullEveryDType) {
  for (DType dtype : kAllDTypes)
    for (float value : {0.0f, 2.7f, -1.5f, 300.0f, 1e10f, 0.1f}) {
      const Tensor t = ops::full(ctx, {3, 5}, value, dtype);
      ASSERT_EQ(t.dtype(), dtype);
      const std::vector<uint8_t> b = bytes_of(t);
      const Value want = convert({true, value, 0}, dtype);
      for (int i = 0; i < 15; ++i)
        ASSERT_TRUE(same_value(read(&b[i * dtype_size(dtype)], dtype), want)) << dtype_name(dtype) << " " << value;
    }
  const Tensor z = ops::zeros(ctx, {4, 1000});
  for (float v : z.to_vector<float>()) ASSERT_EQ(v, 0.0f);
  EXPECT_EQ(ops::zeros(ctx, {0, 3}).shape(), Shape({0, 3}));
  // Filling a strided view touches only its elements.
  Tensor base = ops::zeros(ctx, {6, 7});
  Tensor view = base.slice(1, 2, 7, 2).slice(0, 1, 6, 1);
  ctx.backend().fill(ctx, view, 5.0);
  const std::vector<float> v = base.to_vector<float>();
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 7; ++j) {
      const bool in_view = i >= 1 && j >= 2 && j % 2 == 0;
      EXPECT_EQ(v[i * 7 + j], in_view ? 5.0f : 0.0f) << i << "," << j;
    }
}

// --- concat --------------------------------------------------------------------------------------

// Reference: output element (C order) taken from whichever input covers its index along dim.
std::vector<float> ref_concat(const std::vector<Tensor>& xs, int d, const Shape& out) {
  std::vector<std::vector<float>> vals;
  for (const Tensor& x : xs) vals.push_back(testing::floats(x));
  std::vector<float> r(static_cast<size_t>(out.numel()));
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t idx[kMaxDims], rem = i;
    for (int k = out.size() - 1; k >= 0; --k) {
      idx[k] = rem % out[k];
      rem /= out[k];
    }
    size_t t = 0;
    while (idx[d] >= xs[t].size(d)) idx[d] -= xs[t++].size(d);
    int64_t j = 0;
    for (int k = 0; k < out.size(); ++k) j = j * xs[t].size(k) + idx[k];
    r[i] = vals[t][j];
  }
  return r;
}

TEST_F(OpsTest, ConcatAlongEveryDim) {
  uint32_t seed = 50;
  for (int dim = -3; dim < 3; ++dim) {
    const int d = dim < 0 ? dim + 3 : dim;
    std::vector<Tensor> xs;
    for (int64_t n : {2, 0, 5, 1}) {
      Shape s = {3, 4, 6};
      s[d] = n;
      // Alternate layouts: contiguous, permuted, strided.
      ++seed;
      xs.push_back(random_tensor(s, seed, testing::kLayouts[seed % 3]));
    }
    const Tensor y = ops::concat(ctx, xs, dim);
    Shape want = {3, 4, 6};
    want[d] = 8;
    ASSERT_EQ(y.shape(), want) << "dim " << dim;
    EXPECT_EQ(y.to_vector<float>(), ref_concat(xs, d, want)) << "dim " << dim;
  }
  // Integer tensors concatenate too.
  const Tensor a = Tensor::from_vector(std::vector<int32_t>{1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector(std::vector<int32_t>{5, 6}, {2, 1});
  const std::vector<Tensor> ab = {a, b};
  EXPECT_EQ(ops::concat(ctx, ab, 1).to_vector<int32_t>(), std::vector<int32_t>({1, 2, 5, 3, 4, 6}));
}

TEST_F(OpsTest, ConcatErrors) {
  const Tensor a = random_tensor({2, 3}, 1);
  EXPECT_THROW(ops::concat(ctx, std::vector<Tensor>{}, 0), Exception);
  EXPECT_THROW(ops::concat(ctx, std::vector<Tensor>{a, random_tensor({3, 3}, 2)}, 1), Exception);
  EXPECT_THROW(ops::concat(ctx, std::vector<Tensor>{a, random_tensor({2, 3, 1}, 3)}, 0), Exception);
  EXPECT_THROW(ops::concat(ctx, std::vector<Tensor>{a, ops::cast(ctx, a, DType::F16)}, 0), Exception);
  EXPECT_THROW(ops::concat(ctx, std::vector<Tensor>{a, a}, 2), Exception);
  try {
    ops::concat(ctx, std::vector<Tensor>{a, random_tensor({2, 4}, 4)}, 0);
    FAIL() << "concat of [2, 3] and [2, 4] along 0 did not throw";
  } catch (const Exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[2, 4]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
  }
}

// --- pad -----------------------------------------------------------------------------------------

std::vector<float> ref_pad(const Tensor& x, const std::vector<int64_t>& pads, float value, const Shape& out) {
  const std::vector<float> xv = x.to_vector<float>();
  std::vector<float> r(static_cast<size_t>(out.numel()), value);
  const int nd = x.dim();
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rem = i, j = 0, stride = 1;
    bool inside = true;
    for (int k = nd - 1; k >= 0; --k) {
      const int64_t o = rem % out[k];
      rem /= out[k];
      const int p = nd - 1 - k;  // pads pair index for dimension k
      const int64_t src = o - (2 * p < static_cast<int>(pads.size()) ? pads[2 * p] : 0);
      if (src < 0 || src >= x.size(k)) inside = false;
      j += src * stride;
      stride *= x.size(k);
    }
    if (inside) r[i] = xv[j];
  }
  return r;
}

TEST_F(OpsTest, PadLikeTorch) {
  const std::vector<std::vector<int64_t>> cases = {
      {1, 2},       {1, 2, 3, 0},  {-1, 2},     {2, -3, -1, 1}, {0, 0, 0, 0, 1, 1},
      {-5, 0},      {3, -5},       {10, -6},    {-2, -3},       {0, 0},
  };
  uint32_t seed = 70;
  for (const auto& pads : cases) {
    ++seed;
    const Tensor x = random_tensor({2, 3, 5}, seed, testing::kLayouts[seed % 3]);
    Shape out = x.shape();
    for (size_t p = 0; p < pads.size() / 2; ++p) out[2 - p] += pads[2 * p] + pads[2 * p + 1];
    const Tensor y = ops::pad(ctx, x, pads, -7.5f);
    ASSERT_EQ(y.shape(), out);
    EXPECT_EQ(testing::floats(y), ref_pad(x, pads, -7.5f, out));
  }
  const std::vector<int64_t> odd = {1}, too_many = {1, 1, 1, 1, 1, 1, 1, 1}, negative = {-3, -3};
  const Tensor x = random_tensor({2, 3, 5}, 1);
  EXPECT_THROW(ops::pad(ctx, x, odd), Exception);
  EXPECT_THROW(ops::pad(ctx, x, too_many), Exception);
  EXPECT_THROW(ops::pad(ctx, x, negative), Exception);
  const std::vector<int64_t> pads = {1, 1};
  const Tensor h = ops::pad(ctx, ops::cast(ctx, x, DType::F16), pads, 2.0f);
  EXPECT_EQ(h.dtype(), DType::F16);
  EXPECT_EQ(f16_to_f32(uint16_t(h.bitcast(DType::I16).to_vector<int16_t>()[0])), 2.0f);
}

// --- upsample ------------------------------------------------------------------------------------

TEST_F(OpsTest, UpsampleNearestLikeTorch) {
  uint32_t seed = 90;
  for (int scale : {1, 2, 3})
    for (testing::Layout layout : testing::kLayouts) {
      const Tensor x = random_tensor({2, 3, 5, 7}, ++seed, layout);
      const Tensor y = ops::upsample_nearest2d(ctx, x, scale);
      ASSERT_EQ(y.shape(), Shape({2, 3, 5 * scale, 7 * scale}));
      const std::vector<float> xv = x.to_vector<float>(), yv = y.to_vector<float>();
      const int64_t H = 5 * scale, W = 7 * scale;
      for (int64_t nc = 0; nc < 6; ++nc)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            ASSERT_EQ(yv[(nc * H + h) * W + w], xv[(nc * 5 + h / scale) * 7 + w / scale])
                << "scale " << scale << " " << testing::layout_name(layout);
    }
  EXPECT_EQ(ops::upsample_nearest2d(ctx, ops::zeros(ctx, {0, 3, 2, 2}), 2).shape(), Shape({0, 3, 4, 4}));
  EXPECT_THROW(ops::upsample_nearest2d(ctx, random_tensor({3, 5, 7}, 1), 2), Exception);
  EXPECT_THROW(ops::upsample_nearest2d(ctx, random_tensor({1, 3, 5, 7}, 1), 0), Exception);
}

// --- copy_ ---------------------------------------------------------------------------------------

TEST_F(OpsTest, CopyIntoViews) {
  // Broadcast source, converted to the destination's dtype.
  const Tensor row = random_tensor({1, 5}, 1);
  Tensor dst = ops::zeros(ctx, {4, 5}, DType::F16);
  ops::copy_(ctx, row, dst);
  const std::vector<int16_t> h = dst.bitcast(DType::I16).to_vector<int16_t>();
  const std::vector<float> rv = row.to_vector<float>();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(uint16_t(h[i]), f32_to_f16(rv[i % 5]));

  // Into a slice: nothing outside it changes.
  Tensor base = ops::zeros(ctx, {5, 6});
  Tensor window = base.narrow(0, 1, 3).narrow(1, 2, 3);
  const Tensor src = random_tensor({3, 3}, 2, testing::Layout::Permuted);
  ops::copy_(ctx, src, window);
  const std::vector<float> bv = base.to_vector<float>(), sv = src.to_vector<float>();
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) {
      const bool in = i >= 1 && i < 4 && j >= 2 && j < 5;
      EXPECT_EQ(bv[i * 6 + j], in ? sv[(i - 1) * 3 + (j - 2)] : 0.0f) << i << "," << j;
    }

  // Overlapping source and destination in one storage: the result is as if src were read first.
  Tensor t = random_tensor({4, 50}, 3);
  const std::vector<float> tv = t.to_vector<float>();
  Tensor right = t.narrow(1, 1, 49);
  ops::copy_(ctx, t.narrow(1, 0, 49), right);
  const std::vector<float> after = t.to_vector<float>();
  for (int i = 0; i < 4; ++i)
    for (int j = 1; j < 50; ++j) ASSERT_EQ(after[i * 50 + j], tv[i * 50 + j - 1]) << i << "," << j;

  // Errors: shapes that do not broadcast, read-only destination.
  Tensor d2 = ops::zeros(ctx, {4, 5});
  EXPECT_THROW(ops::copy_(ctx, random_tensor({4, 4}, 4), d2), Exception);
  EXPECT_THROW(ops::copy_(ctx, random_tensor({2, 4, 5}, 5), d2), Exception);
  Tensor weight = testing::read_only_tensor({1, 1, 1, 1});
  EXPECT_THROW(ops::copy_(ctx, random_tensor({4}, 6), weight), Exception);
}

}  // namespace
}  // namespace easel
