// Golden test of TorchGenerator against torch's own outputs (set `torch_rng`, see its README.md):
// every tensor must match bit for bit. The cases are read from <data root>/torch_rng/cases.json and
// interpreted generically (op, api, seed, shape, dtype, sequence/call, kernel), so the test runs
// unchanged on any other set with the same layout.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/half.h"
#include "io/safetensors.h"
#include "sampling/torch_rng.h"
#include "test_data.h"

namespace easel {
namespace {

using nlohmann::json;

// Seeds are Python ints: 0..2^64-1, or negative (taken modulo 2^64 by torch).
uint64_t seed_of(const json& s) {
  if (s.is_number_unsigned()) return s.get<uint64_t>();
  return static_cast<uint64_t>(s.get<int64_t>());
}

size_t numel_of(const json& shape) {
  size_t n = 1;
  for (const auto& d : shape) n *= d.get<size_t>();
  return n;
}

// torch dtype names as written by the generator script.
bool parse_dtype(const std::string& name, DType* out) {
  static const std::map<std::string, DType> names = {
      {"float32", DType::F32}, {"float", DType::F32},    {"float16", DType::F16},
      {"half", DType::F16},    {"bfloat16", DType::BF16}, {"float64", DType::F64},
      {"double", DType::F64}};
  auto it = names.find(name);
  if (it == names.end()) return false;
  *out = it->second;
  return true;
}

size_t elem_bytes(DType t) { return t == DType::F64 ? 8 : t == DType::F32 ? 4 : 2; }

struct Call {
  std::string op;  // "randn" or "rand"
  size_t numel = 0;
  DType dtype = DType::F32;
};

// Runs one torch call on `g` and returns the output's bytes. `scalar_kernel`: the case was made with
// ATEN_CPU_CAPABILITY=default. Sets *error for an op/dtype we cannot run.
std::vector<uint8_t> run_call(TorchGenerator& g, const Call& c, bool scalar_kernel, std::string* error) {
  std::vector<uint8_t> bytes(c.numel * elem_bytes(c.dtype));
  auto f32 = std::span<float>(reinterpret_cast<float*>(bytes.data()), c.numel);
  auto f64 = std::span<double>(reinterpret_cast<double*>(bytes.data()), c.numel);
  auto u16 = std::span<uint16_t>(reinterpret_cast<uint16_t*>(bytes.data()), c.numel);
  if (c.op == "randn") {
    switch (c.dtype) {
      case DType::F32: scalar_kernel ? g.randn_scalar_kernel(f32) : g.randn(f32); break;
      case DType::F64: g.randn(f64); break;
      case DType::F16: g.randn_f16(u16); break;
      case DType::BF16: g.randn_bf16(u16); break;
      default: *error = "unsupported dtype"; break;
    }
  } else if (c.op == "rand") {
    switch (c.dtype) {
      case DType::F32: g.rand(f32); break;
      case DType::F64: g.rand(f64); break;
      case DType::F16: g.rand_f16(u16); break;
      case DType::BF16: g.rand_bf16(u16); break;
      default: *error = "unsupported dtype"; break;
    }
  } else {
    *error = "unknown op '" + c.op + "'";
  }
  return bytes;
}

std::string format_value(const uint8_t* p, DType t) {
  char buf[96];
  switch (t) {
    case DType::F32: {
      float v;
      uint32_t b;
      std::memcpy(&v, p, 4);
      std::memcpy(&b, p, 4);
      std::snprintf(buf, sizeof buf, "%.9g (0x%08x)", v, b);
      break;
    }
    case DType::F64: {
      double v;
      uint64_t b;
      std::memcpy(&v, p, 8);
      std::memcpy(&b, p, 8);
      std::snprintf(buf, sizeof buf, "%.17g (0x%016llx)", v, static_cast<unsigned long long>(b));
      break;
    }
    default: {
      uint16_t b;
      std::memcpy(&b, p, 2);
      const float v = t == DType::F16 ? f16_to_f32(b) : bf16_to_f32(b);
      std::snprintf(buf, sizeof buf, "%.6g (0x%04x)", v, b);
      break;
    }
  }
  return buf;
}

// Empty when equal; otherwise how many elements differ and the first one.
std::string compare_bits(const uint8_t* got, const uint8_t* want, size_t numel, DType t) {
  const size_t es = elem_bytes(t);
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < numel; ++i) {
    if (std::memcmp(got + i * es, want + i * es, es) != 0) {
      if (bad++ == 0) first = i;
    }
  }
  if (bad == 0) return {};
  std::ostringstream out;
  out << bad << " of " << numel << " elements differ; first at index " << first << ": got "
      << format_value(got + first * es, t) << ", torch " << format_value(want + first * es, t);
  return out.str();
}

size_t count_occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

class TorchRngGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::set_dir("torch_rng");
    std::ifstream f(dir_ / "cases.json");
    ASSERT_TRUE(f.good()) << "cannot open " << (dir_ / "cases.json");
    index_ = json::parse(f);
    auto file = SafetensorsFile::open(dir_ / "rng.safetensors");
    ASSERT_TRUE(file.ok()) << file.error().message();
    file_.emplace(std::move(file).value());
  }

  // The calls made on the case's generator, up to and including the one that produced it.
  // Listed sequences come from cases.json["sequences"]; for any other sequence the calls are the
  // cases of that sequence with the same seed (each call k is the case with call == k), and a call
  // without its own case repeats this case's op and shape.
  std::vector<Call> calls_of(const json& c, DType dtype) const {
    const size_t call = c.value("call", 0);
    std::vector<Call> calls(call + 1, Call{c["op"].get<std::string>(), numel_of(c["shape"]), dtype});
    const std::string seq = c.value("sequence", "");
    if (seq.empty()) return calls;
    if (index_.contains("sequences") && index_["sequences"].contains(seq)) {
      const auto& listed = index_["sequences"][seq];
      for (size_t k = 0; k <= call && k < listed.size(); ++k) {
        calls[k].op = listed[k][0].get<std::string>();
        calls[k].numel = numel_of(listed[k][1]);
      }
      return calls;
    }
    for (const auto& other : index_["cases"]) {
      if (other.value("sequence", "") != seq || other["seed"] != c["seed"]) continue;
      const size_t k = other.value("call", 0);
      if (k > call) continue;
      DType t = dtype;
      parse_dtype(other.value("dtype", ""), &t);
      calls[k] = Call{other["op"].get<std::string>(), numel_of(other["shape"]), t};
    }
    return calls;
  }

  // Reproduces one case; returns an empty string when bit-exact, else what went wrong.
  std::string check_case(const json& c) const {
    const std::string key = c.at("key").get<std::string>();
    DType dtype;
    if (!parse_dtype(c.at("dtype").get<std::string>(), &dtype)) return "unknown dtype " + c["dtype"].dump();
    const std::string api = c.value("api", "generator");
    const std::string kernel = c.value("kernel", "");
    const bool scalar_kernel = kernel.find("ATEN_CPU_CAPABILITY=default") != std::string::npos;
    const size_t numel = numel_of(c.at("shape"));

    std::vector<uint8_t> got;
    std::string error;
    if (api == "generator-list") {
      // diffusers randn_tensor with a list of generators: batch item i is its own call of shape
      // (1, ...) on generator i; the items are concatenated along dim 0.
      const auto& seeds = c.at("seed");
      if (!seeds.is_array() || seeds.empty() || numel % seeds.size() != 0)
        return "generator-list case needs a list of seeds dividing the batch: " + seeds.dump();
      const Call item{c.at("op").get<std::string>(), numel / seeds.size(), dtype};
      for (const auto& s : seeds) {
        TorchGenerator g(seed_of(s));
        auto bytes = run_call(g, item, scalar_kernel, &error);
        got.insert(got.end(), bytes.begin(), bytes.end());
      }
    } else {
      const uint64_t seed = seed_of(c.at("seed"));
      // A sequence that seeds before every call (`manual_seed(s); randn(1); manual_seed(s); ...`).
      const bool reseed_each_call = count_occurrences(c.value("python", ""), "manual_seed(") > 1;
      TorchGenerator g(seed);
      if (c.contains("initial_seed") && g.initial_seed() != seed_of(c["initial_seed"]))
        return "initial_seed() is " + std::to_string(g.initial_seed()) + ", torch says " + c["initial_seed"].dump();
      for (const Call& call : calls_of(c, dtype)) {
        if (reseed_each_call) g.manual_seed(seed);
        got = run_call(g, call, scalar_kernel, &error);
      }
    }
    if (!error.empty()) return error;

    const TensorEntry* entry = file_->find(key);
    if (!entry) return "no tensor '" + key + "' in rng.safetensors";
    if (entry->dtype != dtype) return "stored dtype is " + std::string(dtype_name(entry->dtype));
    const Tensor want = file_->tensor(*entry);
    if (static_cast<size_t>(want.numel()) != numel || want.nbytes() != got.size())
      return "stored shape " + want.shape().str() + " does not match the case's shape " + c["shape"].dump();
    return compare_bits(got.data(), static_cast<const uint8_t*>(want.raw()), numel, dtype);
  }

  std::filesystem::path dir_;
  json index_;
  std::optional<SafetensorsFile> file_;
};

