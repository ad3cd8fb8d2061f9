// CLIP's byte-level BPE tokenizer (openai/CLIP clip/simple_tokenizer.py), used by the SD1.x text
// encoder and, in its open_clip flavour, by SD2.x and SDXL's second encoder.
//
//   text -> ftfy.fix_text -> html.unescape twice, strip -> whitespace runs to one space -> lower
//        -> split by CLIP's pattern -> bytes as unicode characters -> BPE merges -> vocabulary ids
//
// The only data it needs is the merges file (bpe_simple_vocab_16e6.txt.gz).
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace easel {

// Which reference the tokenizer reproduces. They differ only in the special-token names that a
// prompt may contain literally (openai: <|startoftext|> <|endoftext|>; open_clip v3:
// <start_of_text> <end_of_text>, same ids) and in whitespace_clean (regex \s vs str.split()).
enum class ClipFlavor { kOpenAI, kOpenClip };

class ClipTokenizer {
 public:
  static Result<ClipTokenizer> load(const std::filesystem::path& merges_gz, ClipFlavor flavor = ClipFlavor::kOpenAI);
  // The merges file built into easel (assets/clip): checkpoints do not carry their tokenizer.
  static Result<ClipTokenizer> builtin(ClipFlavor flavor = ClipFlavor::kOpenAI);

  // Ids without BOS/EOS and without truncation (SimpleTokenizer.encode).
  std::vector<int> encode(std::string_view text) const;
  // BOS + the first 75 ids + EOS, padded to 77 with pad_id (49407 for SD1.x / openai as diffusers
  // feeds it, 0 for open_clip.tokenize).
  std::vector<int> tokenize77(std::string_view text, int pad_id) const;
  std::string decode(std::span<const int> ids) const;

  // The stages, each as the reference computes it (UTF-8 in and out).
  static std::string fix_text(std::string_view text);     // ftfy.fix_text, default config
  static std::string basic_clean(std::string_view text);  // html.unescape x2 (fix_text(text)).strip()
  std::string clean(std::string_view text) const;         // whitespace_clean(basic_clean(text)).lower()
  std::vector<std::string> pre_tokenize(std::string_view cleaned) const;  // the pattern's pieces
  std::string bpe(std::string_view piece) const;  // one piece -> space-separated BPE symbols
  std::vector<std::string> bpe_tokens(std::string_view text) const;  // all symbols of a prompt

  int vocab_size() const { return static_cast<int>(decoder_.size()); }
  static constexpr int kBos = 49406, kEos = 49407, kContext = 77;

 private:
  static Result<ClipTokenizer> from_merges(std::string_view merges, std::string_view source, ClipFlavor flavor);

  ClipFlavor flavor_ = ClipFlavor::kOpenAI;
  std::string byte_encoder_[256];                    // byte -> its character (UTF-8)
  std::unordered_map<std::string, int> encoder_;     // symbol -> id
  std::vector<std::string> decoder_;                 // id -> symbol
  std::unordered_map<std::string, int> bpe_ranks_;   // "first second" -> rank
  std::unordered_map<std::string, unsigned char> byte_decoder_;
};

}  // namespace easel
