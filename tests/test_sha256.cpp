// SHA-256 against the FIPS 180-4 / NIST example vectors, and the SHA-extension path against the
// portable one on every length around the block and padding boundaries.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "io/sha256.h"

namespace easel {
namespace {

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(bytes_of("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(bytes_of("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;
  const std::string block(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(bytes_of(block));
  EXPECT_EQ(to_hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ExtensionsMatchPortableAtEveryLength) {
  std::mt19937 rng(7);
  std::vector<uint8_t> data(300);
  for (auto& b : data) b = uint8_t(rng());
  for (size_t n = 0; n <= data.size(); ++n) {
    Sha256 fast, portable(false);
    // Feed in two uneven pieces so that the buffering path runs too.
    fast.update({data.data(), n / 3});
    fast.update({data.data() + n / 3, n - n / 3});
    portable.update({data.data(), n});
    ASSERT_EQ(to_hex(fast.finish()), to_hex(portable.finish())) << "length " << n;
  }
}

TEST(Sha256, FileDigestAndMissingFile) {
  const auto path = std::filesystem::temp_directory_path() / "easel_sha256_test.bin";
  { std::ofstream(path, std::ios::binary) << "abc"; }
  EXPECT_EQ(sha256_file_hex(path).value(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::filesystem::remove(path);
  auto missing = sha256_file_hex(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace easel
