// The Brownian-tree noise A1111 gives its SDE samplers (DPM++ SDE, DPM++ 2M SDE (Heun),
// DPM++ 3M SDE), bit for bit:
//
//  * BrownianTree: torchsde 0.2.6's BrownianTree, i.e. a BrownianInterval with a halfway (dyadic)
//    tree, tol 1e-6, pool_size 24, float32 on the CPU, no Levy area. Every node of the tree gets
//    its torch seed from numpy's SeedSequence(entropy, spawn_key=(path, depth)); a node's increment
//    is a Brownian bridge sample between its parent's ends (torch.randn from a fresh generator).
//    Values depend only on the entropy, the range and the query: not on the order of queries, and
//    not on torchsde's LRU cache, which only saves recomputation (checked by the generator of
//    tests/data/brownian_tree). The pool size does matter: it is SeedSequence's pool.
//  * BrownianTreeNoiseSampler: k-diffusion 0.1.1's BrownianTreeNoiseSampler over a
//    BatchedBrownianTree: one tree per image seed over one image's shape, answering
//    noise(sigma, sigma_next) = W(sigma, sigma_next) / sqrt(|sigma_next - sigma|).
//  * a1111_noise_sampler: A1111 1.10's KDiffusionSampler.create_noise_sampler.
//
// Use:
//   auto noise = a1111_noise_sampler(plan, seeds, Shape{4, 64, 64}).value();  // null: not an SDE sampler
//   SamplerOptions options;
//   options.interval_noise = noise.get();
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/shape.h"
#include "sampling/samplers.h"

namespace easel::sampling {

class BrownianTree {
 public:
  // torchsde.BrownianTree(t0, w0=zeros(shape), t1, entropy): t0 <= t1, both finite.
  static Result<BrownianTree> create(double t0, double t1, const Shape& shape, uint64_t entropy);

  // tree(ta, tb): the increment W(tb) - W(ta) (float32, C order of the shape). ta <= tb; times
  // outside [t0, t1] are clamped to it (torchsde warns and clamps).
  Result<std::vector<float>> increment(double ta, double tb);

 private:
  struct Node {
    double start, end;           // rounded to tol
    int parent = -1;             // -1: the root
    bool is_left = false;
    bool has_children = false;
    double midway = 0;           // the rounded split point, once split
    int left = -1, right = -1;
    uint64_t spawn_key = 0;      // the path from the root: 2 * parent's + (0 left, 1 right)
    int depth = 0;
    uint32_t w_seed = 0;         // torch seed of the bridge noise between the children, once split
  };

  BrownianTree() = default;
  Status split_towards(int node, double point);
  Status locate(int node, double ta, double tb, std::vector<int>& out);
  const std::vector<float>& value(int node);
  std::vector<float> child_value(const Node& parent, bool is_left, const std::vector<float>& parent_w) const;
  std::vector<float> randn(uint32_t seed) const;

  int64_t numel_ = 0;
  uint64_t entropy_ = 0;
  std::vector<Node> nodes_;     // nodes_[0] is the root [t0, t1]
  std::vector<float> root_w_;   // W(t1) - W(t0), kept for good as torchsde does
  // torchsde's cache of node increments (45 entries); it only avoids recomputation.
  std::unordered_map<int, std::vector<float>> cache_;
  std::deque<int> cache_order_;
};

// k-diffusion's BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seeds), identity transform.
class BrownianTreeNoiseSampler : public IntervalNoise {
 public:
  // One tree per seed over `image_shape` ([C, H, W]); the noise is [seeds, C, H, W]. Seeds must be
  // non-negative (numpy's SeedSequence refuses negative entropy).
  static Result<std::unique_ptr<BrownianTreeNoiseSampler>> create(const Shape& image_shape, float sigma_min,
                                                                  float sigma_max, const std::vector<int64_t>& seeds);

  // noise_sampler(sigma, sigma_next): standard normal noise for the step between the two levels.
  Result<Tensor> sample(Context& ctx, float sigma, float sigma_next);
  // IntervalNoise for the samplers: sample() that throws its error (sample() in samplers.h and the
  // pipeline turn it back into an Error).
  Tensor between(Context& ctx, float sigma, float sigma_next) override;

 private:
  BrownianTreeNoiseSampler() = default;
  Shape image_shape_;
  int sign_ = 1;  // -1 when built with sigma_min > sigma_max
  std::vector<BrownianTree> trees_;
};

// A1111 1.10 KDiffusionSampler.create_noise_sampler for a sampler with option brownian_noise:
// a BrownianTreeNoiseSampler over the positive sigma range of the whole table A1111 planned (for
// img2img the table before the cut: sample_img2img passes `sigmas`, not `sigma_sched`), seeded
// with this iteration's image seeds. Null for the other samplers.
Result<std::unique_ptr<BrownianTreeNoiseSampler>> a1111_noise_sampler(const Plan& plan,
                                                                      const std::vector<int64_t>& seeds,
                                                                      const Shape& image_shape);

}  // namespace easel::sampling
