// The Stable Diffusion UNet: loading into typed blocks, and the forward pass, written to be read
// beside diffusers' unet_2d_condition.py / unet_2d_blocks.py / resnet.py / transformer_2d.py /
// attention.py.
#include "models/unet.h"

#include <cmath>
#include <functional>

#include "ops/ops.h"

namespace easel {
namespace {

using namespace unet;

constexpr float kResnetEps = 1e-5f;       // ResnetBlock2D's GroupNorms, conv_norm_out
constexpr float kTransformerEps = 1e-6f;  // Transformer2DModel's GroupNorm
constexpr float kLayerNormEps = 1e-5f;    // BasicTransformerBlock's LayerNorms

// --- loading ----------------------------------------------------------------------------------------

}  // namespace

namespace unet {

// Fills the typed blocks through `take`: WeightLoader::take when loading, a recorder for
// Unet::weight_shapes.
struct Loader {
  struct Take {
    std::function<Tensor(const std::string&, const Shape&)> fn;
    Tensor take(const std::string& name, const Shape& shape) const { return fn(name, shape); }
  } l;
  const UnetConfig& c;
  const UnetOptions& o;

  Conv conv(const std::string& p, int in, int out, int k, int stride = 1) {
    return Conv{l.take(p + ".weight", {out, in, k, k}), l.take(p + ".bias", {out}), stride};
  }
  Linear linear(const std::string& p, int in, int out, bool bias = true) {
    return Linear{l.take(p + ".weight", {out, in}), bias ? l.take(p + ".bias", {out}) : Tensor()};
  }
  Norm norm(const std::string& p, int ch) { return Norm{l.take(p + ".weight", {ch}), l.take(p + ".bias", {ch})}; }

  ResnetBlock resnet(const std::string& p, int in, int out) {
    ResnetBlock r;
    r.in_channels = in, r.out_channels = out;
    r.norm1 = norm(p + ".norm1", in);
    r.conv1 = conv(p + ".conv1", in, out, 3);
    r.time_emb_proj = linear(p + ".time_emb_proj", c.time_embed_dim, out);
    r.norm2 = norm(p + ".norm2", out);
    r.conv2 = conv(p + ".conv2", out, out, 3);
    if (in != out) r.shortcut = conv(p + ".conv_shortcut", in, out, 1);
    return r;
  }

  Attention attention(const std::string& p, int ch, int kv_ch) {
    Attention a;
    a.to_q = linear(p + ".to_q", ch, ch, false);
    a.to_k = linear(p + ".to_k", kv_ch, ch, false);
    a.to_v = linear(p + ".to_v", kv_ch, ch, false);
    a.to_out = linear(p + ".to_out.0", ch, ch);
    a.heads = o.num_heads ? o.num_heads : ch / o.head_dim;
    return a;
  }

  // proj_in / proj_out: Linear [C, C], or a 1x1 Conv2d [C, C, 1, 1] seen as its [C, C] matrix.
  Linear projection(const std::string& p, int ch) {
    if (c.linear_projection) return linear(p, ch, ch);
    Linear lin{l.take(p + ".weight", {ch, ch, 1, 1}), l.take(p + ".bias", {ch})};
    if (lin.weight.defined()) lin.weight = lin.weight.view({ch, ch});
    return lin;
  }

