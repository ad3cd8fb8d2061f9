#include "models/clip_text.h"

#include <charconv>

#include "ops/ops.h"

namespace easel {
namespace {

using namespace clip;

// --- names: checkpoint naming -> ours (transformers') ----------------------------------------------

// Tensors real checkpoints carry beside the text weights that the text model does not use.
constexpr std::string_view kIgnored[] = {
    "text_model.embeddings.position_ids",    // transformers < 4.31 saved this buffer (SD1/SDXL single files)
    "embeddings.position_ids",               // the same in old SD1 files without `text_model.`
    "vision_model.embeddings.position_ids",  // some SD1 merges carry the vision tower's buffer too
    "logit_scale",                           // open_clip CLIP's contrastive temperature (SD2, SDXL)
};

enum class Fix { None, Transpose, SplitQkv };

struct NameRule {
  std::string_view from;
  std::string_view to;  // for SplitQkv: '*' becomes q, k, v
  bool prefix;          // `from` is a prefix (the rest is kept) or the whole name
  ClipNaming naming;
  Fix fix = Fix::None;
};

constexpr auto kHf = ClipNaming::Transformers;
constexpr auto kOc = ClipNaming::OpenClip;

constexpr NameRule kNameRules[] = {
    // transformers (diffusers text_encoder, SD1 `cond_stage_model.transformer.`, SDXL `conditioner.embedders.0.transformer.`)
    {"text_model.", "text_model.", true, kHf},
    {"text_projection.weight", "text_projection.weight", false, kHf},
    {"embeddings.", "text_model.embeddings.", true, kHf},  // old SD1 files: no `text_model.`
    {"encoder.", "text_model.encoder.", true, kHf},
    {"final_layer_norm.", "text_model.final_layer_norm.", true, kHf},
    // open_clip (SD2 `cond_stage_model.model.`, SDXL `conditioner.embedders.1.model.`)
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight", false, kOc},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight", false, kOc},
    {"ln_final.", "text_model.final_layer_norm.", true, kOc},
    {"text_projection", "text_projection.weight", false, kOc, Fix::Transpose},  // x @ P [W, proj] = linear(x, Pᵀ)
    {"transformer.resblocks.", "text_model.encoder.layers.", true, kOc},        // then kOpenClipLayerRules
};

// Inside `transformer.resblocks.N.`
constexpr NameRule kOpenClipLayerRules[] = {
    {"ln_1.", "layer_norm1.", true, kOc},
    {"ln_2.", "layer_norm2.", true, kOc},
    {"attn.in_proj_weight", "self_attn.*_proj.weight", false, kOc, Fix::SplitQkv},
    {"attn.in_proj_bias", "self_attn.*_proj.bias", false, kOc, Fix::SplitQkv},
    {"attn.out_proj.", "self_attn.out_proj.", true, kOc},
    {"mlp.c_fc.", "mlp.fc1.", true, kOc},
    {"mlp.c_proj.", "mlp.fc2.", true, kOc},
};

template <size_t N>
const NameRule* match(std::string_view name, const NameRule (&rules)[N]) {
  for (const NameRule& r : rules)
    if (r.prefix ? name.substr(0, r.from.size()) == r.from : name == r.from) return &r;
  return nullptr;
}

// "12.ln_1.weight" -> {"12.", "ln_1.weight"}
bool split_index(std::string_view s, std::string_view& index, std::string_view& rest) {
  int i = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec != std::errc() || end == s.data() || end == s.data() + s.size() || *end != '.') return false;
  const size_t n = size_t(end - s.data()) + 1;
  index = s.substr(0, n);
  rest = s.substr(n);
  return true;
}

struct Mapped {
  WeightMap weights;
  ClipNaming naming = ClipNaming::Transformers;
};

