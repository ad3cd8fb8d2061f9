#include "models/taesd.h"

#include <charconv>

#include "ops/ops.h"

namespace easel {
namespace {

using namespace taesd;

// --- architecture: the reference's nn.Sequential lists ------------------------------------------

Conv conv(int n_in, int n_out, int stride = 1, bool bias = true) { return Conv{n_in, n_out, 3, stride, bias, {}, {}}; }

Block block(int n_in, int n_out, bool midblock_gn = false) {
  Block b{n_in, n_out, {conv(n_in, n_out), conv(n_out, n_out), conv(n_out, n_out)}, std::nullopt, std::nullopt};
  if (n_in != n_out) b.skip = Conv{n_in, n_out, 1, 1, false, {}, {}};
  if (midblock_gn) b.pool = MidblockPool{Conv{n_in, n_in * 4, 1, 1, false, {}, {}}, Conv{n_in * 4, n_in, 1, 1, false, {}, {}}, {}, {}};
  return b;
}

std::vector<Layer> make_encoder(int latent_channels, bool mb) {
  return {
      conv(3, 64), block(64, 64),
      conv(64, 64, 2, false), block(64, 64), block(64, 64), block(64, 64),
      conv(64, 64, 2, false), block(64, 64), block(64, 64), block(64, 64),
      conv(64, 64, 2, false), block(64, 64, mb), block(64, 64, mb), block(64, 64, mb),
      conv(64, latent_channels),
  };
}

std::vector<Layer> make_decoder(int latent_channels, bool mb) {
  return {
      Clamp{}, conv(latent_channels, 64), Relu{},
      block(64, 64, mb), block(64, 64, mb), block(64, 64, mb), Upsample{}, conv(64, 64, 1, false),
      block(64, 64), block(64, 64), block(64, 64), Upsample{}, conv(64, 64, 1, false),
      block(64, 64), block(64, 64), block(64, 64), Upsample{}, conv(64, 64, 1, false),
      block(64, 64), conv(64, 3),
  };
}

// --- names: checkpoint naming -> ours ("encoder.<index>.<rest>", "decoder.<index>.<rest>") --------

struct NameRule {
  std::string_view from;  // prefix in the checkpoint, followed by a layer index
  std::string_view to;
  int index_shift;
};

constexpr NameRule kNameRules[] = {
    {"encoder.layers.", "encoder.", 0},  // diffusers AutoencoderTiny
    {"decoder.layers.", "decoder.", 1},  // diffusers applies the Clamp in forward(): its layer 0 is our 1
    {"taesd_encoder.", "encoder.", 0},   // ComfyUI
    {"taesd_decoder.", "decoder.", 0},
    {"encoder.", "encoder.", 0},
    {"decoder.", "decoder.", 0},
};

// "12.conv.0.weight" -> {12, "conv.0.weight"}
std::optional<std::pair<int, std::string_view>> split_index(std::string_view s) {
  int index = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), index);
  if (ec != std::errc() || end == s.data() || end == s.data() + s.size() || *end != '.') return std::nullopt;
  return std::pair{index, s.substr(static_cast<size_t>(end - s.data()) + 1)};
}

// Which part a file of bare-indexed tensors ("0.weight", "1.conv.0.weight") is, by shapes:
// the encoder starts with a conv from 3 channels; the decoder starts with Clamp, so has no layer 0.
std::optional<std::string_view> bare_part(const Checkpoint& ck) {
  if (const auto* e = ck.find("0.weight"); e && e->entry->shape.size() == 4 && e->entry->shape[1] == 3)
    return "encoder.";
  if (!ck.find("0.weight") && ck.find("1.weight")) return "decoder.";
  return std::nullopt;
}

Result<WeightMap> map_names(const std::vector<const Checkpoint*>& checkpoints) {
  WeightMap weights;
  for (const Checkpoint* ck : checkpoints) {
    const auto part = bare_part(*ck);
    for (const std::string& name : ck->names()) {
      std::string_view rest = name;
      std::string_view to;
      int shift = 0;
      if (part) {
        to = *part;
      } else {
        bool matched = false;
        for (const NameRule& rule : kNameRules) {
          if (rest.substr(0, rule.from.size()) == rule.from) {
            rest.remove_prefix(rule.from.size());
            to = rule.to;
            shift = rule.index_shift;
            matched = true;
            break;
          }
        }
        if (!matched) return Error(cat(ck->path().string(), ": tensor '", name, "' is not part of a TAESD encoder or decoder"));
      }
      auto split = split_index(rest);
      if (!split) return Error(cat(ck->path().string(), ": tensor '", name, "' is not part of a TAESD encoder or decoder"));
      const std::string ours = cat(to, split->first + shift, ".", split->second);
      EASEL_TRY_STATUS(weights.add(ours, ck->tensor(*ck->find(name)), cat(ck->path().filename().string(), ": ", name)));
    }
  }
  return weights;
}

