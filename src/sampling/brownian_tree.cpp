// torchsde 0.2.6 _brownian/brownian_interval.py (BrownianInterval with halfway_tree=True, as
// derived.py's BrownianTree sets it up), k-diffusion 0.1.1 sampling.py (BatchedBrownianTree,
// BrownianTreeNoiseSampler) and A1111 1.10 create_noise_sampler, in our words.
//
// Every float32 operation below is the one torch performs, in the same order, so the results are
// the same bits. The compiler must not fuse a multiply and an add (-march=native enables FMA):
// cmake/source_properties.cmake compiles this file with -ffp-contract=off.

#include "sampling/brownian_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "sampling/seed_sequence.h"
#include "sampling/torch_rng.h"

namespace easel::sampling {
namespace {

// BrownianTree's defaults, which k-diffusion keeps.
constexpr int kPoolSize = 24;
constexpr int kDigits = 6;          // tol = 1e-6: times are rounded to -int(log10(tol)) decimals
constexpr size_t kCacheSize = 45;   // BrownianInterval's cache_size
constexpr int kMaxDepth = 63;       // spawn keys are 2^depth wide; tol keeps real trees near 30

// Python's round(x, 6): the double nearest to x correctly rounded (ties to even) to 6 decimals.
// glibc's printf and strtod are both exact, like CPython's dtoa-based float_round.
double round_to_tol(double x) {
  char buf[400];
  std::snprintf(buf, sizeof buf, "%.*f", kDigits, x);
  return std::strtod(buf, nullptr);
}

}  // namespace

// --- BrownianTree ------------------------------------------------------------------------------

Result<BrownianTree> BrownianTree::create(double t0, double t1, const Shape& shape, uint64_t entropy) {
  if (!std::isfinite(t0) || !std::isfinite(t1) || t0 > t1)
    return Error(cat("Brownian tree: the range [", t0, ", ", t1, "] must be finite with t0 <= t1"));
  if (shape.numel() <= 0) return Error(cat("Brownian tree: empty shape ", shape.str()));
  BrownianTree tree;
  tree.numel_ = shape.numel();
  tree.entropy_ = entropy;
  Node root;
  root.start = round_to_tol(t0);
  root.end = round_to_tol(t1);
  tree.nodes_.push_back(root);
  // BrownianInterval.__init__: W over the whole range from the first of three seeds, scaled with
  // the unrounded range (the H and Levy-area seeds are unused without Levy area).
  const uint32_t w_seed = SeedSequence(entropy, {}, kPoolSize).generate_state(3)[0];
  tree.root_w_ = tree.randn(w_seed);
  const float scale = static_cast<float>(std::sqrt(t1 - t0));
  for (float& v : tree.root_w_) v *= scale;
  return tree;
}

std::vector<float> BrownianTree::randn(uint32_t seed) const {
  // _randn (A1111 installs randn_local, the same on the CPU): torch.randn(size) from a fresh
  // generator seeded with the node's seed.
  TorchGenerator g(seed);
  std::vector<float> out(static_cast<size_t>(numel_));
  g.randn(std::span<float>(out));
  return out;
}

// _Interval._split with halfway_tree: split at the (rounded) middle, then keep splitting the
// child holding `point` until some node's midway is the point itself. _split_exact gives each
// split node its seeds from SeedSequence(entropy, spawn_key=(spawn_key, depth), pool_size=24).
Status BrownianTree::split_towards(int node, double point) {
  while (true) {
    {
      Node& n = nodes_[size_t(node)];
      if (n.depth >= kMaxDepth) return Error("Brownian tree: query times closer than the tree resolves");
      n.midway = round_to_tol(0.5 * (n.end + n.start));
      n.has_children = true;
      n.w_seed = SeedSequence(entropy_, {n.spawn_key, uint64_t(n.depth)}, kPoolSize).generate_state(4)[0];
    }
    for (bool left : {true, false}) {
      const Node& n = nodes_[size_t(node)];
      Node c;
      c.start = left ? n.start : n.midway;
      c.end = left ? n.midway : n.end;
      c.parent = node;
      c.is_left = left;
      c.spawn_key = 2 * n.spawn_key + (left ? 0 : 1);
      c.depth = n.depth + 1;
      nodes_.push_back(c);
      (left ? nodes_[size_t(node)].left : nodes_[size_t(node)].right) = int(nodes_.size()) - 1;
    }
    const Node& n = nodes_[size_t(node)];
    if (point == n.midway) return {};
    const int next = point > n.midway ? n.right : n.left;
    const Node& c = nodes_[size_t(next)];
    // A split that does not shrink the interval would recurse for ever (torchsde: RecursionError).
    if (c.start == n.start && c.end == n.end) return Error("Brownian tree: query time not resolvable at tol 1e-6");
    node = next;
  }
}

// _loc_inner from the smallest node holding [ta, tb]: the answer is the list of maximal tree
// nodes inside [ta, tb], left to right. Which nodes those are depends only on ta and tb (a node's
// parent is split exactly when a query time falls strictly inside it), so torchsde's search from
// its last visited interval finds the same list as this search from the root.
Status BrownianTree::locate(int node, double ta, double tb, std::vector<int>& out) {
  const Node& n = nodes_[size_t(node)];
  if (ta == n.start && tb == n.end) {
    out.push_back(node);
    return {};
  }
  if (!n.has_children) EASEL_TRY_STATUS(split_towards(node, ta == n.start ? tb : ta));
  const Node& s = nodes_[size_t(node)];  // split_towards may have moved the nodes
  if (tb <= s.midway) return locate(s.left, ta, tb, out);
  if (ta >= s.midway) return locate(s.right, ta, tb, out);
  const int right = s.right;
  const double mid = s.midway;
  EASEL_TRY_STATUS(locate(s.left, ta, mid, out));
  return locate(right, mid, tb, out);
}

// _increment_and_space_time_levy_area without H: the Brownian bridge between the parent's ends,
// sampled at the parent's midway with the parent's W seed. The right child is the rest.
std::vector<float> BrownianTree::child_value(const Node& p, bool is_left, const std::vector<float>& w) const {
  const double h_reciprocal = 1 / (p.end - p.start);
  const double left_diff = p.midway - p.start;
  const double right_diff = p.end - p.midway;
  const double var = left_diff * right_diff * h_reciprocal;
  // torch: mean = left_diff * W * h_reciprocal, left_W = mean + sqrt(var) * noise, each scalar
  // cast to float32 before its multiply.
  const float a = static_cast<float>(left_diff), b = static_cast<float>(h_reciprocal);
  const float sd = static_cast<float>(std::sqrt(var));
  std::vector<float> out = randn(p.w_seed);
  for (size_t i = 0; i < out.size(); ++i) {
    const float mean = (w[i] * a) * b;
    const float scaled = out[i] * sd;
    const float left_w = mean + scaled;
    out[i] = is_left ? left_w : w[i] - left_w;
  }
  return out;
}

const std::vector<float>& BrownianTree::value(int node) {
  if (node == 0) return root_w_;
  if (auto it = cache_.find(node); it != cache_.end()) return it->second;
  // Walk up to the root or a cached ancestor, then back down (torchsde recurses the same way).
  std::vector<int> chain;
  int top = node;
  while (top != 0 && !cache_.count(top)) {
    chain.push_back(top);
    top = nodes_[size_t(top)].parent;
  }
  std::vector<float> w = top == 0 ? root_w_ : cache_.at(top);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const Node& c = nodes_[size_t(*it)];
    w = child_value(nodes_[size_t(c.parent)], c.is_left, w);
    if (cache_order_.size() >= kCacheSize) {
      cache_.erase(cache_order_.front());
      cache_order_.pop_front();
    }
    cache_[*it] = w;
    cache_order_.push_back(*it);
  }
  return cache_.at(node);
}