Result<Mapped> map_names(const std::vector<SourceTensor>& tensors) {
  Mapped m;
  bool any_transformers = false, any_open_clip = false;
  for (const SourceTensor& st : tensors) {
    const std::string_view name = st.name;
    if (std::find(std::begin(kIgnored), std::end(kIgnored), name) != std::end(kIgnored)) continue;
    auto unknown = [&] { return Error(cat(st.source, " is not part of a CLIP text encoder")); };
    const NameRule* rule = match(name, kNameRules);
    if (!rule) return unknown();
    std::string ours(rule->to);
    std::string_view rest = rule->prefix ? name.substr(rule->from.size()) : std::string_view{};
    Fix fix = rule->fix;
    if (rule->from == "transformer.resblocks.") {
      std::string_view index;
      if (!split_index(rest, index, rest)) return unknown();
      const NameRule* inner = match(rest, kOpenClipLayerRules);
      if (!inner) return unknown();
      ours += std::string(index) + std::string(inner->to);
      rest = inner->prefix ? rest.substr(inner->from.size()) : std::string_view{};
      fix = inner->fix;
    }
    ours += std::string(rest);
    (rule->naming == ClipNaming::OpenClip ? any_open_clip : any_transformers) = true;

    switch (fix) {
      case Fix::None:
        EASEL_TRY_STATUS(m.weights.add(ours, st.tensor, st.source));
        break;
      case Fix::Transpose:
        if (st.tensor.dim() != 2) return Error(cat(st.source, " is ", st.tensor.shape().str(), ", expected a matrix"));
        EASEL_TRY_STATUS(m.weights.add(ours, st.tensor.transpose(0, 1), st.source + " (transposed)"));
        break;
      case Fix::SplitQkv: {  // rows [q; k; v] of nn.MultiheadAttention's in_proj, as views
        if (st.tensor.dim() < 1 || st.tensor.size(0) % 3 != 0)
          return Error(cat(st.source, " is ", st.tensor.shape().str(), ": an in_proj needs 3 x width rows"));
        const int64_t w = st.tensor.size(0) / 3;
        const char* parts[] = {"q", "k", "v"};
        for (int i = 0; i < 3; ++i) {
          std::string n = ours;
          n.replace(n.find('*'), 1, parts[i]);
          EASEL_TRY_STATUS(m.weights.add(n, st.tensor.narrow(0, i * w, w), cat(st.source, " (", parts[i], " rows)")));
        }
        break;
      }
    }
  }
  if (any_transformers && any_open_clip)
    return Error("the CLIP text encoder's tensors mix transformers and open_clip naming: are two models in one?");
  m.naming = any_open_clip ? ClipNaming::OpenClip : ClipNaming::Transformers;
  return m;
}

// --- config from shapes ---------------------------------------------------------------------------

constexpr std::string_view kLayers = "text_model.encoder.layers.";

Result<ClipTextConfig> detect_config(const Mapped& m, const ClipTextOptions& options) {
  ClipTextConfig c;
  c.naming = m.naming;
  const auto* tok = m.weights.find("text_model.embeddings.token_embedding.weight");
  if (!tok || tok->tensor.dim() != 2)
    return Error("not a CLIP text encoder: no token embedding [vocab, width] (text_model.embeddings.token_embedding."
                 "weight or open_clip's token_embedding.weight)");
  c.vocab_size = tok->tensor.size(0);
  c.width = tok->tensor.size(1);
  c.positions = 77;
  if (const auto* p = m.weights.find("text_model.embeddings.position_embedding.weight"); p && p->tensor.dim() == 2)
    c.positions = p->tensor.size(0);
  for (const auto& [name, entry] : m.weights.entries()) {
    if (name.rfind(kLayers, 0) != 0) continue;
    int i = 0;
    const char* s = name.data() + kLayers.size();
    auto [end, ec] = std::from_chars(s, name.data() + name.size(), i);
    if (ec == std::errc()) c.layers = std::max(c.layers, i + 1);
  }
  if (c.layers == 0) return Error("not a CLIP text encoder: no encoder layers");
  c.intermediate_size = 4 * c.width;
  if (const auto* f = m.weights.find(cat(kLayers, "0.mlp.fc1.weight")); f && f->tensor.dim() == 2)
    c.intermediate_size = f->tensor.size(0);
  if (const auto* p = m.weights.find("text_projection.weight"); p && p->tensor.dim() == 2)
    c.projection_dim = p->tensor.size(0);

  c.heads = options.heads ? *options.heads : int(c.width / 64);
  if (c.heads <= 0 || c.width % c.heads != 0)
    return Error(cat("CLIP text encoder: width ", c.width, " does not split into ", c.heads,
                     " attention heads", options.heads ? "" : " (width / 64); give the head count"));
  if (options.activation) c.activation = *options.activation;
  else if (c.naming == ClipNaming::OpenClip || c.width > 768) c.activation = ClipActivation::Gelu;
  else c.activation = ClipActivation::QuickGelu;
  return c;
}