TEST_F(TorchRngGolden, EveryCaseBitExact) {
  ASSERT_TRUE(index_.contains("cases") && index_["cases"].is_array() && !index_["cases"].empty())
      << "cases.json lists no cases";
  size_t passed = 0;
  for (const auto& c : index_["cases"]) {
    const std::string problem = check_case(c);
    if (problem.empty()) {
      ++passed;
    } else {
      ADD_FAILURE() << c.value("key", "?") << " (" << c.value("python", "") << "): " << problem;
    }
  }
  EXPECT_EQ(passed, index_["cases"].size());
  std::printf("torch_rng: %zu of %zu cases bit-exact\n", passed, index_["cases"].size());
}

// Checks that need no golden data.

TEST(TorchGenerator, EngineIsMt19937OnTheLow32BitsOfTheSeed) {
  for (uint64_t seed : {uint64_t{0}, uint64_t{42}, uint64_t{0xffffffffu}, TorchGenerator::kDefaultSeed,
                        ~uint64_t{0}}) {
    TorchGenerator g(seed);
    std::mt19937 ref(static_cast<uint32_t>(seed));
    for (int i = 0; i < 2000; ++i) ASSERT_EQ(g.random(), ref()) << "seed " << seed << " output " << i;
    EXPECT_EQ(g.initial_seed(), seed);
  }
  TorchGenerator a(7), b(7 + (uint64_t{1} << 32));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.random64(), b.random64());
}