  Transformer2D transformer(const std::string& p, int ch, int depth) {
    Transformer2D t;
    t.channels = ch;
    t.norm = norm(p + ".norm", ch);
    t.proj_in = projection(p + ".proj_in", ch);
    for (int i = 0; i < depth; ++i) {
      const std::string b = cat(p, ".transformer_blocks.", i);
      TransformerBlock tb;
      tb.norm1 = norm(b + ".norm1", ch);
      tb.attn1 = attention(b + ".attn1", ch, ch);
      tb.norm2 = norm(b + ".norm2", ch);
      tb.attn2 = attention(b + ".attn2", ch, c.context_dim);
      tb.norm3 = norm(b + ".norm3", ch);
      tb.ff_proj = linear(b + ".ff.net.0.proj", ch, 8 * ch);
      tb.ff_out = linear(b + ".ff.net.2", 4 * ch, ch);
      t.blocks.push_back(std::move(tb));
    }
    t.proj_out = projection(p + ".proj_out", ch);
    return t;
  }
};

}  // namespace unet

namespace {

Status check_heads(const UnetConfig& c, const UnetOptions& o) {
  if ((o.num_heads > 0) == (o.head_dim > 0))
    return Error(cat("UNet options: give either num_heads (SD 1.x: 8) or head_dim (SD 2.x/SDXL: 64), got num_heads ",
                     o.num_heads, " and head_dim ", o.head_dim));
  for (int l = 0; l < c.levels(); ++l) {
    const int ch = c.block_channels[size_t(l)];
    if (c.down_depth[size_t(l)] == 0 && c.up_depth[size_t(c.levels() - 1 - l)] == 0 && l != c.levels() - 1) continue;
    if (o.num_heads ? ch % o.num_heads : ch % o.head_dim)
      return Error(cat("UNet: level ", l, " has ", ch, " channels, which ",
                       o.num_heads ? cat(o.num_heads, " heads") : cat("heads of ", o.head_dim), " do not divide"));
  }
  for (int ch : c.block_channels)
    if (ch % o.norm_groups) return Error(cat("UNet: ", ch, " channels do not split into ", o.norm_groups, " groups"));
  return {};
}

// --- forward: blocks ----------------------------------------------------------------------------------

Tensor conv(Context& ctx, const Conv& c, const Tensor& x) {
  Conv2dParams p;
  p.stride_h = p.stride_w = c.stride;
  p.pad_h = p.pad_w = int(c.weight.size(2) / 2);
  return ops::conv2d(ctx, x, c.weight, c.bias, p);
}

Tensor linear(Context& ctx, const Linear& l, const Tensor& x) { return ops::linear(ctx, x, l.weight, l.bias); }

// GroupNorm -> SiLU (in place on the norm's fresh output)
Tensor norm_silu(Context& ctx, const Norm& n, int groups, const Tensor& x) {
  Tensor h = ops::group_norm(ctx, x, groups, n.weight, n.bias, kResnetEps);
  ops::silu_(ctx, h);
  return h;
}

// ResnetBlock2D: x [N, in, H, W], temb = silu(emb) [N, T] -> [N, out, H, W]
Tensor resnet(Context& ctx, const ResnetBlock& r, int groups, const Tensor& x, const Tensor& temb) {
  Tensor h = conv(ctx, r.conv1, norm_silu(ctx, r.norm1, groups, x));
  const Tensor t = linear(ctx, r.time_emb_proj, temb);  // [N, out]
  ops::add_(ctx, h, t.view({t.size(0), t.size(1), 1, 1}));
  h = conv(ctx, r.conv2, norm_silu(ctx, r.norm2, groups, h));  // dropout: identity at inference
  ops::add_(ctx, h, r.shortcut ? conv(ctx, *r.shortcut, x) : x);
  return h;
}

// Attention: x [N, L, C] queries, kv [N, S, Ckv] -> [N, L, C] (before the residual)
Tensor attention(Context& ctx, const Attention& a, const Tensor& x, const Tensor& kv) {
  const int64_t N = x.size(0), L = x.size(1), S = kv.size(1), C = a.to_q.weight.size(0);
  const int64_t H = a.heads, D = C / H;
  // [N, L, C] -> [N, L, H, D] -> [N, H, L, D]: strided views, no copy
  const Tensor q = linear(ctx, a.to_q, x).view({N, L, H, D}).permute({0, 2, 1, 3});
  const Tensor k = linear(ctx, a.to_k, kv).view({N, S, H, D}).permute({0, 2, 1, 3});
  const Tensor v = linear(ctx, a.to_v, kv).view({N, S, H, D}).permute({0, 2, 1, 3});
  const Tensor o = ops::attention(ctx, q, k, v);                            // [N, H, L, D], scale 1/sqrt(D)
  const Tensor merged = ops::permute(ctx, o, {0, 2, 1, 3}).view({N, L, C});  // [N, L, C]
  return linear(ctx, a.to_out, merged);
}

// BasicTransformerBlock on tokens x [N, L, C] (updated in place), context [N, S, Cctx]
void transformer_block(Context& ctx, const TransformerBlock& b, Tensor& x, const Tensor& context) {
  Tensor h = ops::layer_norm(ctx, x, b.norm1.weight, b.norm1.bias, kLayerNormEps);
  ops::add_(ctx, x, attention(ctx, b.attn1, h, h));
  h = ops::layer_norm(ctx, x, b.norm2.weight, b.norm2.bias, kLayerNormEps);
  ops::add_(ctx, x, attention(ctx, b.attn2, h, context));
  h = ops::layer_norm(ctx, x, b.norm3.weight, b.norm3.bias, kLayerNormEps);
  // GEGLU: proj -> [value | gate]; value * gelu(gate). The two halves of the weight are row
  // slices (contiguous views), so each half is its own GEMM and no [.., 8C] tensor is split.
  const int64_t inner = b.ff_proj.weight.size(0) / 2;
  const Tensor value = ops::linear(ctx, h, b.ff_proj.weight.narrow(0, 0, inner), b.ff_proj.bias.narrow(0, 0, inner));
  const Tensor gate = ops::linear(ctx, h, b.ff_proj.weight.narrow(0, inner, inner), b.ff_proj.bias.narrow(0, inner, inner));
  ops::add_(ctx, x, linear(ctx, b.ff_out, ops::mul(ctx, value, ops::gelu(ctx, gate))));
}

// Transformer2DModel: x [N, C, H, W], context [N, S, Cctx] -> [N, C, H, W]
Tensor transformer(Context& ctx, const Transformer2D& t, int groups, const Tensor& x, const Tensor& context) {
  const int64_t N = x.size(0), C = x.size(1), Hh = x.size(2), W = x.size(3);
  const Tensor h = ops::group_norm(ctx, x, groups, t.norm.weight, t.norm.bias, kTransformerEps);
  // proj_in is a per-pixel channel mix (1x1 conv or linear, the same math): tokens [N, HW, C]
  Tensor tokens = linear(ctx, t.proj_in, ops::permute(ctx, h, {0, 2, 3, 1}).view({N, Hh * W, C}));
  for (const TransformerBlock& b : t.blocks) transformer_block(ctx, b, tokens, context);
  const Tensor out = linear(ctx, t.proj_out, tokens);  // [N, HW, C]
  // back to NCHW inside the residual add: one pass, no separate permute copy
  return ops::add(ctx, x, out.view({N, Hh, W, C}).permute({0, 3, 1, 2}));
}

Tensor downsample(Context& ctx, const Conv& c, const Tensor& x) { return conv(ctx, c, x); }

// Upsample2D: nearest x2 (to `size` when the skip is odd-sized, as diffusers' upsample_size), conv
Tensor upsample(Context& ctx, const Conv& c, const Tensor& x, int64_t h, int64_t w) {
  Tensor up = ops::upsample_nearest2d(ctx, x, 2);
  // nearest to 2n - 1 picks source floor(i / 2), the same pixels as x2 with the last row dropped
  if (up.size(2) != h || up.size(3) != w) up = up.narrow(2, 0, h).narrow(3, 0, w);
  return conv(ctx, c, up);
}

}  // namespace

// --- loading --------------------------------------------------------------------------------------------

void Unet::build(Loader& l) {
  Unet& u = *this;
  const UnetConfig& c = config_;
  const int c0 = c.block_channels[0], levels = c.levels();
  u.conv_in_ = l.conv("conv_in", c.in_channels, c0, 3);
  u.time_linear_1_ = l.linear("time_embedding.linear_1", c0, c.time_embed_dim);
  u.time_linear_2_ = l.linear("time_embedding.linear_2", c.time_embed_dim, c.time_embed_dim);

  std::vector<int> skip_channels{c0};  // channels of each skip, in push order
  int ch = c0;
  for (int lv = 0; lv < levels; ++lv) {
    DownBlock d;
    const int out = c.block_channels[size_t(lv)];
    for (int j = 0; j < c.layers_per_block; ++j) {
      const std::string p = cat("down_blocks.", lv, ".");
      d.resnets.push_back(l.resnet(cat(p, "resnets.", j), ch, out));
      ch = out;
      if (c.down_depth[size_t(lv)])
        d.attentions.push_back(l.transformer(cat(p, "attentions.", j), ch, c.down_depth[size_t(lv)]));
      skip_channels.push_back(ch);
    }
    if (lv + 1 < levels) {
      d.downsampler = l.conv(cat("down_blocks.", lv, ".downsamplers.0.conv"), ch, ch, 3, 2);
      skip_channels.push_back(ch);
    }
    u.down_.push_back(std::move(d));
  }
  u.mid_.resnet0 = l.resnet("mid_block.resnets.0", ch, ch);
  u.mid_.attention = l.transformer("mid_block.attentions.0", ch, c.mid_depth);
  u.mid_.resnet1 = l.resnet("mid_block.resnets.1", ch, ch);

  for (int b = 0; b < levels; ++b) {
    UpBlock up;
    const int out = c.block_channels[size_t(levels - 1 - b)];
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const int skip = skip_channels.back();
      skip_channels.pop_back();
      const std::string p = cat("up_blocks.", b, ".");
      up.resnets.push_back(l.resnet(cat(p, "resnets.", j), ch + skip, out));
      ch = out;
      if (c.up_depth[size_t(b)])
        up.attentions.push_back(l.transformer(cat(p, "attentions.", j), ch, c.up_depth[size_t(b)]));
    }
    if (b + 1 < levels) up.upsampler = l.conv(cat("up_blocks.", b, ".upsamplers.0.conv"), ch, ch, 3);
    u.up_.push_back(std::move(up));
  }
  u.conv_norm_out_ = l.norm("conv_norm_out", ch);
  u.conv_out_ = l.conv("conv_out", ch, c.out_channels, 3);
}

