// Data files built into the easel binary (the folders assets/ and web/ of the source tree), so that
// a checkpoint alone is enough to run: checkpoints do not carry their tokenizer's vocabulary, and
// the web UI needs no files beside the program.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace easel::assets {

// openai/CLIP's bpe_simple_vocab_16e6.txt.gz (MIT), the merges of every CLIP tokenizer SD uses.
std::span<const uint8_t> clip_merges_gz();

// A file of the web UI: its path under web/ ("index.html", "js/app.js") and its bytes.
struct WebFile {
  std::string_view path;
  std::span<const uint8_t> bytes;
};

// Every file under web/, sorted by path.
std::span<const WebFile> web_files();

}  // namespace easel::assets