Result<TaesdConfig> detect_config(const WeightMap& w) {
  TaesdConfig c;
  int channels = 0;
  if (const auto* e = w.find("encoder.14.weight"); e && e->tensor.dim() == 4) channels = int(e->tensor.size(0));
  if (const auto* d = w.find("decoder.1.weight"); d && d->tensor.dim() == 4) {
    if (channels && channels != d->tensor.size(1))
      return Error(cat("the encoder makes ", channels, "-channel latents but the decoder takes ", d->tensor.size(1),
                       ": they are from different TAESD models"));
    channels = int(d->tensor.size(1));
  }
  if (const auto* e = w.find("encoder.0.weight"); e && e->tensor.dim() == 4 && e->tensor.size(0) != 64)
    return Error("this TAESD has a 32x-downscaling encoder (taesana), which is not supported yet");
  if (!channels) return Error("not a TAESD encoder or decoder: no encoder.14 or decoder.1 convolution");
  for (const auto& [name, entry] : w.entries())
    if (name.find(".pool.") != std::string::npos) c.midblock_gn = true;
  c.latent_channels = channels;
  if (channels == 4 && !c.midblock_gn) c.variant = "taesd/taesdxl";
  else if (channels == 16 && !c.midblock_gn) c.variant = "taesd3/taef1";
  else if (channels == 32 && c.midblock_gn) c.variant = "taef2";
  else
    return Error(cat("unknown TAESD variant: ", channels, " latent channels", c.midblock_gn ? " with" : " without",
                     " midblock group norm"));
  return c;
}

// --- loading ------------------------------------------------------------------------------------

void load(WeightLoader& l, const std::string& p, Conv& c) {
  c.weight = l.take(p + ".weight", {c.n_out, c.n_in, c.kernel, c.kernel});
  if (c.has_bias) c.bias = l.take(p + ".bias", {c.n_out});
}

void load(WeightLoader& l, const std::string& p, Block& b) {
  load(l, p + ".conv.0", b.conv[0]);
  load(l, p + ".conv.2", b.conv[1]);
  load(l, p + ".conv.4", b.conv[2]);
  if (b.skip) load(l, p + ".skip", *b.skip);
  if (b.pool) {
    load(l, p + ".pool.0", b.pool->expand);
    b.pool->norm_weight = l.take(p + ".pool.1.weight", {b.pool->expand.n_out});
    b.pool->norm_bias = l.take(p + ".pool.1.bias", {b.pool->expand.n_out});
    load(l, p + ".pool.3", b.pool->project);
  }
}

void load(WeightLoader&, const std::string&, Relu&) {}
void load(WeightLoader&, const std::string&, Upsample&) {}
void load(WeightLoader&, const std::string&, Clamp&) {}

void load_layers(WeightLoader& l, const std::string& part, std::vector<Layer>& layers) {
  for (size_t i = 0; i < layers.size(); ++i)
    std::visit([&](auto& layer) { load(l, cat(part, ".", i), layer); }, layers[i]);
}

// --- forward ------------------------------------------------------------------------------------

Tensor forward(Context& ctx, const Conv& c, const Tensor& x, bool relu = false) {
  Conv2dParams p;
  p.stride_h = p.stride_w = c.stride;
  p.pad_h = p.pad_w = c.kernel / 2;
  p.relu = relu;  // fused: saves a pass over the activation
  return ops::conv2d(ctx, x, c.weight, c.bias, p);
}

Tensor forward(Context& ctx, const Block& b, Tensor x) {
  if (b.pool) {
    Tensor h = forward(ctx, b.pool->expand, x);
    h = ops::group_norm(ctx, h, 4, b.pool->norm_weight, b.pool->norm_bias, 1e-5f);
    ops::relu_(ctx, h);
    x = ops::add(ctx, x, forward(ctx, b.pool->project, h));
  }
  Tensor h = forward(ctx, b.conv[0], x, /*relu=*/true);
  h = forward(ctx, b.conv[1], h, /*relu=*/true);
  h = forward(ctx, b.conv[2], h);
  ops::add_(ctx, h, b.skip ? forward(ctx, *b.skip, x) : x);
  ops::relu_(ctx, h);
  return h;
}

