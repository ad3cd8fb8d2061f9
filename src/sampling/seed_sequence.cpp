// numpy 1.26 SeedSequence: mix_entropy / get_assembled_entropy / generate_state, with numpy's
// constants. All arithmetic is uint32 with wrap-around, as numpy's Cython code does it.
#include "sampling/seed_sequence.h"

#include <algorithm>

namespace easel::sampling {
namespace {

constexpr uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875;
constexpr uint32_t kInitB = 0x8b51f9dd, kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd, kMixMultR = 0x4973f715;
constexpr int kXShift = 16;

// hashmix: the hash constant advances with every call.
uint32_t hashmix(uint32_t value, uint32_t& hash_const) {
  value ^= hash_const;
  hash_const *= kMultA;
  value *= hash_const;
  value ^= value >> kXShift;
  return value;
}

uint32_t mix(uint32_t x, uint32_t y) {
  uint32_t result = kMixMultL * x - kMixMultR * y;
  result ^= result >> kXShift;
  return result;
}

// _int_to_uint32_array: 0 is one word; otherwise the 32-bit words, lowest first.
void append_words(std::vector<uint32_t>& out, uint64_t n) {
  if (n == 0) out.push_back(0);
  for (; n > 0; n >>= 32) out.push_back(static_cast<uint32_t>(n));
}

}  // namespace

SeedSequence::SeedSequence(uint64_t entropy, const std::vector<uint64_t>& spawn_key, int pool_size)
    : pool_(static_cast<size_t>(std::max(pool_size, kDefaultPoolSize)), 0u) {
  // get_assembled_entropy: run entropy, zero-padded to the pool size when a spawn key follows.
  std::vector<uint32_t> words;
  append_words(words, entropy);
  if (!spawn_key.empty() && words.size() < pool_.size()) words.resize(pool_.size(), 0u);
  for (uint64_t k : spawn_key) append_words(words, k);

  // mix_entropy
  uint32_t hash_const = kInitA;
  for (size_t i = 0; i < pool_.size(); ++i) pool_[i] = hashmix(i < words.size() ? words[i] : 0u, hash_const);
  for (size_t src = 0; src < pool_.size(); ++src)
    for (size_t dst = 0; dst < pool_.size(); ++dst)
      if (src != dst) pool_[dst] = mix(pool_[dst], hashmix(pool_[src], hash_const));
  for (size_t src = pool_.size(); src < words.size(); ++src)
    for (size_t dst = 0; dst < pool_.size(); ++dst) pool_[dst] = mix(pool_[dst], hashmix(words[src], hash_const));
}

std::vector<uint32_t> SeedSequence::generate_state(int n_words) const {
  std::vector<uint32_t> state(static_cast<size_t>(std::max(n_words, 0)));
  uint32_t hash_const = kInitB;
  for (size_t i = 0; i < state.size(); ++i) {
    uint32_t v = pool_[i % pool_.size()];  // cycle(self.pool)
    v ^= hash_const;
    hash_const *= kMultB;
    v *= hash_const;
    v ^= v >> kXShift;
    state[i] = v;
  }
  return state;
}

std::vector<uint64_t> SeedSequence::generate_state64(int n_words) const {
  const std::vector<uint32_t> words = generate_state(2 * std::max(n_words, 0));
  std::vector<uint64_t> out(words.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint64_t{words[2 * i]} | (uint64_t{words[2 * i + 1]} << 32);
  return out;
}

}  // namespace easel::sampling
