// The assembler copies the files in at build time (.incbin): no generated source, no copy step.
// CMake passes EASEL_ASSETS_DIR and a hash of the files, so a changed file rebuilds this one.
#include "assets/assets.h"

#define EASEL_EMBED(symbol, file)                                     \
  asm(".section .rodata\n"                                            \
      ".balign 16\n"                                                  \
      ".global " #symbol "_begin\n" #symbol "_begin:\n"               \
      ".incbin \"" EASEL_ASSETS_DIR "/" file "\"\n"                   \
      ".global " #symbol "_end\n" #symbol "_end:\n"                   \
      ".previous\n");                                                 \
  extern "C" const uint8_t symbol##_begin[];                          \
  extern "C" const uint8_t symbol##_end[];

EASEL_EMBED(easel_clip_merges, "clip/bpe_simple_vocab_16e6.txt.gz")

namespace easel::assets {

std::span<const uint8_t> clip_merges_gz() {
  return {easel_clip_merges_begin, static_cast<size_t>(easel_clip_merges_end - easel_clip_merges_begin)};
}

}  // namespace easel::assets