// --- loading --------------------------------------------------------------------------------------

Linear take_linear(WeightLoader& l, const std::string& p, int64_t out, int64_t in) {
  return {l.take(p + ".weight", {out, in}), l.take(p + ".bias", {out})};
}

Norm take_norm(WeightLoader& l, const std::string& p, int64_t w) {
  return {l.take(p + ".weight", {w}), l.take(p + ".bias", {w})};
}

// The [3W, W] in_proj when q, k and v are consecutive rows of one stored tensor (open_clip): one
// GEMM instead of three. Undefined otherwise.
Tensor adjacent_rows(const Tensor& a, const Tensor& b, const Tensor& c) {
  if (!a.defined() || !b.defined() || !c.defined()) return {};
  if (a.storage() != b.storage() || a.storage() != c.storage() || a.dtype() != b.dtype() || a.dtype() != c.dtype())
    return {};
  if (!a.is_contiguous() || !b.is_contiguous() || !c.is_contiguous()) return {};
  if (b.byte_offset() != a.byte_offset() + a.nbytes() || c.byte_offset() != b.byte_offset() + b.nbytes()) return {};
  Shape shape = a.shape();
  shape[0] *= 3;
  return Tensor::from_storage(a.storage(), a.byte_offset(), shape, a.dtype());
}

// --- forward --------------------------------------------------------------------------------------

// The ids on the host, where the embedding rows are picked (wherever the caller keeps them).
std::vector<int64_t> host_ids(Context& ctx, const Tensor& ids) {
  const Tensor host = ops::to_host(ctx, ids);
  if (host.dtype() == DType::I64) return host.to_vector<int64_t>();
  const auto v = host.to_vector<int32_t>();
  return {v.begin(), v.end()};
}

// x·sigmoid(1.702·x), openai CLIP's activation
Tensor quick_gelu(Context& ctx, const Tensor& x) {
  return ops::mul(ctx, x, ops::sigmoid(ctx, ops::affine(ctx, x, 1.702f, 0.0f)));
}

}  // namespace

Result<ClipTextModel> ClipTextModel::load(Context& ctx, const std::vector<SourceTensor>& tensors,
                                          const ClipTextOptions& options) {
  EASEL_TRY(Mapped mapped, map_names(tensors));
  EASEL_TRY(ClipTextConfig c, detect_config(mapped, options));
  ClipTextModel m;
  m.config_ = c;
  WeightLoader l(ctx, mapped.weights, cat("CLIP text encoder (width ", c.width, ", ", c.layers, " layers)"));
  const int64_t W = c.width, I = c.intermediate_size;
  m.token_embedding_ = l.take("text_model.embeddings.token_embedding.weight", {c.vocab_size, W});
  m.position_embedding_ = l.take("text_model.embeddings.position_embedding.weight", {c.positions, W});
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = cat(kLayers, i, ".");
    Layer layer;
    layer.layer_norm1 = take_norm(l, p + "layer_norm1", W);
    layer.q_proj = take_linear(l, p + "self_attn.q_proj", W, W);
    layer.k_proj = take_linear(l, p + "self_attn.k_proj", W, W);
    layer.v_proj = take_linear(l, p + "self_attn.v_proj", W, W);
    layer.out_proj = take_linear(l, p + "self_attn.out_proj", W, W);
    layer.layer_norm2 = take_norm(l, p + "layer_norm2", W);
    layer.fc1 = take_linear(l, p + "mlp.fc1", I, W);
    layer.fc2 = take_linear(l, p + "mlp.fc2", W, I);
    layer.qkv.weight = adjacent_rows(layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight);
    layer.qkv.bias = adjacent_rows(layer.q_proj.bias, layer.k_proj.bias, layer.v_proj.bias);
    if (!layer.qkv.weight.defined() || !layer.qkv.bias.defined()) layer.qkv = {};
    m.layers_.push_back(std::move(layer));
  }
  m.final_layer_norm_ = take_norm(l, "text_model.final_layer_norm", W);
  if (c.projection_dim) m.text_projection_ = l.take("text_projection.weight", {c.projection_dim, W});
  EASEL_TRY_STATUS(l.finish());
  return m;
}

