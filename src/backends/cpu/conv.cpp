// conv2d on oneDNN's convolution primitive.
//
// Layout. oneDNN's AVX2 direct convolution (jit:avx2) works on channel-blocked activations
// (nChw8c) and weights (OIhw8i8o); given plain NCHW it falls back to im2col + GEMM, measured 5-35%
// slower at SD UNet/VAE sizes (most with many pixels and few channels: the VAE's 128 channels at
// 256x256, TAESD's 64 at 128x128). So the primitive picks its layouts (format_tag::any) and our
// NCHW tensors are reordered into and out of them per call, a memory-bound pass of a few percent.
// The input may be any strided view; the reorder reads it in place. Below kBlockedMinPixels
// output pixels (SD's 8x8 level) both run equally fast, and there the plain layout wins: it
// takes an f32 weight as it is stored, with no packed copy at all.
//
// Weights. For the blocked layout the weight is reordered into the primitive's layout; f16/bf16
// weights are first converted to f32 by our own vectorised loop (oneDNN 2.6 reorders f16 with
// reference code, ~100x slower). Done per call, that preparation made the 3x3 convs slower by
// (f32 / f16 weights): 0% / 0% at 320 ch 64x64, 4% / 13% at 640 ch 32x32, 23% / 26% at 1280 ch
// 16x16, and 0% / 70% at 8x8 (plain layout: only f16 needs converting). So a read-only
// (checkpoint) weight of a conv with at most kCacheMaxPixels output pixels keeps its prepared form
// in the bounded PackedWeightCache; any other weight is prepared per call into scratch.
//
// Memory. The blocked copies of a large activation double what a convolution holds: at the SD
// VAE's last level (256 channels at 512x512, 268 MB a tensor) the input, its blocked copy, the
// blocked output and the output made 1.1 GB. Convolutions whose blocked copies would pass
// 4 x CpuBackend::Impl::conv_band_bytes therefore run in bands of output rows, each band's input rows (with the kernel's
// halo, padded only at the image's top and bottom) reordered into a small scratch buffer and
// its output reordered straight into place.
#include <algorithm>
#include <unordered_map>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_impl.h"

namespace easel {
namespace {

using dnnl::memory;
using Dims = memory::dims;
using dt = memory::data_type;
using tag = memory::format_tag;

// Output pixels (N·Ho·Wo) from which the blocked layout beats the plain one.
constexpr int64_t kBlockedMinPixels = 256;
// Output pixels up to which a read-only weight's prepared form is cached.
constexpr int64_t kCacheMaxPixels = 1024;


// The convolution's geometry, in oneDNN's terms. A band of rows has its own H, Ho and vertical
// padding (pad_top / pad_bottom: the image's padding where the band touches its edge, else 0).
struct ConvShape {
  int64_t N, C, H, W, O, kh, kw, Ho, Wo, groups;
  Conv2dParams p;
  bool has_bias;
  int64_t pad_top, pad_bottom;

