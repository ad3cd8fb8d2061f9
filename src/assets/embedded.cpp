// The assembler copies the files in at build time (.incbin): no generated source, no copy step.
// CMake passes EASEL_ASSETS_DIR and a hash of the files, so a changed file rebuilds this one, and
// for web/ the table of its files (EASEL_WEB_TABLE, generated at configure time).
#include "assets/assets.h"

#define EASEL_EMBED_PATH(symbol, path)                                \
  asm(".section .rodata\n"                                            \
      ".balign 16\n"                                                  \
      ".global " #symbol "_begin\n" #symbol "_begin:\n"               \
      ".incbin \"" path "\"\n"                                        \
      ".global " #symbol "_end\n" #symbol "_end:\n"                   \
      ".previous\n");                                                 \
  extern "C" const uint8_t symbol##_begin[];                          \
  extern "C" const uint8_t symbol##_end[];
#define EASEL_EMBED(symbol, file) EASEL_EMBED_PATH(symbol, EASEL_ASSETS_DIR "/" file)

EASEL_EMBED(easel_clip_merges, "clip/bpe_simple_vocab_16e6.txt.gz")

#define EASEL_WEB_FILE(index, file) EASEL_EMBED_PATH(easel_web_##index, EASEL_WEB_DIR "/" file)
#include EASEL_WEB_TABLE
#undef EASEL_WEB_FILE

namespace easel::assets {

std::span<const uint8_t> clip_merges_gz() {
  return {easel_clip_merges_begin, static_cast<size_t>(easel_clip_merges_end - easel_clip_merges_begin)};
}

std::span<const WebFile> web_files() {
#define EASEL_WEB_FILE(index, file) \
  WebFile{file, {easel_web_##index##_begin, static_cast<size_t>(easel_web_##index##_end - easel_web_##index##_begin)}},
  static const WebFile files[] = {
#include EASEL_WEB_TABLE
  };
#undef EASEL_WEB_FILE
  return files;
}

}  // namespace easel::assets