std::optional<ClipTextConfig> clip_text_recognize(const Checkpoint& ck) {
  auto mapped = map_names(tensors_under({&ck}, ""));
  if (!mapped) return std::nullopt;
  ClipTextOptions o;
  o.heads = 1;  // shapes cannot tell; any count is fine for recognising
  auto config = detect_config(*mapped, o);
  if (!config) return std::nullopt;
  config->heads = int(config->width / 64);
  return *config;
}

std::string clip_text_variant(const ClipTextConfig& c) {
  if (c.width == 768) return "openai-clip-vit-l";
  if (c.width == 1024) return "openclip-vit-h";
  if (c.width == 1280) return "openclip-vit-bigg";
  return "clip-text";
}

Result<ClipTextModel> ClipTextModel::load(Context& ctx, const std::vector<const Checkpoint*>& checkpoints,
                                          const ClipTextOptions& options) {
  return load(ctx, tensors_under(checkpoints, ""), options);
}

namespace {

// ids [B, T] -> token_embedding[ids] + position_embedding[:T], f32 [B, T, W]
Tensor embed(Context& ctx, const Tensor& token_embedding, const Tensor& position_embedding,
             const std::vector<int64_t>& ids, int64_t B, int64_t T) {
  const int64_t W = token_embedding.size(1);
  Tensor x = ctx.empty({B, T, W});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      Tensor row = x.select(0, b).select(0, t);
      ops::copy_(ctx, token_embedding.select(0, ids[size_t(b * T + t)]), row);
    }
  ops::add_(ctx, x, ops::cast(ctx, position_embedding.narrow(0, 0, T), DType::F32));
  return x;
}

// Causal multi-head self-attention of CLIPAttention / nn.MultiheadAttention. x [B, T, W] -> [B, T, W]
Tensor self_attention(Context& ctx, const Layer& l, const Tensor& x, int heads) {
  const int64_t B = x.size(0), T = x.size(1), W = x.size(2), D = W / heads;
  Tensor q, k, v;  // [B, H, T, D] views
  if (l.qkv.weight.defined()) {
    const Tensor qkv = ops::linear(ctx, x, l.qkv.weight, l.qkv.bias).view({B, T, 3, heads, D});
    q = qkv.select(2, 0).permute({0, 2, 1, 3});
    k = qkv.select(2, 1).permute({0, 2, 1, 3});
    v = qkv.select(2, 2).permute({0, 2, 1, 3});
  } else {
    q = ops::linear(ctx, x, l.q_proj.weight, l.q_proj.bias).view({B, T, heads, D}).permute({0, 2, 1, 3});
    k = ops::linear(ctx, x, l.k_proj.weight, l.k_proj.bias).view({B, T, heads, D}).permute({0, 2, 1, 3});
    v = ops::linear(ctx, x, l.v_proj.weight, l.v_proj.bias).view({B, T, heads, D}).permute({0, 2, 1, 3});
  }
  AttentionParams p;
  p.causal = true;
  const Tensor a = ops::attention(ctx, q, k, v, {}, p);              // [B, H, T, D]
  const Tensor merged = ops::permute(ctx, a, {0, 2, 1, 3}).view({B, T, W});
  return ops::linear(ctx, merged, l.out_proj.weight, l.out_proj.bias);
}