  Dims src() const { return {N, C, H, W}; }
  Dims dst() const { return {N, O, Ho, Wo}; }
  // Grouped weights get a leading group dimension: [g, O/g, C/g, kh, kw].
  Dims weights() const {
    if (groups == 1) return {O, C, kh, kw};
    return {groups, O / groups, C / groups, kh, kw};
  }
  int64_t pixels() const { return N * Ho * Wo; }
  bool blocked() const { return pixels() >= kBlockedMinPixels; }
  // oneDNN splits the work for the thread count it sees when the primitive is created, so that
  // count is part of the key (as in oneDNN's own primitive cache).
  cpu::ConvKey key(int threads) const {
    return {{N, C, H, W, O, kh, kw, groups, p.stride_h, p.stride_w, pad_top, pad_bottom, p.pad_w, p.dilation_h,
             p.dilation_w, has_bias, p.relu, threads}};
  }
};

ConvShape conv_shape(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p, const Tensor& out) {
  return ConvShape{x.size(0),   x.size(1),   x.size(2), x.size(3), w.size(0),      w.size(2), w.size(3),
                   out.size(2), out.size(3), p.groups, p,         bias.defined(), p.pad_h,   p.pad_h};
}

std::shared_ptr<const cpu::ConvPlan> make_plan(const ConvShape& s, const dnnl::engine& engine) {
  const tag act = s.blocked() ? tag::any : tag::nchw;
  const tag plain_weights = s.groups == 1 ? tag::oihw : tag::goihw;
  const memory::desc src(s.src(), dt::f32, act), dst(s.dst(), dt::f32, act);
  const memory::desc weights(s.weights(), dt::f32, s.blocked() ? tag::any : plain_weights);
  const memory::desc bias = s.has_bias ? memory::desc({s.O}, dt::f32, tag::x) : memory::desc();
  const Dims strides{s.p.stride_h, s.p.stride_w}, pads_l{s.pad_top, s.p.pad_w}, pads_r{s.pad_bottom, s.p.pad_w};
  // oneDNN counts dilation from 0 (no dilation), torch from 1.
  const Dims dilation{s.p.dilation_h - 1, s.p.dilation_w - 1};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (s.p.relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                                       weights, bias, dst, strides, dilation, pads_l, pads_r);
  dnnl::convolution_forward::primitive_desc pd(desc, attr, engine);
  return std::make_shared<const cpu::ConvPlan>(cpu::ConvPlan{pd, dnnl::convolution_forward(pd)});
}

// A oneDNN view of an f32 tensor with its own strides, or nothing when oneDNN cannot describe
// them (a broadcast dimension of stride 0).
bool strided_desc(const Tensor& t, const Dims& dims, const Dims& strides, memory::desc& out) {
  for (size_t i = 0; i < dims.size(); ++i)
    if (strides[i] <= 0 && dims[i] > 1) return false;
  Dims fixed = strides;
  for (auto& s : fixed) s = std::max<int64_t>(s, 1);
  out = memory::desc(dims, dt::f32, fixed);
  return true;
}

// The weight's strides in the (possibly grouped) dims of ConvShape::weights().
Dims weight_strides(const Tensor& w, int64_t groups) {
  if (groups == 1) return {w.stride(0), w.stride(1), w.stride(2), w.stride(3)};
  return {w.stride(0) * (w.size(0) / groups), w.stride(0), w.stride(1), w.stride(2), w.stride(3)};
}

// Everything one call needs to keep alive until the primitive has run.
struct CallState {
  Context& ctx;
  const dnnl::engine& engine;
  dnnl::stream stream;
  std::vector<Tensor> keep;  // scratch and converted copies