TEST(TorchGenerator, Random64IsHighThenLow) {
  TorchGenerator a(3), b(3);
  for (int i = 0; i < 100; ++i) {
    const uint64_t hi = b.random(), lo = b.random();
    EXPECT_EQ(a.random64(), (hi << 32) | lo);
  }
}

TEST(TorchGenerator, CachedNormalSurvivesCallsAndIsDroppedByReseed) {
  TorchGenerator g(5);
  float one[1];
  g.randn(std::span<float>(one));
  ASSERT_TRUE(g.cached_normal().has_value());
  const double cached = *g.cached_normal();
  float block[32];
  g.randn(std::span<float>(block));  // the 16-wide path neither uses nor clears it
  ASSERT_TRUE(g.cached_normal().has_value());
  g.randn(std::span<float>(one));
  EXPECT_EQ(one[0], static_cast<float>(cached));
  EXPECT_FALSE(g.cached_normal().has_value());
  g.randn(std::span<float>(one));
  g.manual_seed(5);
  EXPECT_FALSE(g.cached_normal().has_value());
}

TEST(TorchGenerator, DrawCounts) {
  // randn float32 with n >= 16 consumes n draws, plus 16 when n % 16 != 0.
  for (size_t n : {16u, 17u, 31u, 32u, 100u}) {
    TorchGenerator g(11), ref(11);
    std::vector<float> out(n);
    g.randn(std::span<float>(out));
    for (size_t i = 0; i < n + (n % 16 ? 16 : 0); ++i) ref.random();
    EXPECT_EQ(g.random(), ref.random()) << "n = " << n;
  }
}

}  // namespace
}  // namespace easel