Result<Unet> Unet::load(Context& ctx, const std::vector<SourceTensor>& tensors, const UnetOptions& options) {
  EASEL_TRY(WeightMap weights, unet::map_names(tensors));
  EASEL_TRY(UnetConfig c, unet::detect_config(weights));
  EASEL_TRY_STATUS(check_heads(c, options));
  if (c.adm_in_channels)
    return Error("this UNet has added conditioning (label_emb / add_embedding: SDXL), which is not supported yet");
  Unet u;
  u.config_ = c;
  u.options_ = options;
  WeightLoader wl(ctx, weights, "Stable Diffusion UNet");
  Loader l{{[&](const std::string& name, const Shape& shape) { return wl.take(name, shape); }}, u.config_, u.options_};
  u.build(l);
  EASEL_TRY_STATUS(wl.finish());
  return u;
}

std::vector<std::pair<std::string, Shape>> Unet::weight_shapes(const UnetConfig& config, const UnetOptions& options) {
  std::vector<std::pair<std::string, Shape>> shapes;
  Unet u;
  u.config_ = config;
  u.options_ = options;
  Loader l{{[&](const std::string& name, const Shape& shape) {
             shapes.emplace_back(name, shape);
             return Tensor();
           }},
           u.config_, u.options_};
  u.build(l);
  return shapes;
}