Tensor forward(Context& ctx, const Relu&, const Tensor& x) { return ops::relu(ctx, x); }
Tensor forward(Context& ctx, const Upsample&, const Tensor& x) { return ops::upsample_nearest2d(ctx, x, 2); }
Tensor forward(Context& ctx, const Clamp&, const Tensor& x) {
  return ops::affine(ctx, ops::tanh(ctx, ops::affine(ctx, x, 1.0f / 3.0f, 0.0f)), 3.0f, 0.0f);
}

Tensor run_layers(Context& ctx, const std::string& part, const std::vector<Layer>& layers, Tensor x) {
  for (size_t i = 0; i < layers.size(); ++i) {
    if (ctx.cancelled()) throw Exception(part + " cancelled");
    x = std::visit([&](const auto& layer) { return forward(ctx, layer, x); }, layers[i]);
    ctx.trace(cat(part, ".", i), x);
    ctx.progress(part, int64_t(i + 1), int64_t(layers.size()));
  }
  return x;
}

}  // namespace

Result<Taesd> Taesd::load(Context& ctx, const std::vector<const Checkpoint*>& checkpoints) {
  EASEL_TRY(WeightMap weights, map_names(checkpoints));
  EASEL_TRY(TaesdConfig config, detect_config(weights));
  Taesd t;
  t.config_ = config;
  bool any_encoder = false, any_decoder = false;
  for (const auto& [name, entry] : weights.entries()) {
    any_encoder |= name.rfind("encoder.", 0) == 0;
    any_decoder |= name.rfind("decoder.", 0) == 0;
  }
  WeightLoader loader(ctx, weights, "TAESD (" + config.variant + ")");
  if (any_encoder) {
    t.encoder_ = make_encoder(config.latent_channels, config.midblock_gn);
    load_layers(loader, "encoder", t.encoder_);
  }
  if (any_decoder) {
    t.decoder_ = make_decoder(config.latent_channels, config.midblock_gn);
    load_layers(loader, "decoder", t.decoder_);
  }
  EASEL_TRY_STATUS(loader.finish());
  return t;
}

Tensor Taesd::encode(Context& ctx, const Tensor& image) const {
  EASEL_CHECK(has_encoder(), "this TAESD has no encoder weights");
  EASEL_CHECK(image.dim() == 4 && image.size(1) == 3, "TAESD encode: expected an image [N, 3, H, W], got ",
              image.describe());
  EASEL_CHECK(image.size(2) % 8 == 0 && image.size(3) % 8 == 0, "TAESD encode: height and width must be multiples of 8, got ",
              image.size(2), "x", image.size(3));
  return run_layers(ctx, "encoder", encoder_, image);
}

Tensor Taesd::decode(Context& ctx, const Tensor& latents) const {
  EASEL_CHECK(has_decoder(), "this TAESD has no decoder weights");
  EASEL_CHECK(latents.dim() == 4 && latents.size(1) == config_.latent_channels, "TAESD decode: expected latents [N, ",
              config_.latent_channels, ", h, w], got ", latents.describe());
  return run_layers(ctx, "decoder", decoder_, latents);
}

int64_t Taesd::decode_macs(int64_t h, int64_t w) const {
  int64_t macs = 0;
  auto conv_macs = [&](const Conv& c) { return int64_t(c.n_out) * c.n_in * c.kernel * c.kernel * h * w; };
  for (const Layer& layer : decoder_) {
    if (const auto* c = std::get_if<Conv>(&layer)) macs += conv_macs(*c);
    if (const auto* b = std::get_if<Block>(&layer)) {
      for (const Conv& c : b->conv) macs += conv_macs(c);
      if (b->skip) macs += conv_macs(*b->skip);
      if (b->pool) macs += conv_macs(b->pool->expand) + conv_macs(b->pool->project);
    }
    if (std::holds_alternative<Upsample>(layer)) h *= 2, w *= 2;
  }
  return macs;
}

std::optional<TaesdParts> taesd_recognize(const Checkpoint& ck) {
  auto weights = map_names({&ck});
  if (!weights) return std::nullopt;
  auto config = detect_config(*weights);
  if (!config) return std::nullopt;
  TaesdParts parts;
  parts.config = *config;
  parts.encoder = weights->find("encoder.0.weight") != nullptr;
  parts.decoder = weights->find("decoder.1.weight") != nullptr;
  return parts;
}

}  // namespace easel