  void reorder(const memory& from, const memory& to) {
    dnnl::reorder(from, to).execute(stream, const_cast<memory&>(from), const_cast<memory&>(to));
  }
};

// The weight in `layout`: as it is stored when that is already the layout (f32), from the cache,
// or converted and reordered now (and cached when that pays and the budget allows).
memory prepare_weights(CallState& call, cpu::PackedWeightCache& cache, const Tensor& w, const ConvShape& s,
                       const memory::desc& layout) {
  memory::desc user;
  const bool describable = strided_desc(w, s.weights(), weight_strides(w, s.groups), user);
  if (w.dtype() == DType::F32 && describable && user == layout) return cpu::wrap(user, call.engine, w.raw());
  if (memory cached = cache.find(w, layout)) return cached;
  Tensor wf = w;
  if (w.dtype() != DType::F32 || !describable) {
    wf = cpu::to_contiguous_f32(call.ctx, w);
    call.keep.push_back(wf);
    strided_desc(wf, s.weights(), weight_strides(wf, s.groups), user);
  }
  const memory plain = cpu::wrap(user, call.engine, wf.raw());
  const bool cacheable = w.read_only() && s.pixels() <= kCacheMaxPixels && cache.has_room(layout.get_size());
  if (user == layout && !cacheable) return plain;
  const memory packed =
      cacheable ? memory(layout, call.engine) : cpu::scratch_memory(call.ctx, layout, call.engine, call.keep);
  call.reorder(plain, packed);
  if (cacheable) {
    call.stream.wait();
    cache.insert(w, layout, packed);
  }
  return packed;
}

// The primitive for this geometry, created on first use.
std::shared_ptr<const cpu::ConvPlan> conv_plan(CpuBackend::Impl& impl, const ConvShape& s, int threads) {
  const cpu::ConvKey key = s.key(threads);
  {
    std::lock_guard lock(impl.conv_plans_mutex);
    auto it = impl.conv_plans.find(key);
    if (it != impl.conv_plans.end()) return it->second;
  }
  auto plan = make_plan(s, impl.engine);
  std::lock_guard lock(impl.conv_plans_mutex);
  // A model has a few dozen distinct convolutions; the bound only stops a stream of odd sizes.
  if (impl.conv_plans.size() >= 512) impl.conv_plans.clear();
  impl.conv_plans.emplace(key, plan);
  return plan;
}

// The rows of the output each band makes: all of them, or bands whose blocked input and output
// stay near band_bytes.
int64_t band_rows(const ConvShape& s, int64_t band_bytes) {
  if (!s.blocked()) return s.Ho;
  const int64_t row_bytes = s.N * std::max(s.C * s.W * s.p.stride_h, s.O * s.Wo) * int64_t(sizeof(float));
  if (row_bytes * s.Ho <= band_bytes * 4) return s.Ho;
  return std::clamp<int64_t>(band_bytes / row_bytes, 1, s.Ho);
}

}  // namespace

void CpuBackend::conv2d(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                        Tensor& out) {
  const ConvShape whole = conv_shape(x, w, bias, p, out);
  cpu::DnnlThreads threads(ctx);
  CallState call{ctx, impl_->engine, dnnl::stream(impl_->engine), {}};

  // A view oneDNN can read the input through (any strides), else a contiguous copy.
  Tensor xs = x;
  Dims x_strides{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  memory::desc probe;
  if (!strided_desc(x, whole.src(), x_strides, probe)) {
    xs = cpu::to_contiguous_f32(ctx, x);
    x_strides = {xs.stride(0), xs.stride(1), xs.stride(2), xs.stride(3)};
  }
  Tensor bias_f32;
  const float* b = cpu::f32_vector(ctx, bias, bias_f32);
  const Dims out_strides{whole.O * whole.Ho * whole.Wo, whole.Ho * whole.Wo, whole.Wo, 1};

  const int64_t rows = band_rows(whole, impl_->conv_band_bytes);
  const int64_t extent = (whole.kh - 1) * p.dilation_h + 1;  // input rows one output row reads
  memory weights;
  memory::desc weights_layout;
  for (int64_t oh0 = 0; oh0 < whole.Ho; oh0 += rows) {
    // This band's output rows [oh0, oh1) read input rows [ih0, ih1), clipped to the image; what
    // the clipping removes is the band's share of the padding.
    ConvShape s = whole;
    const int64_t oh1 = std::min(oh0 + rows, whole.Ho);
    const int64_t ih0 = oh0 * p.stride_h - p.pad_h, ih1 = (oh1 - 1) * p.stride_h - p.pad_h + extent;
    s.pad_top = std::max<int64_t>(0, -ih0);
    s.pad_bottom = std::max<int64_t>(0, ih1 - whole.H);
    s.H = std::min(ih1, whole.H) - std::max<int64_t>(ih0, 0);
    s.Ho = oh1 - oh0;
    const std::shared_ptr<const cpu::ConvPlan> plan = conv_plan(*impl_, s, ctx.threads());
    const auto& pd = plan->pd;

    std::vector<Tensor> band;  // this band's scratch, back to the allocator before the next band
    memory::desc x_desc, out_desc;
    strided_desc(xs, s.src(), x_strides, x_desc);
    memory src = cpu::wrap(x_desc, call.engine, static_cast<float*>(xs.raw()) + std::max<int64_t>(ih0, 0) * x_strides[2]);
    if (pd.src_desc() != x_desc) {
      const memory blocked = cpu::scratch_memory(ctx, pd.src_desc(), call.engine, band);
      call.reorder(src, blocked);
      src = blocked;
    }
    if (!weights || pd.weights_desc() != weights_layout) {
      weights_layout = pd.weights_desc();
      weights = prepare_weights(call, impl_->conv_weights, w, s, weights_layout);
    }
    strided_desc(out, s.dst(), out_strides, out_desc);
    const memory user_dst = cpu::wrap(out_desc, call.engine, static_cast<float*>(out.raw()) + oh0 * whole.Wo);
    const bool direct_out = pd.dst_desc() == out_desc;
    const memory dst = direct_out ? user_dst : cpu::scratch_memory(ctx, pd.dst_desc(), call.engine, band);

    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src},
        {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_DST, dst},
        {DNNL_ARG_SCRATCHPAD, cpu::scratch_memory(ctx, pd.scratchpad_desc(), call.engine, band)}};
    if (b) args.emplace(DNNL_ARG_BIAS, cpu::wrap(pd.bias_desc(), call.engine, const_cast<float*>(b)));
    plan->primitive.execute(call.stream, args);
    if (!direct_out) call.reorder(dst, user_dst);
    call.stream.wait();
  }
}

}  // namespace easel