Result<std::vector<float>> BrownianTree::increment(double ta, double tb) {
  // BrownianInterval.__call__: clamp to the (rounded) range, then zero for an empty interval.
  const double lo = nodes_[0].start, hi = nodes_[0].end;
  if (std::isnan(ta) || std::isnan(tb)) return Error("Brownian tree: NaN query time");
  ta = std::clamp(ta, lo, hi);
  tb = std::clamp(tb, lo, hi);
  if (ta > tb) return Error(cat("Brownian tree: query times ta=", ta, " and tb=", tb, " must respect ta <= tb"));
  std::vector<float> w(static_cast<size_t>(numel_), 0.0f);
  ta = round_to_tol(ta);
  tb = round_to_tol(tb);
  // Distinct times that round to the same one: torchsde either returns a zero-width node's
  // increment (zeros) or recurses without end; we answer zeros.
  if (ta == tb) return w;
  std::vector<int> parts;
  EASEL_TRY_STATUS(locate(0, ta, tb, parts));
  w = value(parts[0]);
  for (size_t k = 1; k < parts.size(); ++k) {
    const std::vector<float>& wi = value(parts[k]);
    for (size_t i = 0; i < w.size(); ++i) w[i] += wi[i];
  }
  return w;
}

// --- BrownianTreeNoiseSampler ----------------------------------------------------------------