// --- forward --------------------------------------------------------------------------------------------

Tensor Unet::timestep_embedding(Context& ctx, const Tensor& timesteps) const {
  // diffusers get_timestep_embedding(t, C0, flip_sin_to_cos=True, downscale_freq_shift=0), in f32
  // step by step as torch computes it: freq_i = exp(-ln(10000) * i / half); [cos(t freq), sin(t freq)]
  const int64_t dim = config_.block_channels[0], half = dim / 2;
  const std::vector<float> t = ops::to_host(ctx, timesteps).to_vector<float>();
  std::vector<float> emb(t.size() * size_t(dim), 0.0f);
  const float log_period = -std::log(10000.0f);
  for (size_t n = 0; n < t.size(); ++n)
    for (int64_t i = 0; i < half; ++i) {
      const float exponent = (log_period * float(i)) / float(half);
      const float arg = t[n] * std::exp(exponent);
      emb[n * size_t(dim) + size_t(i)] = std::cos(arg);
      emb[n * size_t(dim) + size_t(half + i)] = std::sin(arg);
    }
  return ops::to_device(ctx, Tensor::from_vector(emb, {int64_t(t.size()), dim}));
}

Tensor Unet::forward(Context& ctx, const Tensor& x, const Tensor& timesteps, const Tensor& context) const {
  const UnetConfig& c = config_;
  const int groups = options_.norm_groups;
  EASEL_CHECK(x.dim() == 4 && x.size(1) == c.in_channels && x.dtype() == DType::F32,
              "UNet: expected latents f32[N, ", c.in_channels, ", h, w], got ", x.describe());
  const int64_t N = x.size(0);
  EASEL_CHECK(timesteps.dim() == 1 && (timesteps.size(0) == N || timesteps.size(0) == 1) &&
                  timesteps.dtype() == DType::F32,
              "UNet: expected timesteps f32[", N, "] (or [1]), got ", timesteps.describe());
  EASEL_CHECK(context.dim() == 3 && context.size(0) == N && context.size(2) == c.context_dim &&
                  context.dtype() == DType::F32,
              "UNet: expected a context (encoder_hidden_states) f32[", N, ", tokens, ", c.context_dim, "], got ",
              context.describe());
  const int64_t steps = int64_t(up_.size()) + int64_t(down_.size()) + 1;
  int64_t done = 0;
  auto step = [&] {
    if (ctx.cancelled()) throw Exception("UNet cancelled");
    ctx.progress("unet", ++done, steps);
  };

  // time: sinusoidal -> linear -> SiLU -> linear; every resnet takes silu(emb)
  const Tensor t_proj = timestep_embedding(ctx, timesteps.size(0) == N ? timesteps : timesteps.expand({N}));
  ctx.trace("time_proj", t_proj);
  Tensor emb = linear(ctx, time_linear_1_, t_proj);
  ops::silu_(ctx, emb);
  emb = linear(ctx, time_linear_2_, emb);
  ctx.trace("time_embedding", emb);
  const Tensor temb = ops::silu(ctx, emb);
  const Tensor ctx_tokens = ops::contiguous(ctx, context);

  Tensor h = conv(ctx, conv_in_, x);
  ctx.trace("conv_in", h);
  std::vector<Tensor> skips{h};
  for (size_t lv = 0; lv < down_.size(); ++lv) {
    const DownBlock& d = down_[lv];
    for (size_t j = 0; j < d.resnets.size(); ++j) {
      h = resnet(ctx, d.resnets[j], groups, h, temb);
      if (!d.attentions.empty()) h = transformer(ctx, d.attentions[j], groups, h, ctx_tokens);
      skips.push_back(h);
    }
    if (d.downsampler) {
      h = downsample(ctx, *d.downsampler, h);
      skips.push_back(h);
    }
    ctx.trace(cat("down_blocks.", lv), h);
    step();
  }

  h = resnet(ctx, mid_.resnet0, groups, h, temb);
  h = transformer(ctx, mid_.attention, groups, h, ctx_tokens);
  h = resnet(ctx, mid_.resnet1, groups, h, temb);
  ctx.trace("mid_block", h);
  step();

  for (size_t b = 0; b < up_.size(); ++b) {
    const UpBlock& u = up_[b];
    for (size_t j = 0; j < u.resnets.size(); ++j) {
      const Tensor parts[] = {h, skips.back()};
      skips.pop_back();
      h = resnet(ctx, u.resnets[j], groups, ops::concat(ctx, parts, 1), temb);
      if (!u.attentions.empty()) h = transformer(ctx, u.attentions[j], groups, h, ctx_tokens);
    }
    if (u.upsampler) h = upsample(ctx, *u.upsampler, h, skips.back().size(2), skips.back().size(3));
    ctx.trace(cat("up_blocks.", b), h);
    step();
  }

  h = ops::group_norm(ctx, h, groups, conv_norm_out_.weight, conv_norm_out_.bias, kResnetEps);
  ctx.trace("conv_norm_out", h);
  ops::silu_(ctx, h);
  h = conv(ctx, conv_out_, h);
  ctx.trace("conv_out", h);
  return h;
}

