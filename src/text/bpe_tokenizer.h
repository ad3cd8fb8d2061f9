// A byte-level BPE tokenizer as Hugging Face `tokenizers` runs the ones Qwen2 / Qwen3 / Qwen3-VL /
// Qwen3.5 publish (tokenizer.json: model BPE, NFC normalizer, a Split pre-tokenizer by regex,
// ByteLevel without its own regex):
//
//   text -> added / special tokens split off first (matched literally, longest first)
//        -> each other segment: NFC -> split by the pre-tokenizer pattern (PCRE2)
//        -> each piece: its bytes as byte-level characters -> BPE merges, lowest rank first -> ids
//
// decode() maps ids back to bytes; a sequence may end inside a UTF-8 character (streaming output
// must hold such a tail back until the next token completes it).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "text/regex.h"

namespace easel::text {

struct AddedToken {
  std::string content;
  int id = 0;
  bool special = true;  // control tokens (<|im_start|>, ...); skipped by decode when asked
};

struct BpeTokenizerOptions {
  std::string pre_tokenizer;  // the Split pattern (PCRE2 syntax; Unicode properties on)
  bool nfc = true;            // the NFC normalizer
  std::vector<AddedToken> added;
};

class BpeTokenizer {
 public:
  // A Hugging Face tokenizer.json of a byte-level BPE model (Qwen2 .. Qwen3.5).
  static Result<BpeTokenizer> from_tokenizer_json(const std::filesystem::path& path);
  // The vocabulary rebuilt from a merges list alone (one "left right" pair per line): ids 0..255
  // are the bytes in bytes_to_unicode() order, id 256 + i is merge i (Qwen2 / Qwen3 / Qwen3-VL).
  static Result<BpeTokenizer> from_merges(std::string_view merges, std::string_view source,
                                          BpeTokenizerOptions options);
  // Tokens and merges as tokenizer.json / GGUF give them (tokens in id order, byte-level text).
  static Result<BpeTokenizer> from_vocab(std::vector<std::string> tokens, std::span<const std::string> merges,
                                         std::string_view source, BpeTokenizerOptions options);

  std::vector<int> encode(std::string_view text) const;
  // The bytes of the ids, as UTF-8 text when they end on a character boundary.
  std::string decode(std::span<const int> ids, bool skip_special = false) const;

  std::optional<int> token_id(std::string_view token) const;  // a vocabulary or added token
  int vocab_size() const { return int(tokens_.size()); }

  // The pieces the pre-tokenizer makes of one segment without added tokens (after NFC).
  std::vector<std::string> pre_tokenize(std::string_view segment) const;

 private:
  void encode_piece(std::string_view piece, std::vector<int>& out) const;

  std::vector<std::string> tokens_;  // id -> token in the byte-level alphabet ("" for unused ids)
  std::unordered_map<std::string, int> ids_;
  struct Merge {
    int rank, result;
  };
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  std::array<int, 256> byte_ids_{};             // byte -> id of its single-character token
  std::vector<AddedToken> added_;               // longest content first
  std::unordered_map<int, size_t> added_by_id_;
  std::array<bool, 256> added_first_byte_{};    // bytes an added token starts with  // id -> index in added_
  std::shared_ptr<const Regex> pre_;
  bool nfc_ = true;
};

}  // namespace easel::text
