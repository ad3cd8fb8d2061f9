#include "models/vae_kl.h"

#include <algorithm>
#include <charconv>

#include "ops/ops.h"

namespace easel {
namespace {

using namespace vae_kl;

constexpr float kNormEps = 1e-6f;  // every GroupNorm of the VAE

// --- names: original (ldm) and older diffusers naming -> ours (diffusers) -------------------------
//
// Rules rewrite runs of dot-separated tokens, anywhere in the name, first rule first; several can
// apply to one name. In `from`, "*" matches a level or layer index; in `to`, "*" puts back the
// index matched at the same position and "^" the decoder level counted from the deep end (the
// original numbers decoder.up.N from the image side, diffusers' up_blocks from the latent side).

struct NameRule {
  std::string_view from, to;
};

constexpr NameRule kNameRules[] = {
    // original ldm (first_stage_model.*)
    {"encoder.down.*.block.*", "encoder.down_blocks.*.resnets.*"},
    {"encoder.down.*.downsample", "encoder.down_blocks.*.downsamplers.0"},
    {"decoder.up.*.block.*", "decoder.up_blocks.^.resnets.*"},
    {"decoder.up.*.upsample", "decoder.up_blocks.^.upsamplers.0"},
    {"mid.block_1", "mid_block.resnets.0"},
    {"mid.block_2", "mid_block.resnets.1"},
    {"mid.attn_1.norm", "mid_block.attentions.0.group_norm"},
    {"mid.attn_1.q", "mid_block.attentions.0.to_q"},
    {"mid.attn_1.k", "mid_block.attentions.0.to_k"},
    {"mid.attn_1.v", "mid_block.attentions.0.to_v"},
    {"mid.attn_1.proj_out", "mid_block.attentions.0.to_out.0"},
    {"norm_out", "conv_norm_out"},
    {"nin_shortcut", "conv_shortcut"},
    // diffusers before 0.15 (AttentionBlock)
    {"attentions.0.query", "attentions.0.to_q"},
    {"attentions.0.key", "attentions.0.to_k"},
    {"attentions.0.value", "attentions.0.to_v"},
    {"attentions.0.proj_attn", "attentions.0.to_out.0"},
};

// Training-only tensors some original checkpoints carry (the LPIPS / discriminator loss).
constexpr std::string_view kIgnoredPrefixes[] = {"loss."};

std::vector<std::string_view> split_dots(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    const size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

std::optional<int> parse_index(std::string_view s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Applies `rule` at the first token position it matches; false when it matches nowhere.
bool apply_rule(const NameRule& rule, std::vector<std::string>& tokens, int up_levels) {
  const auto from = split_dots(rule.from), to = split_dots(rule.to);
  for (size_t at = 0; at + from.size() <= tokens.size(); ++at) {
    std::vector<int> indices;
    bool match = true;
    for (size_t i = 0; i < from.size() && match; ++i) {
      if (from[i] == "*") {
        const auto idx = parse_index(tokens[at + i]);
        match = idx.has_value();
        if (match) indices.push_back(*idx);
      } else {
        match = tokens[at + i] == from[i];
      }
    }
    if (!match) continue;
    std::vector<std::string> replaced;
    size_t next_index = 0;
    for (std::string_view t : to) {
      if (t == "*") replaced.push_back(std::to_string(indices.at(next_index++)));
      else if (t == "^") replaced.push_back(std::to_string(up_levels - 1 - indices.at(next_index++)));
      else replaced.emplace_back(t);
    }
    tokens.erase(tokens.begin() + at, tokens.begin() + at + from.size());
    tokens.insert(tokens.begin() + at, replaced.begin(), replaced.end());
    return true;
  }
  return false;
}

// Number of decoder levels in the original naming: 1 + the largest N of "decoder.up.N.*".
int original_up_levels(const std::vector<SourceTensor>& tensors) {
  int levels = 0;
  for (const SourceTensor& t : tensors) {
    const auto tok = split_dots(t.name);
    if (tok.size() > 2 && tok[0] == "decoder" && tok[1] == "up")
      if (auto i = parse_index(tok[2])) levels = std::max(levels, *i + 1);
  }
  return levels;
}

Result<WeightMap> map_names(const std::vector<SourceTensor>& tensors) {
  const int up_levels = original_up_levels(tensors);
  WeightMap weights;
  for (const SourceTensor& t : tensors) {
    if (std::any_of(std::begin(kIgnoredPrefixes), std::end(kIgnoredPrefixes),
                    [&](std::string_view p) { return t.name.rfind(p, 0) == 0; }))
      continue;
    const std::string ours = vae_kl_our_name(t.name, up_levels);
    Tensor tensor = t.tensor;
    // Attention projections stored as 1x1 convs ([C, C, 1, 1]; [C, C, 1] for an old proj_attn):
    // the same bytes seen as [C, C] (dropping size-1 dimensions is a view for any strides).
    if (ours.find(".attentions.0.to_") != std::string::npos && ours.size() > 7 &&
        ours.compare(ours.size() - 7, 7, ".weight") == 0)
      while (tensor.dim() > 2 && tensor.size(tensor.dim() - 1) == 1) tensor = tensor.select(tensor.dim() - 1, 0);
    EASEL_TRY_STATUS(weights.add(ours, std::move(tensor), t.source));
  }
  return weights;
}

// --- config from names and shapes ---------------------------------------------------------------

const Tensor* find(const WeightMap& w, const std::string& name) {
  const auto* e = w.find(name);
  return e ? &e->tensor : nullptr;
}

int count_indexed(const WeightMap& w, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  while (find(w, cat(prefix, n, suffix))) ++n;
  return n;
}

Result<VaeKlConfig> detect_config(const WeightMap& w, const VaeKlOptions& options) {
  VaeKlConfig c;
  c.norm_groups = options.norm_groups;
  const int enc_levels = count_indexed(w, "encoder.down_blocks.", ".resnets.0.conv1.weight");
  const int dec_levels = count_indexed(w, "decoder.up_blocks.", ".resnets.0.conv1.weight");
  if (!enc_levels && !dec_levels)
    return Error("not an AutoencoderKL: no encoder.down_blocks.0 or decoder.up_blocks.0 resnet "
                 "(nor their original names encoder.down.0 / decoder.up.N)");
  if (enc_levels && dec_levels && enc_levels != dec_levels)
    return Error(cat("the encoder has ", enc_levels, " levels but the decoder ", dec_levels,
                     ": they are from different VAEs"));
  const int levels = std::max(enc_levels, dec_levels);
  c.channels.assign(levels, 0);
  auto dim_of = [&](const std::string& name, int d) -> int {
    const Tensor* t = find(w, name);
    return t && t->dim() > d ? static_cast<int>(t->size(d)) : 0;
  };
  for (int i = 0; i < levels; ++i) {
    // A resnet's conv1 makes the level's channels; the first decoder resnet of level i (counted
    // from the deep end) makes those of encoder level levels-1-i.
    const int enc = enc_levels ? dim_of(cat("encoder.down_blocks.", i, ".resnets.0.conv1.weight"), 0) : 0;
    const int dec = dec_levels ? dim_of(cat("decoder.up_blocks.", levels - 1 - i, ".resnets.0.conv1.weight"), 0) : 0;
    if (enc && dec && enc != dec)
      return Error(cat("level ", i, " has ", enc, " channels in the encoder but ", dec, " in the decoder"));
    c.channels[i] = enc ? enc : dec;
  }
  if (enc_levels) {
    c.layers_per_block = count_indexed(w, "encoder.down_blocks.0.resnets.", ".conv1.weight");
    c.image_channels = dim_of("encoder.conv_in.weight", 1);
    c.latent_channels = dim_of("encoder.conv_out.weight", 0) / 2;
  }
  if (dec_levels) {
    const int dec_layers = count_indexed(w, "decoder.up_blocks.0.resnets.", ".conv1.weight") - 1;
    if (enc_levels && dec_layers != c.layers_per_block)
      return Error(cat("the encoder has ", c.layers_per_block, " resnets a level but the decoder ", dec_layers + 1,
                       " (expected one more): they are from different VAEs"));
    c.layers_per_block = dec_layers;
    const int latent = dim_of("decoder.conv_in.weight", 1);
    if (enc_levels && latent != c.latent_channels)
      return Error(cat("the encoder makes ", c.latent_channels, "-channel latents but the decoder takes ", latent));
    c.latent_channels = latent;
    if (!enc_levels) c.image_channels = dim_of("decoder.conv_out.weight", 0);
  }
  c.quant_conv = find(w, "quant_conv.weight") || find(w, "post_quant_conv.weight");
  if (c.layers_per_block < 1 || c.latent_channels < 1 || c.image_channels < 1)
    return Error("not an AutoencoderKL: its first resnet, conv_in or conv_out is missing or not a convolution");
  for (int ch : c.channels)
    if (ch % c.norm_groups != 0)
      return Error(cat("a level has ", ch, " channels, not a multiple of the ", c.norm_groups, " GroupNorm groups"));
  return c;
}

// --- architecture and loading -------------------------------------------------------------------

void load_conv(WeightLoader& l, const std::string& p, Conv& c, int in, int out, int k) {
  c.weight = l.take(p + ".weight", {out, in, k, k});
  c.bias = l.take(p + ".bias", {out});
}

void load_norm(WeightLoader& l, const std::string& p, Norm& n, int ch) {
  n.weight = l.take(p + ".weight", {ch});
  n.bias = l.take(p + ".bias", {ch});
}

Resnet load_resnet(WeightLoader& l, const std::string& p, int in, int out) {
  Resnet r;
  r.in = in;
  r.out = out;
  load_norm(l, p + ".norm1", r.norm1, in);
  load_conv(l, p + ".conv1", r.conv1, in, out, 3);
  load_norm(l, p + ".norm2", r.norm2, out);
  load_conv(l, p + ".conv2", r.conv2, out, out, 3);
  if (in != out) load_conv(l, p + ".conv_shortcut", r.conv_shortcut.emplace(), in, out, 1);
  return r;
}

MidBlock load_mid(WeightLoader& l, const std::string& p, int ch) {
  MidBlock m;
  m.resnets[0] = load_resnet(l, p + ".resnets.0", ch, ch);
  Attention& a = m.attention;
  const std::string ap = p + ".attentions.0";
  a.channels = ch;
  load_norm(l, ap + ".group_norm", a.group_norm, ch);
  a.to_q = l.take(ap + ".to_q.weight", {ch, ch});
  a.to_q_bias = l.take(ap + ".to_q.bias", {ch});
  a.to_k = l.take(ap + ".to_k.weight", {ch, ch});
  a.to_k_bias = l.take(ap + ".to_k.bias", {ch});
  a.to_v = l.take(ap + ".to_v.weight", {ch, ch});
  a.to_v_bias = l.take(ap + ".to_v.bias", {ch});
  a.to_out = l.take(ap + ".to_out.0.weight", {ch, ch});
  a.to_out_bias = l.take(ap + ".to_out.0.bias", {ch});
  m.resnets[1] = load_resnet(l, p + ".resnets.1", ch, ch);
  return m;
}

Encoder load_encoder(WeightLoader& l, const VaeKlConfig& c) {
  Encoder e;
  const int L = c.levels();
  load_conv(l, "encoder.conv_in", e.conv_in, c.image_channels, c.channels[0], 3);
  int in = c.channels[0];
  for (int i = 0; i < L; ++i) {
    DownBlock& b = e.down_blocks.emplace_back();
    const std::string p = cat("encoder.down_blocks.", i);
    for (int j = 0; j < c.layers_per_block; ++j) {
      b.resnets.push_back(load_resnet(l, cat(p, ".resnets.", j), in, c.channels[i]));
      in = c.channels[i];
    }
    if (i + 1 < L) load_conv(l, p + ".downsamplers.0.conv", b.downsample.emplace(), in, in, 3);
  }
  e.mid_block = load_mid(l, "encoder.mid_block", in);
  load_norm(l, "encoder.conv_norm_out", e.conv_norm_out, in);
  load_conv(l, "encoder.conv_out", e.conv_out, in, 2 * c.latent_channels, 3);
  return e;
}

Decoder load_decoder(WeightLoader& l, const VaeKlConfig& c) {
  Decoder d;
  const int L = c.levels();
  int in = c.channels[L - 1];
  load_conv(l, "decoder.conv_in", d.conv_in, c.latent_channels, in, 3);
  d.mid_block = load_mid(l, "decoder.mid_block", in);
  for (int i = 0; i < L; ++i) {
    UpBlock& b = d.up_blocks.emplace_back();
    const std::string p = cat("decoder.up_blocks.", i);
    const int out = c.channels[L - 1 - i];
    for (int j = 0; j < c.layers_per_block + 1; ++j) {
      b.resnets.push_back(load_resnet(l, cat(p, ".resnets.", j), in, out));
      in = out;
    }
    if (i + 1 < L) load_conv(l, p + ".upsamplers.0.conv", b.upsample.emplace(), in, in, 3);
  }
  load_norm(l, "decoder.conv_norm_out", d.conv_norm_out, in);
  load_conv(l, "decoder.conv_out", d.conv_out, in, c.image_channels, 3);
  return d;
}

// --- forward ------------------------------------------------------------------------------------

Tensor conv(Context& ctx, const Conv& c, const Tensor& x, int stride = 1) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = stride == 1 ? static_cast<int>(c.weight.size(2) / 2) : 0;
  return ops::conv2d(ctx, x, c.weight, c.bias, p);
}

// GroupNorm then SiLU (in place on the norm's output).
Tensor norm_silu(Context& ctx, const Norm& n, int groups, const Tensor& x) {
  Tensor h = ops::group_norm(ctx, x, groups, n.weight, n.bias, kNormEps);
  ops::silu_(ctx, h);
  return h;
}

// ResnetBlock2D (temb None, output_scale_factor 1): [N, in, H, W] -> [N, out, H, W]
Tensor resnet(Context& ctx, const Resnet& r, int groups, const Tensor& x) {
  Tensor h = conv(ctx, r.conv1, norm_silu(ctx, r.norm1, groups, x));
  h = conv(ctx, r.conv2, norm_silu(ctx, r.norm2, groups, h));
  ops::add_(ctx, h, r.conv_shortcut ? conv(ctx, *r.conv_shortcut, x) : x);
  return h;
}

// Attention over the H*W positions, one head of C channels, plus the input: [N, C, H, W]
Tensor attention(Context& ctx, const Attention& a, int groups, const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor h = ops::group_norm(ctx, x, groups, a.group_norm.weight, a.group_norm.bias, kNormEps);
  h = ops::permute(ctx, h.view({N, C, H * W}), {0, 2, 1});  // [N, HW, C] tokens
  const Tensor q = ops::linear(ctx, h, a.to_q, a.to_q_bias).unsqueeze(1);  // [N, 1, HW, C]
  const Tensor k = ops::linear(ctx, h, a.to_k, a.to_k_bias).unsqueeze(1);
  const Tensor v = ops::linear(ctx, h, a.to_v, a.to_v_bias).unsqueeze(1);
  Tensor o = ops::attention(ctx, q, k, v).view({N, H * W, C});            // scale 1/sqrt(C)
  o = ops::linear(ctx, o, a.to_out, a.to_out_bias);                       // [N, HW, C]
  return ops::add(ctx, x, o.view({N, H, W, C}).permute({0, 3, 1, 2}));    // [N, C, H, W]
}

Tensor mid_block(Context& ctx, const MidBlock& m, int groups, const std::string& part, Tensor x) {
  x = resnet(ctx, m.resnets[0], groups, x);
  ctx.trace(part + ".mid_block.resnets.0", x);
  x = attention(ctx, m.attention, groups, x);
  ctx.trace(part + ".mid_block.attentions.0", x);
  x = resnet(ctx, m.resnets[1], groups, x);
  ctx.trace(part + ".mid_block", x);
  return x;
}

void check_cancel(const Context& ctx, const char* what) {
  if (ctx.cancelled()) throw Exception(cat("VAE ", what, " cancelled"));
}

}  // namespace

std::string vae_kl_our_name(std::string_view name, int up_levels) {
  std::vector<std::string> tokens;
  for (std::string_view t : split_dots(name)) tokens.emplace_back(t);
  for (const NameRule& rule : kNameRules) apply_rule(rule, tokens, up_levels);
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) out += (i ? "." : "") + tokens[i];
  return out;
}

Result<VaeKl> VaeKl::load(Context& ctx, const std::vector<SourceTensor>& tensors, const VaeKlOptions& options) {
  return load_weights(&ctx, tensors, options);
}

Result<VaeKl> VaeKl::load_weights(Context* ctx, const std::vector<SourceTensor>& tensors, const VaeKlOptions& options) {
  EASEL_TRY(WeightMap weights, map_names(tensors));
  EASEL_TRY(VaeKlConfig config, detect_config(weights, options));
  VaeKl vae;
  vae.config_ = config;
  std::string levels;
  for (int ch : config.channels) levels += cat(levels.empty() ? "" : ", ", ch);
  std::string name = cat("AutoencoderKL (", levels, "; ", config.latent_channels, " latent channels)");
  WeightLoader loader =
      ctx ? WeightLoader(*ctx, weights, std::move(name)) : WeightLoader::check_only(weights, std::move(name));
  const bool any_encoder = count_indexed(weights, "encoder.down_blocks.", ".resnets.0.conv1.weight") > 0;
  const bool any_decoder = count_indexed(weights, "decoder.up_blocks.", ".resnets.0.conv1.weight") > 0;
  const int lc = config.latent_channels;
  if (any_encoder) {
    vae.encoder_ = load_encoder(loader, config);
    if (config.quant_conv) load_conv(loader, "quant_conv", vae.quant_conv_, 2 * lc, 2 * lc, 1);
  }
  if (any_decoder) {
    vae.decoder_ = load_decoder(loader, config);
    if (config.quant_conv) load_conv(loader, "post_quant_conv", vae.post_quant_conv_, lc, lc, 1);
  }
  EASEL_TRY_STATUS(loader.finish());
  return vae;
}

Tensor VaeKl::encode_moments(Context& ctx, const Tensor& image) const {
  EASEL_CHECK(encoder_, "this VAE has no encoder weights");
  const int f = config_.downscale(), groups = config_.norm_groups;
  EASEL_CHECK(image.dim() == 4 && image.size(1) == config_.image_channels, "VAE encode: expected an image [N, ",
              config_.image_channels, ", H, W], got ", image.describe());
  EASEL_CHECK(image.size(2) % f == 0 && image.size(3) % f == 0, "VAE encode: height and width must be multiples of ",
              f, ", got ", image.size(2), "x", image.size(3));
  const Encoder& e = *encoder_;
  Tensor x = conv(ctx, e.conv_in, image);
  ctx.trace("encoder.conv_in", x);
  for (size_t i = 0; i < e.down_blocks.size(); ++i) {
    check_cancel(ctx, "encode");
    const DownBlock& b = e.down_blocks[i];
    for (const Resnet& r : b.resnets) x = resnet(ctx, r, groups, x);
    if (b.downsample) {
      const int64_t pads[] = {0, 1, 0, 1};  // Downsample2D: pad right and bottom only, then stride 2
      x = conv(ctx, *b.downsample, ops::pad(ctx, x, pads), 2);
    }
    ctx.trace(cat("encoder.down_blocks.", i), x);
    ctx.progress("encode", int64_t(i + 1), int64_t(e.down_blocks.size() + 1));
  }
  check_cancel(ctx, "encode");
  x = mid_block(ctx, e.mid_block, groups, "encoder", x);
  x = ops::group_norm(ctx, x, groups, e.conv_norm_out.weight, e.conv_norm_out.bias, kNormEps);
  ctx.trace("encoder.conv_norm_out", x);
  ops::silu_(ctx, x);
  x = conv(ctx, e.conv_out, x);
  ctx.trace("encoder.conv_out", x);
  if (config_.quant_conv) {
    x = conv(ctx, quant_conv_, x);
    ctx.trace("quant_conv", x);
  }
  ctx.progress("encode", int64_t(e.down_blocks.size() + 1), int64_t(e.down_blocks.size() + 1));
  return x;
}

Tensor VaeKl::decode(Context& ctx, const Tensor& latents) const {
  EASEL_CHECK(decoder_, "this VAE has no decoder weights");
  EASEL_CHECK(latents.dim() == 4 && latents.size(1) == config_.latent_channels, "VAE decode: expected latents [N, ",
              config_.latent_channels, ", h, w], got ", latents.describe());
  const int groups = config_.norm_groups;
  const Decoder& d = *decoder_;
  Tensor x = latents;
  if (config_.quant_conv) {
    x = conv(ctx, post_quant_conv_, x);
    ctx.trace("post_quant_conv", x);
  }
  x = conv(ctx, d.conv_in, x);
  ctx.trace("decoder.conv_in", x);
  x = mid_block(ctx, d.mid_block, groups, "decoder", x);
  ctx.progress("decode", 1, int64_t(d.up_blocks.size() + 1));
  for (size_t i = 0; i < d.up_blocks.size(); ++i) {
    check_cancel(ctx, "decode");
    const UpBlock& b = d.up_blocks[i];
    for (const Resnet& r : b.resnets) x = resnet(ctx, r, groups, x);
    if (b.upsample) x = conv(ctx, *b.upsample, ops::upsample_nearest2d(ctx, x, 2));
    ctx.trace(cat("decoder.up_blocks.", i), x);
    ctx.progress("decode", int64_t(i + 2), int64_t(d.up_blocks.size() + 1));
  }
  x = ops::group_norm(ctx, x, groups, d.conv_norm_out.weight, d.conv_norm_out.bias, kNormEps);
  ctx.trace("decoder.conv_norm_out", x);
  ops::silu_(ctx, x);
  x = conv(ctx, d.conv_out, x);
  ctx.trace("decoder.conv_out", x);
  return x;
}

Tensor VaeKl::moments_mean(const Tensor& moments) {
  EASEL_CHECK(moments.dim() == 4 && moments.size(1) % 2 == 0, "VAE moments must be [N, 2C, h, w], got ",
              moments.describe());
  return moments.narrow(1, 0, moments.size(1) / 2);
}

Tensor VaeKl::moments_logvar(const Tensor& moments) {
  EASEL_CHECK(moments.dim() == 4 && moments.size(1) % 2 == 0, "VAE moments must be [N, 2C, h, w], got ",
              moments.describe());
  return moments.narrow(1, moments.size(1) / 2, moments.size(1) / 2);
}

Tensor VaeKl::sample(Context& ctx, const Tensor& moments, const Tensor& noise) {
  const Tensor mean = moments_mean(moments);
  EASEL_CHECK(noise.shape() == mean.shape(), "VAE sample: noise ", noise.describe(), " does not match the latents ",
              mean.describe());
  // std = exp(0.5 * clamp(logvar, -30, 20))
  Tensor std = ops::exp(ctx, ops::affine(ctx, ops::clamp(ctx, moments_logvar(moments), -30.0f, 20.0f), 0.5f, 0.0f));
  return ops::add(ctx, mean, ops::mul(ctx, std, noise));
}

std::optional<VaeKlConfig> vae_kl_recognize(const Checkpoint& ck, bool* encoder, bool* decoder) {
  // The group count is no part of the tensors: 1 divides any width, so recognition does not depend
  // on it; what load() uses is the default, 32.
  auto vae = VaeKl::load_weights(nullptr, tensors_under({&ck}, ""), VaeKlOptions{1});
  if (!vae) return std::nullopt;
  if (encoder) *encoder = vae->has_encoder();
  if (decoder) *decoder = vae->has_decoder();
  VaeKlConfig config = vae->config();
  config.norm_groups = VaeKlOptions{}.norm_groups;
  return config;
}

int64_t VaeKl::decode_macs(int64_t h, int64_t w) const {
  if (!decoder_) return 0;
  auto conv_macs = [&](const Conv& c) {
    return c.weight.size(0) * c.weight.size(1) * c.weight.size(2) * c.weight.size(3) * h * w;
  };
  auto resnet_macs = [&](const Resnet& r) {
    return conv_macs(r.conv1) + conv_macs(r.conv2) + (r.conv_shortcut ? conv_macs(*r.conv_shortcut) : 0);
  };
  const Decoder& d = *decoder_;
  int64_t macs = config_.quant_conv ? conv_macs(post_quant_conv_) : 0;
  macs += conv_macs(d.conv_in);
  const int64_t tokens = h * w, C = d.mid_block.attention.channels;
  macs += resnet_macs(d.mid_block.resnets[0]) + resnet_macs(d.mid_block.resnets[1]);
  macs += 4 * tokens * C * C + 2 * tokens * tokens * C;  // q, k, v, out projections; QK^T and PV
  for (const UpBlock& b : d.up_blocks) {
    for (const Resnet& r : b.resnets) macs += resnet_macs(r);
    if (b.upsample) {
      h *= 2, w *= 2;
      macs += conv_macs(*b.upsample);
    }
  }
  return macs + conv_macs(d.conv_out);
}

}  // namespace easel
