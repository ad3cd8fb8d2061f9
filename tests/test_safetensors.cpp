#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/half.h"
#include "io/safetensors.h"

namespace easel {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  auto dir = fs::temp_directory_path() / ("easel_st_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A file made by hand: 8-byte length, header text, data bytes.
std::string handmade(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return s + header + std::string(data_bytes, '\x01');
}

Result<SafetensorsFile> open_bytes(const std::string& bytes, const std::string& name = "case.safetensors") {
  auto p = temp_dir() / name;
  spit(p, bytes);
  return SafetensorsFile::open(p);
}

TEST(Safetensors, WriteThenReadRoundTrips) {
  std::vector<float> a(2 * 3 * 5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.5f;
  std::vector<int64_t> b = {1, -2, 3};
  Tensor ta = Tensor::from_vector(a, {2, 3, 5});
  auto path = temp_dir() / "rt.safetensors";
  ASSERT_TRUE(write_safetensors(path, {{"a", ta}, {"a_t", ta.transpose(1, 2)}, {"b", Tensor::from_vector(b, {3})}},
                                {{"format", "pt"}})
                  .ok());
  auto st = SafetensorsFile::open(path);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->metadata().at("format"), "pt");
  EXPECT_EQ(st->entries().size(), 3u);
  Tensor ra = st->get("a").value();
  EXPECT_TRUE(ra.read_only());
  EXPECT_EQ(ra.shape(), Shape({2, 3, 5}));
  EXPECT_EQ(ra.to_vector<float>(), a);
  Tensor rt = st->get("a_t").value();
  EXPECT_EQ(rt.shape(), Shape({2, 5, 3}));
  EXPECT_EQ(rt.to_vector<float>(), ta.transpose(1, 2).to_vector<float>());
  EXPECT_EQ(st->get("b")->to_vector<int64_t>(), b);
  EXPECT_FALSE(st->get("missing").ok());
  EXPECT_NE(st->get("missing").error().message().find("no tensor 'missing'"), std::string::npos);
}

TEST(Safetensors, ZeroCopyViewsIntoTheMappedFile) {
  auto path = temp_dir() / "zc.safetensors";
  ASSERT_TRUE(write_safetensors(path, {{"x", Tensor::from_vector(std::vector<float>(64, 1.0f), {64})}}).ok());
  auto st = SafetensorsFile::open(path).value();
  Tensor x1 = st.get("x").value(), x2 = st.get("x").value();
  EXPECT_EQ(x1.raw(), x2.raw());  // same mapped bytes, no copy
}

TEST(Safetensors, MisalignedDataIsCopiedNotMisread) {
  // Header of odd length puts the f32 data at an odd address.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  std::string bytes = handmade(header, 0) + std::string(1, '\0');
  float v[2] = {1.5f, -2.0f};
  bytes.append(reinterpret_cast<const char*>(v), 8);
  auto st = open_bytes(bytes, "odd.safetensors");
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->get("x")->to_vector<float>(), (std::vector<float>{1.5f, -2.0f}));
}

TEST(Safetensors, ShardedIndex) {
  auto dir = temp_dir() / "sharded";
  fs::create_directories(dir);
  ASSERT_TRUE(write_safetensors(dir / "m-1.safetensors", {{"a", Tensor::from_vector(std::vector<float>{1, 2}, {2})}}).ok());
  ASSERT_TRUE(write_safetensors(dir / "m-2.safetensors", {{"b", Tensor::from_vector(std::vector<float>{3}, {1})}}).ok());
  spit(dir / "m.safetensors.index.json", R"({"metadata":{},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors"}})");
  auto ck = Checkpoint::open(dir / "m.safetensors.index.json");
  ASSERT_TRUE(ck.ok()) << ck.error().message();
  EXPECT_EQ(ck->names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ck->get("b")->to_vector<float>(), std::vector<float>{3});
  EXPECT_EQ(ck->total_bytes(), 12u);

  spit(dir / "bad.safetensors.index.json", R"({"weight_map":{"a":"m-2.safetensors"}})");
  auto bad = Checkpoint::open(dir / "bad.safetensors.index.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("does not hold it"), std::string::npos) << bad.error().message();
  spit(dir / "escape.safetensors.index.json", R"({"weight_map":{"a":"../m-1.safetensors"}})");
  EXPECT_FALSE(Checkpoint::open(dir / "escape.safetensors.index.json").ok());
}