// --- cost -----------------------------------------------------------------------------------------------

int64_t Unet::macs(int64_t batch, int64_t h, int64_t w, int64_t tokens) const {
  int64_t m = 0;
  auto conv_macs = [&](const Conv& c, int64_t oh, int64_t ow) { return c.weight.numel() * oh * ow; };
  auto resnet_macs = [&](const ResnetBlock& r, int64_t hh, int64_t ww) {
    return conv_macs(r.conv1, hh, ww) + conv_macs(r.conv2, hh, ww) + (r.shortcut ? conv_macs(*r.shortcut, hh, ww) : 0);
  };
  auto transformer_macs = [&](const Transformer2D& t, int64_t hh, int64_t ww) {
    const int64_t L = hh * ww, C = t.channels;
    int64_t s = 2 * L * C * C;  // proj_in, proj_out
    for (size_t i = 0; i < t.blocks.size(); ++i) {
      s += 4 * L * C * C + 2 * L * L * C;                                     // self-attention
      s += 2 * L * C * C + 2 * tokens * C * config_.context_dim + 2 * L * tokens * C;     // cross-attention
      s += L * C * 8 * C + L * 4 * C * C;                                     // GEGLU feed-forward
    }
    return s;
  };
  m += conv_macs(conv_in_, h, w);
  std::vector<std::pair<int64_t, int64_t>> sizes{{h, w}};
  for (const DownBlock& d : down_) {
    for (size_t j = 0; j < d.resnets.size(); ++j) {
      m += resnet_macs(d.resnets[j], h, w);
      if (!d.attentions.empty()) m += transformer_macs(d.attentions[j], h, w);
      sizes.push_back({h, w});
    }
    if (d.downsampler) {
      h = (h + 1) / 2, w = (w + 1) / 2;
      m += conv_macs(*d.downsampler, h, w);
      sizes.push_back({h, w});
    }
  }
  m += resnet_macs(mid_.resnet0, h, w) + transformer_macs(mid_.attention, h, w) + resnet_macs(mid_.resnet1, h, w);
  for (const UpBlock& u : up_) {
    for (size_t j = 0; j < u.resnets.size(); ++j) {
      m += resnet_macs(u.resnets[j], h, w);
      if (!u.attentions.empty()) m += transformer_macs(u.attentions[j], h, w);
      sizes.pop_back();
    }
    if (u.upsampler) {
      h = sizes.back().first, w = sizes.back().second;
      m += conv_macs(*u.upsampler, h, w);
    }
  }
  m += conv_macs(conv_out_, h, w);
  return m * batch;
}

}  // namespace easel