// CLIPEncoderLayer / open_clip ResidualAttentionBlock: pre-norm attention and MLP, each residual.
// Returns a new tensor (x is left as it is: a caller may keep it, e.g. the clip-skip hidden state).
Tensor encoder_layer(Context& ctx, const Layer& l, const Tensor& x, const ClipTextConfig& c) {
  const float eps = c.layer_norm_eps;
  Tensor h = self_attention(ctx, l, ops::layer_norm(ctx, x, l.layer_norm1.weight, l.layer_norm1.bias, eps), c.heads);
  ops::add_(ctx, h, x);  // h = x + attn(ln1(x))
  Tensor m = ops::linear(ctx, ops::layer_norm(ctx, h, l.layer_norm2.weight, l.layer_norm2.bias, eps), l.fc1.weight,
                         l.fc1.bias);
  m = c.activation == ClipActivation::QuickGelu ? quick_gelu(ctx, m) : ops::gelu(ctx, m);
  m = ops::linear(ctx, m, l.fc2.weight, l.fc2.bias);
  ops::add_(ctx, m, h);  // m = h + mlp(ln2(h))
  return m;
}

}  // namespace

Tensor ClipTextModel::encode(Context& ctx, const Tensor& ids, int clip_skip) const {
  ClipEncodeOptions o;
  o.clip_skip = clip_skip;
  return forward(ctx, ids, o).hidden;
}

ClipTextOutput ClipTextModel::forward(Context& ctx, const Tensor& ids, const ClipEncodeOptions& options) const {
  const ClipTextConfig& c = config_;
  EASEL_CHECK(ids.defined() && ids.dim() == 2 && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32),
              "CLIP text encoder: token ids must be i32/i64 [batch, tokens], got ", ids.defined() ? ids.describe() : "nothing");
  const int64_t B = ids.size(0), T = ids.size(1);
  EASEL_CHECK(T >= 1 && T <= c.positions, "CLIP text encoder: ", T, " tokens, but the model has ", c.positions,
              " positions");
  EASEL_CHECK(options.clip_skip >= 1 && options.clip_skip <= c.layers, "CLIP text encoder: clip skip ",
              options.clip_skip, " is outside 1..", c.layers, " (the model has ", c.layers, " layers)");
  const std::vector<int64_t> tokens = host_ids(ctx, ids);
  for (int64_t id : tokens)
    EASEL_CHECK(id >= 0 && id < c.vocab_size, "CLIP text encoder: token id ", id, " is outside the vocabulary of ",
                c.vocab_size);

  Tensor x = embed(ctx, token_embedding_, position_embedding_, tokens, B, T);
  ctx.trace("text_model.embeddings", x);
  const int stop = c.layers - (options.clip_skip - 1);  // layers whose output `hidden` is
  const int run = options.pooled ? c.layers : stop;
  Tensor hidden;
  for (int i = 0; i < run; ++i) {
    if (ctx.cancelled()) throw Exception("CLIP text encoder cancelled");
    x = encoder_layer(ctx, layers_[size_t(i)], x, c);
    ctx.trace(cat("text_model.encoder.layers.", i), x);
    if (i + 1 == stop) hidden = x;
  }

  auto final_norm = [&](const Tensor& t) {
    return ops::layer_norm(ctx, t, final_layer_norm_.weight, final_layer_norm_.bias, c.layer_norm_eps);
  };
  ClipTextOutput out;
  Tensor last_normed;  // final_layer_norm of the last layer's output, when computed
  if (stop == c.layers && options.final_layer_norm) {
    out.hidden = last_normed = final_norm(hidden);
  } else {
    out.hidden = options.final_layer_norm ? final_norm(hidden) : hidden;
    if (options.pooled) last_normed = final_norm(x);
  }
  if (last_normed.defined()) ctx.trace("text_model.final_layer_norm", last_normed);

  if (options.pooled) {
    // The EOS token: the first position of the highest id (open_clip's argmax, transformers'
    // legacy rule; the same as "first EOS" since EOS is the highest id of CLIP's vocabulary).
    out.pooled = ctx.empty({B, c.width});
    for (int64_t b = 0; b < B; ++b) {
      int64_t best = 0;
      for (int64_t t = 1; t < T; ++t)
        if (tokens[size_t(b * T + t)] > tokens[size_t(b * T + best)]) best = t;
      Tensor row = out.pooled.select(0, b);
      ops::copy_(ctx, last_normed.select(0, b).select(0, best), row);
    }
    if (text_projection_.defined()) out.projected = ops::linear(ctx, out.pooled, text_projection_);
  }
  return out;
}

}  // namespace easel