// --- Parser robustness: every malformed input gives an error message, never a crash ---

void expect_error(const std::string& bytes, const std::string& needle) {
  auto st = open_bytes(bytes);
  ASSERT_FALSE(st.ok()) << "accepted a malformed file; expected an error mentioning '" << needle << "'";
  EXPECT_NE(st.error().message().find(needle), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().message().find("case.safetensors"), std::string::npos) << "error must name the file";
}

TEST(ParserSafetensors, MalformedHeadersGiveClearErrors) {
  expect_error("", "too short");
  expect_error("1234567", "too short");
  expect_error(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "implausible");
  expect_error(std::string("\x10\0\0\0\0\0\0\0", 8) + "{}", "truncated");
  expect_error(handmade("{not json", 0), "not valid JSON");
  expect_error(handmade("[1,2]", 0), "not a JSON object");
  expect_error(handmade(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", 4), "missing 'dtype'");
  expect_error(handmade(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", 4), "missing 'shape'");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[1]}})", 4), "missing 'data_offsets'");
  expect_error(handmade(R"({"x":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", 4), "unsupported dtype 'Q9'");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-negative");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), "non-negative");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}})", 4), "needs 12 bytes");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), "truncated");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8), "reversed");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}})", 4),
               "too large");
  expect_error(handmade(R"({"x":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4), "dimensions");
  expect_error(handmade(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
               "overlap");
  expect_error(handmade(R"({"__metadata__":{"k":1}})", 0), "metadata 'k'");
}

TEST(ParserSafetensors, EveryTruncationOfAValidFileIsRejected) {
  auto path = temp_dir() / "full.safetensors";
  ASSERT_TRUE(write_safetensors(path, {{"w", Tensor::from_vector(std::vector<float>(37, 2.0f), {37})},
                                       {"b", Tensor::from_vector(std::vector<float>(5, 1.0f), {5})}})
                  .ok());
  const std::string full = slurp(path);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    auto st = open_bytes(full.substr(0, cut));
    EXPECT_FALSE(st.ok()) << "truncated at " << cut << " of " << full.size() << " was accepted";
  }
  EXPECT_TRUE(open_bytes(full).ok());
}

TEST(ParserSafetensors, RandomBytesAndFlippedBytesNeverCrash) {
  auto path = temp_dir() / "flip.safetensors";
  ASSERT_TRUE(write_safetensors(path, {{"w", Tensor::from_vector(std::vector<float>(16, 2.0f), {4, 4})}}).ok());
  const std::string full = slurp(path);
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = full;
    const int flips = 1 + trial % 4;
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    auto st = open_bytes(bytes);
    if (st.ok()) {  // harmless corruption (e.g. in the data): every tensor must still be in range
      for (const auto& e : st->entries()) EXPECT_EQ(st->tensor(e).nbytes(), e.end - e.begin);
    }
  }
  for (int trial = 0; trial < 100; ++trial) {
    std::string bytes(rng() % 200, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    if (trial % 2 && bytes.size() >= 8) {  // plausible length prefix, garbage header
      const uint64_t len = bytes.size() - 8;
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
    }
    (void)open_bytes(bytes);
  }
}

TEST(ParserSafetensors, MissingFileAndDirectory) {
  auto missing = SafetensorsFile::open(temp_dir() / "does_not_exist.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("does_not_exist.safetensors: cannot open"), std::string::npos);
  EXPECT_FALSE(SafetensorsFile::open(temp_dir()).ok());
}

}  // namespace
}  // namespace easel