Result<std::unique_ptr<BrownianTreeNoiseSampler>> BrownianTreeNoiseSampler::create(const Shape& image_shape,
                                                                                   float sigma_min, float sigma_max,
                                                                                   const std::vector<int64_t>& seeds) {
  if (seeds.empty()) return Error("Brownian noise: no seeds");
  std::unique_ptr<BrownianTreeNoiseSampler> s(new BrownianTreeNoiseSampler());
  s->image_shape_ = image_shape;
  // BatchedBrownianTree.sort: the tree runs from the smaller to the larger time.
  const bool ascending = sigma_min < sigma_max;
  const double t0 = ascending ? sigma_min : sigma_max, t1 = ascending ? sigma_max : sigma_min;
  s->sign_ = ascending ? 1 : -1;
  for (int64_t seed : seeds) {
    if (seed < 0) return Error(cat("Brownian noise: seed ", seed, " is negative (numpy's SeedSequence refuses it)"));
    EASEL_TRY(BrownianTree tree, BrownianTree::create(t0, t1, image_shape, static_cast<uint64_t>(seed)));
    s->trees_.push_back(std::move(tree));
  }
  return s;
}

Result<Tensor> BrownianTreeNoiseSampler::sample(Context& ctx, float sigma, float sigma_next) {
  // BatchedBrownianTree.__call__: sort, query every tree, flip the sign if either order was reversed.
  const bool ascending = sigma < sigma_next;
  const float ta = ascending ? sigma : sigma_next, tb = ascending ? sigma_next : sigma;
  const float sign = static_cast<float>(sign_ * (ascending ? 1 : -1));
  // BrownianTreeNoiseSampler.__call__: divided by sqrt(|t1 - t0|), all float32.
  const float denom = std::sqrt(std::fabs(sigma_next - sigma));
  Shape shape = image_shape_;
  shape.insert(0, static_cast<int64_t>(trees_.size()));
  Tensor out = ctx.empty(shape);
  float* dst = out.data<float>();
  for (auto& tree : trees_) {
    EASEL_TRY(std::vector<float> w, tree.increment(ta, tb));
    for (float v : w) *dst++ = (v * sign) / denom;
  }
  return out;
}

Tensor BrownianTreeNoiseSampler::between(Context& ctx, float sigma, float sigma_next) {
  return sample(ctx, sigma, sigma_next).value();
}

Result<std::unique_ptr<BrownianTreeNoiseSampler>> a1111_noise_sampler(const Plan& plan,
                                                                      const std::vector<int64_t>& seeds,
                                                                      const Shape& image_shape) {
  if (!sampler_info(plan.sampler).brownian_noise) return std::unique_ptr<BrownianTreeNoiseSampler>();
  if (!(plan.table_sigma_max > 0))
    return Error("Brownian noise: the plan has no sigma table (make it with plan_txt2img / plan_img2img)");
  return BrownianTreeNoiseSampler::create(image_shape, plan.table_sigma_min, plan.table_sigma_max, seeds);
}

}  // namespace easel::sampling
