// numpy's SeedSequence (numpy 1.26 numpy/random/bit_generator.pyx), bit for bit: the entropy
// mixer torchsde's BrownianInterval uses to give every node of its tree its own torch seeds.
//
// Use:
//   SeedSequence ss({seed}, {spawn_key, depth}, /*pool_size=*/24);
//   std::vector<uint32_t> seeds = ss.generate_state(4);   // np.uint32 words
#pragma once

#include <cstdint>
#include <vector>

namespace easel::sampling {

class SeedSequence {
 public:
  static constexpr int kDefaultPoolSize = 4;  // numpy's DEFAULT_POOL_SIZE (also its minimum)

  // `entropy` and each `spawn_key` element are non-negative Python ints; numpy splits each into
  // 32-bit words, lowest first (_coerce_to_uint32_array). A pool_size below 4 is raised to 4
  // (numpy refuses it; torchsde passes 24).
  SeedSequence(uint64_t entropy, const std::vector<uint64_t>& spawn_key = {}, int pool_size = kDefaultPoolSize);

  // generate_state(n_words, np.uint32) and (n_words, np.uint64): the latter pairs two uint32
  // words, the first as the low half.
  std::vector<uint32_t> generate_state(int n_words) const;
  std::vector<uint64_t> generate_state64(int n_words) const;

 private:
  std::vector<uint32_t> pool_;
};

}  // namespace easel::sampling
