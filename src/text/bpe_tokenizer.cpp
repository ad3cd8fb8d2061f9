#include "text/bpe_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "text/byte_level.h"
#include "text/unicode.h"

namespace easel::text {
namespace {

namespace fs = std::filesystem;

uint64_t pair_key(int left, int right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

// A byte-level token's bytes; nullopt when it holds a character outside the alphabet.
std::optional<std::string> token_bytes(std::string_view token) {
  const ByteLevelAlphabet& a = ByteLevelAlphabet::get();
  std::string out;
  for (char32_t c : utf8_to_u32(token)) {
    const int b = a.byte_of(c);
    if (b < 0) return std::nullopt;
    out.push_back(char(b));
  }
  return out;
}

}  // namespace

Result<BpeTokenizer> BpeTokenizer::from_vocab(std::vector<std::string> tokens, std::span<const std::string> merges,
                                              std::string_view source, BpeTokenizerOptions options) {
  BpeTokenizer t;
  t.tokens_ = std::move(tokens);
  for (size_t id = 0; id < t.tokens_.size(); ++id)
    if (!t.tokens_[id].empty()) t.ids_.emplace(t.tokens_[id], int(id));
  const ByteLevelAlphabet& a = ByteLevelAlphabet::get();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    append_utf8(ch, a.char_of[size_t(b)]);
    auto it = t.ids_.find(ch);
    if (it == t.ids_.end())
      return Error(cat(source, ": the vocabulary has no token for byte ", b, ": not a byte-level BPE tokenizer"));
    t.byte_ids_[size_t(b)] = it->second;
  }
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size())
      return Error(cat(source, ": merge ", rank, " ('", m.substr(0, 40), "') is not two tokens"));
    const std::string left = m.substr(0, space), right = m.substr(space + 1);
    auto l = t.ids_.find(left), r = t.ids_.find(right), merged = t.ids_.find(left + right);
    if (l == t.ids_.end() || r == t.ids_.end() || merged == t.ids_.end())
      return Error(cat(source, ": merge ", rank, " ('", m.substr(0, 40), "') names a token the vocabulary lacks"));
    t.merges_.emplace(pair_key(l->second, r->second), Merge{int(rank), merged->second});  // the first rank wins
  }
  t.added_ = std::move(options.added);
  std::stable_sort(t.added_.begin(), t.added_.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
  for (size_t i = 0; i < t.added_.size(); ++i) {
    if (t.added_[i].content.empty()) return Error(cat(source, ": an added token is empty"));
    t.added_by_id_.emplace(t.added_[i].id, i);
    t.added_first_byte_[static_cast<unsigned char>(t.added_[i].content[0])] = true;
  }
  if (options.pre_tokenizer.empty()) return Error(cat(source, ": no pre-tokenizer pattern"));
  try {
    t.pre_ = std::make_shared<const Regex>(options.pre_tokenizer, Regex::kUtf);
  } catch (const std::exception& e) {
    return Error(cat(source, ": the pre-tokenizer pattern does not compile: ", e.what()));
  }
  t.nfc_ = options.nfc;
  return t;
}

Result<BpeTokenizer> BpeTokenizer::from_merges(std::string_view merges, std::string_view source,
                                               BpeTokenizerOptions options) {
  std::vector<std::string> lines;
  std::istringstream in{std::string(merges)};
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.starts_with("#version")) continue;
    lines.push_back(line);
  }
  const ByteLevelAlphabet& a = ByteLevelAlphabet::get();
  std::vector<std::string> tokens;
  for (int b : a.order) {
    std::string ch;
    append_utf8(ch, a.char_of[size_t(b)]);
    tokens.push_back(ch);
  }
  for (const std::string& m : lines) {
    const size_t space = m.find(' ');
    if (space == std::string::npos) return Error(cat(source, ": line '", m.substr(0, 40), "' is not two tokens"));
    tokens.push_back(m.substr(0, space) + m.substr(space + 1));
  }
  for (const AddedToken& t : options.added) {
    if (t.id < 0 || t.id > (1 << 24)) return Error(cat(source, ": added token id ", t.id, " is out of range"));
    if (size_t(t.id) >= tokens.size()) tokens.resize(size_t(t.id) + 1);
  }
  return from_vocab(std::move(tokens), lines, source, std::move(options));
}

