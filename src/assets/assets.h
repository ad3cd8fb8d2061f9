// Data files built into the easel binary (the folder assets/ of the source tree), so that a
// checkpoint alone is enough to run: checkpoints do not carry their tokenizer's vocabulary.
#pragma once

#include <cstdint>
#include <span>

namespace easel::assets {

// openai/CLIP's bpe_simple_vocab_16e6.txt.gz (MIT), the merges of every CLIP tokenizer SD uses.
std::span<const uint8_t> clip_merges_gz();

}  // namespace easel::assets
