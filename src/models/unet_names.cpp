// UNet naming: the original single-file naming (CompVis ldm / Stability sgm, as stored under
// "model.diffusion_model.") -> ours (diffusers' module paths), and the config the weights describe.
#include <charconv>
#include <map>
#include <set>

#include "models/unet.h"

namespace easel::unet {
namespace {

// --- the name table ---------------------------------------------------------------------------------
//
// `from` is a prefix of an original name; "{in}" / "{out}" stand for an input_blocks / output_blocks
// index, turned into {level} and {layer} with the layers per block (each level has that many
// resnets in the down path, plus one downsampler slot; one more resnet in the up path). The first
// rule that matches wins, so the more specific come first.

struct NameRule {
  std::string_view from, to;
};

constexpr NameRule kOriginalToOurs[] = {
    {"time_embed.0.", "time_embedding.linear_1."},
    {"time_embed.2.", "time_embedding.linear_2."},
    {"label_emb.0.0.", "add_embedding.linear_1."},  // SDXL added conditioning
    {"label_emb.0.2.", "add_embedding.linear_2."},
    {"input_blocks.0.0.", "conv_in."},
    {"input_blocks.{in}.0.op.", "down_blocks.{level}.downsamplers.0.conv."},
    {"input_blocks.{in}.0.", "down_blocks.{level}.resnets.{layer}."},
    {"input_blocks.{in}.1.", "down_blocks.{level}.attentions.{layer}."},
    {"middle_block.0.", "mid_block.resnets.0."},
    {"middle_block.1.", "mid_block.attentions.0."},
    {"middle_block.2.", "mid_block.resnets.1."},
    {"output_blocks.{out}.0.", "up_blocks.{level}.resnets.{layer}."},
    {"output_blocks.{out}.1.conv.", "up_blocks.{level}.upsamplers.0.conv."},  // level without attention
    {"output_blocks.{out}.2.conv.", "up_blocks.{level}.upsamplers.0.conv."},  // after the attention
    {"output_blocks.{out}.1.", "up_blocks.{level}.attentions.{layer}."},
    {"out.0.", "conv_norm_out."},
    {"out.2.", "conv_out."},
};

// Inside a ResBlock (what follows "resnets.N." above).
constexpr NameRule kResnetParts[] = {
    {"in_layers.0.", "norm1."},  {"in_layers.2.", "conv1."},          {"out_layers.0.", "norm2."},
    {"out_layers.3.", "conv2."}, {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."},
};

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::optional<int> parse_index(std::string_view& s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  s.remove_prefix(size_t(end - s.data()));
  return v;
}

// Applies `rule` to `name`; nullopt when it does not match.
std::optional<std::string> apply(const NameRule& rule, std::string_view name, int layers_per_block) {
  std::string out(rule.to);
  std::string_view rest;
  const size_t brace = rule.from.find('{');
  if (brace == std::string_view::npos) {
    if (!starts_with(name, rule.from)) return std::nullopt;
    rest = name.substr(rule.from.size());
  } else {
    if (!starts_with(name, rule.from.substr(0, brace))) return std::nullopt;
    rest = name.substr(brace);
    const auto index = parse_index(rest);
    const size_t close = rule.from.find('}', brace);
    const std::string_view placeholder = rule.from.substr(brace, close + 1 - brace);
    const std::string_view tail = rule.from.substr(close + 1);
    if (!index || !starts_with(rest, tail)) return std::nullopt;
    rest.remove_prefix(tail.size());
    const int per_level = layers_per_block + 1;
    const int i = placeholder == "{in}" ? *index - 1 : *index;  // input_blocks.0 is conv_in
    if (i < 0) return std::nullopt;
    auto replace = [&](std::string_view key, int value) {
      if (auto p = out.find(key); p != std::string::npos) out.replace(p, key.size(), std::to_string(value));
    };
    replace("{level}", i / per_level);
    replace("{layer}", i % per_level);
  }
  if (out.find(".resnets.") != std::string::npos) {
    for (const NameRule& part : kResnetParts)
      if (starts_with(rest, part.from)) return cat(out, part.to, rest.substr(part.from.size()));
    return std::nullopt;
  }
  return cat(out, rest);
}

std::optional<std::string> original_to_ours(std::string_view name, int layers_per_block) {
  for (const NameRule& rule : kOriginalToOurs)
    if (auto ours = apply(rule, name, layers_per_block)) return ours;
  return std::nullopt;
}

bool is_original(std::string_view name) {
  for (std::string_view p : {"input_blocks.", "middle_block.", "output_blocks.", "time_embed.", "out.", "label_emb."})
    if (starts_with(name, p)) return true;
  return false;
}

// Layers per block of an original-named UNet: input_blocks hold conv_in, then per level its resnets
// and (all but the last level) a downsampler "op": levels * (layers_per_block + 1) entries.
Result<int> original_layers_per_block(const std::vector<SourceTensor>& tensors) {
  std::set<int> inputs, ops;
  for (const SourceTensor& t : tensors) {
    std::string_view s = t.name;
    if (!starts_with(s, "input_blocks.")) continue;
    s.remove_prefix(13);
    const auto i = parse_index(s);
    if (!i) continue;
    inputs.insert(*i);
    if (starts_with(s, ".0.op.")) ops.insert(*i);
  }
  const int n = inputs.empty() ? 0 : *inputs.rbegin() + 1;
  const int levels = int(ops.size()) + 1;
  if (n == 0 || n % levels != 0 || n / levels < 2)
    return Error(cat("UNet: input_blocks 0..", n - 1, " with ", ops.size(),
                     " downsamplers do not form levels of equal depth"));
  return n / levels - 1;
}

int max_index_after(const WeightMap& w, const std::string& prefix) {
  int n = 0;
  for (auto it = w.entries().lower_bound(prefix); it != w.entries().end() && starts_with(it->first, prefix); ++it) {
    std::string_view s = std::string_view(it->first).substr(prefix.size());
    if (const auto i = parse_index(s)) n = std::max(n, *i + 1);
  }
  return n;
}

const Tensor* find(const WeightMap& w, const std::string& name) {
  const auto* e = w.find(name);
  return e ? &e->tensor : nullptr;
}

}  // namespace

Result<WeightMap> map_names(const std::vector<SourceTensor>& tensors) {
  bool original = false;
  for (const SourceTensor& t : tensors) original |= is_original(t.name);
  int layers_per_block = 0;
  if (original) {
    EASEL_TRY(layers_per_block, original_layers_per_block(tensors));
  }
  WeightMap weights;
  for (const SourceTensor& t : tensors) {
    std::string ours = t.name;
    if (original) {
      auto mapped = original_to_ours(t.name, layers_per_block);
      if (!mapped) return Error(cat(t.source, ": not a tensor of a Stable Diffusion UNet in the original naming"));
      ours = std::move(*mapped);
    }
    EASEL_TRY_STATUS(weights.add(ours, t.tensor, t.source));
  }
  return weights;
}

Result<UnetConfig> detect_config(const WeightMap& w) {
  UnetConfig c;
  const Tensor* conv_in = find(w, "conv_in.weight");
  const Tensor* conv_out = find(w, "conv_out.weight");
  const Tensor* time1 = find(w, "time_embedding.linear_1.weight");
  if (!conv_in || conv_in->dim() != 4 || !conv_out || conv_out->dim() != 4 || !time1 || time1->dim() != 2)
    return Error("not a Stable Diffusion UNet: conv_in, conv_out or time_embedding.linear_1 is missing or mis-shaped");
  c.in_channels = int(conv_in->size(1));
  c.out_channels = int(conv_out->size(0));
  c.time_embed_dim = int(time1->size(0));
  if (const Tensor* adm = find(w, "add_embedding.linear_1.weight"); adm && adm->dim() == 2)
    c.adm_in_channels = int(adm->size(1));

  const int levels = max_index_after(w, "down_blocks.");
  if (levels < 1 || max_index_after(w, "up_blocks.") != levels)
    return Error(cat("UNet: ", levels, " down blocks but ", max_index_after(w, "up_blocks."), " up blocks"));
  c.layers_per_block = max_index_after(w, "down_blocks.0.resnets.");
  if (c.layers_per_block < 1) return Error("UNet: down_blocks.0 has no resnets");
  auto depth = [&](const std::string& attention) { return max_index_after(w, attention + ".transformer_blocks."); };
  for (int l = 0; l < levels; ++l) {
    const Tensor* conv1 = find(w, cat("down_blocks.", l, ".resnets.0.conv1.weight"));
    if (!conv1 || conv1->dim() != 4) return Error(cat("UNet: missing down_blocks.", l, ".resnets.0.conv1.weight"));
    c.block_channels.push_back(int(conv1->size(0)));
    c.down_depth.push_back(depth(cat("down_blocks.", l, ".attentions.0")));
    c.up_depth.push_back(depth(cat("up_blocks.", l, ".attentions.0")));
  }
  c.mid_depth = depth("mid_block.attentions.0");
  if (c.mid_depth < 1) return Error("UNet: the mid block has no transformer (mid_block.attentions.0)");
  const Tensor* proj_in = find(w, "mid_block.attentions.0.proj_in.weight");
  const Tensor* to_k = find(w, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight");
  if (!proj_in || !to_k || to_k->dim() != 2) return Error("UNet: the mid block's transformer is incomplete");
  c.linear_projection = proj_in->dim() == 2;
  c.context_dim = int(to_k->size(1));
  return c;
}

}  // namespace easel::unet