Result<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(cat(path.string(), ": cannot open (no such file?)"));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return Error(cat(path.string(), ": not valid JSON: ", e.what()));
  }
  const std::string source = path.string();
  try {
    const auto& model = j.at("model");
    if (model.value("type", "BPE") != "BPE")
      return Error(cat(source, ": model type '", model.value("type", ""), "' is not BPE"));
    // Ids are dense in published files: a few unused ids are allowed, not millions of them.
    const size_t added_count = j.contains("added_tokens") && j["added_tokens"].is_array() ? j["added_tokens"].size() : 0;
    const int64_t max_id = int64_t(model.at("vocab").size() + added_count) + 65536;
    std::vector<std::string> tokens;
    for (const auto& [token, id] : model.at("vocab").items()) {
      const int64_t i = id.get<int64_t>();
      if (i < 0 || i > max_id) return Error(cat(source, ": token id ", i, " is out of range"));
      if (size_t(i) >= tokens.size()) tokens.resize(size_t(i) + 1);
      tokens[size_t(i)] = token;
    }
    std::vector<std::string> merges;
    for (const auto& m : model.at("merges")) {
      // "left right" (tokenizers < 0.20) or ["left", "right"].
      merges.push_back(m.is_string() ? m.get<std::string>() : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    }
    BpeTokenizerOptions options;
    options.nfc = j.contains("normalizer") && j["normalizer"].is_object() && j["normalizer"].value("type", "") == "NFC";
    // The Split step's regex, in a Sequence or alone.
    std::function<void(const nlohmann::json&)> find_split = [&](const nlohmann::json& p) {
      if (!p.is_object()) return;
      if (p.value("type", "") == "Split" && p.contains("pattern") && p["pattern"].contains("Regex"))
        options.pre_tokenizer = p["pattern"]["Regex"].get<std::string>();
      if (p.contains("pretokenizers"))
        for (const auto& q : p["pretokenizers"]) find_split(q);
    };
    if (j.contains("pre_tokenizer")) find_split(j["pre_tokenizer"]);
    if (options.pre_tokenizer.empty())
      return Error(cat(source, ": no Split pre-tokenizer with a regex (not a Qwen-style byte-level tokenizer)"));
    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) {
        AddedToken a{t.at("content").get<std::string>(), t.at("id").get<int>(), t.value("special", true)};
        if (a.id < 0 || a.id > max_id) return Error(cat(source, ": added token id ", a.id, " is out of range"));
        if (size_t(a.id) >= tokens.size()) tokens.resize(size_t(a.id) + 1);
        options.added.push_back(std::move(a));
      }
    return from_vocab(std::move(tokens), merges, source, std::move(options));
  } catch (const nlohmann::json::exception& e) {
    return Error(cat(source, ": not a tokenizer.json this tokenizer reads: ", e.what()));
  }
}

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view segment) const {
  // Python strings cannot hold invalid UTF-8: such bytes become U+FFFD, as decoding them would.
  std::u32string text = utf8_to_u32(segment);
  if (nfc_) text = nfc(text);
  const std::string s = u32_to_utf8(text);
  std::vector<std::string> pieces;
  size_t at = 0;
  RegexMatch m;
  while (at < s.size() && pre_->search(s, at, &m)) {
    if (m.begin > at) pieces.emplace_back(s.substr(at, m.begin - at));  // a gap is a piece too
    if (m.end == m.begin) {  // an empty match: step over one character
      size_t next = m.begin + 1;
      while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xC0) == 0x80) ++next;
      pieces.emplace_back(s.substr(m.begin, next - m.begin));
      at = next;
      continue;
    }
    pieces.emplace_back(s.substr(m.begin, m.end - m.begin));
    at = m.end;
  }
  if (at < s.size()) pieces.emplace_back(s.substr(at));
  return pieces;
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int>& out) const {
  std::vector<int> word;
  for (unsigned char b : piece) word.push_back(byte_ids_[b]);
  // Lowest-rank merge first, all its occurrences left to right, until no pair merges.
  while (word.size() > 1) {
    int best_rank = INT32_MAX, result = -1;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merges_.find(pair_key(word[i], word[i + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) best_rank = it->second.rank, result = it->second.result;
    }
    if (result < 0) break;
    std::vector<int> merged;
    for (size_t i = 0; i < word.size(); ++i) {
      if (i + 1 < word.size()) {
        auto it = merges_.find(pair_key(word[i], word[i + 1]));
        if (it != merges_.end() && it->second.rank == best_rank) {
          merged.push_back(result);
          ++i;
          continue;
        }
      }
      merged.push_back(word[i]);
    }
    word.swap(merged);
  }
  out.insert(out.end(), word.begin(), word.end());
}

std::vector<int> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto encode_segment = [&](std::string_view segment) {
    for (const std::string& piece : pre_tokenize(segment)) encode_piece(piece, ids);
  };
  size_t start = 0, at = 0;
  while (at < text.size()) {
    const AddedToken* hit = nullptr;
    if (added_first_byte_[static_cast<unsigned char>(text[at])]) {
      for (const AddedToken& t : added_)  // longest first
        if (text.compare(at, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
    }
    if (!hit) {
      ++at;
      continue;
    }
    if (at > start) encode_segment(text.substr(start, at - start));
    ids.push_back(hit->id);
    at += hit->content.size();
    start = at;
  }
  if (start < text.size()) encode_segment(text.substr(start));
  return ids;
}

std::string BpeTokenizer::decode(std::span<const int> ids, bool skip_special) const {
  std::string out;
  for (int id : ids) {
    if (auto a = added_by_id_.find(id); a != added_by_id_.end()) {
      if (!(skip_special && added_[a->second].special)) out += added_[a->second].content;
      continue;
    }
    if (id < 0 || size_t(id) >= tokens_.size() || tokens_[size_t(id)].empty()) continue;
    if (auto bytes = token_bytes(tokens_[size_t(id)])) out += *bytes;
  }
  return out;
}

std::optional<int> BpeTokenizer::token_id(std::string_view token) const {
  for (const AddedToken& t : added_)
    if (t.content == token) return t.id;
  if (auto it = ids_.find(std::string(token)); it != ids_.end()) return it->second;
  return std::nullopt;
}

}  // namespace easel::text
