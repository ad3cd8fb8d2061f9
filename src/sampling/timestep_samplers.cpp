// A1111's timestep samplers (modules/sd_samplers_timesteps_impl.py): DDIM, PLMS, and UniPC
// (modules/models/diffusion/uni_pc: multistep, data prediction, variant bh1, order 3, time_uniform,
// lower order at the end: A1111's defaults). They walk the DDPM latent x_t and ask the model for eps.
#include <algorithm>
#include <cmath>
#include <vector>

#include "sampling/sampler_impl.h"

namespace easel::sampling::detail {

namespace {
// x_prev = sqrt(a_prev) * pred_x0 + dir * e_t with pred_x0 = (x - sqrt(1 - a_t) * e_t) / sqrt(a_t)
struct DdimStep {
  Tensor x_prev, pred_x0;
};
DdimStep ddim_step(Context& ctx, const Tensor& x, const Tensor& e_t, float a_t, float a_prev, float dir) {
  const float sqrt_one_minus_at = std::sqrt(1.0f - a_t);
  Tensor pred_x0 = ops::affine(ctx, xpay(ctx, x, -sqrt_one_minus_at, e_t), 1.0f / std::sqrt(a_t), 0.0f);
  return {axpby(ctx, std::sqrt(a_prev), pred_x0, dir, e_t), pred_x0};
}
}  // namespace

Tensor sample_ddim(Context& ctx, const Plan& plan, const TimestepModel& model, Tensor x, NoiseSource& noise, float eta,
                   const Steps& steps) {
  const auto& ac = model.training_schedule().alphas_cumprod();
  const auto& ts = plan.timesteps;
  const int n = static_cast<int>(ts.size());
  for (int i = 0; i < n - 1; ++i) {
    const int index = n - 1 - i;
    const Tensor e_t = model.eps(ctx, x, static_cast<float>(ts[index]));
    const float a_t = ac[ts[index]], a_prev = ac[ts[index - 1]];
    const double sigma_t =
        eta * std::sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - static_cast<double>(a_t) / a_prev));
    const float s = static_cast<float>(sigma_t);
    DdimStep st = ddim_step(ctx, x, e_t, a_t, a_prev, std::sqrt(1.0f - a_prev - s * s));
    x = st.x_prev;
    // A1111 draws noise every step; with eta = 0 it is multiplied by 0 and nothing else draws after.
    if (eta != 0) x = xpay(ctx, x, s, noise.next(ctx, x.shape()));
    steps.done(i, x, st.pred_x0);
  }
  return x;
}

Tensor sample_plms(Context& ctx, const Plan& plan, const TimestepModel& model, Tensor x, const Steps& steps) {
  const auto& ac = model.training_schedule().alphas_cumprod();
  const auto& ts = plan.timesteps;
  const int n = static_cast<int>(ts.size());
  std::vector<Tensor> old_eps;
  auto step = [&](const Tensor& e, int index) {
    const float a_prev = ac[ts[index - 1]];
    return ddim_step(ctx, x, e, ac[ts[index]], a_prev, std::sqrt(1.0f - a_prev));
  };
  for (int i = 0; i < n - 1; ++i) {
    const int index = n - 1 - i;
    const Tensor e_t = model.eps(ctx, x, static_cast<float>(ts[index]));
    Tensor e_prime;
    const size_t k = old_eps.size();
    if (k == 0) {  // pseudo improved Euler
      const DdimStep first = step(e_t, index);
      const Tensor e_next = model.eps(ctx, first.x_prev, static_cast<float>(ts[std::max(index - 1, 0)]));
      e_prime = axpby(ctx, 0.5, e_t, 0.5, e_next);
    } else if (k == 1) {  // Adams-Bashforth 2, 3, 4
      e_prime = axpby(ctx, 1.5, e_t, -0.5, old_eps[k - 1]);
    } else if (k == 2) {
      e_prime = axpby(ctx, 23.0 / 12, e_t, -16.0 / 12, old_eps[k - 1]);
      e_prime = xpay(ctx, e_prime, 5.0 / 12, old_eps[k - 2]);
    } else {
      e_prime = axpby(ctx, 55.0 / 24, e_t, -59.0 / 24, old_eps[k - 1]);
      e_prime = ops::add(ctx, e_prime, axpby(ctx, 37.0 / 24, old_eps[k - 2], -9.0 / 24, old_eps[k - 3]));
    }
    const DdimStep st = step(e_prime, index);
    old_eps.push_back(e_t);
    if (old_eps.size() >= 4) old_eps.erase(old_eps.begin());
    x = st.x_prev;
    steps.done(i, x, st.pred_x0);
  }
  return x;
}

// --- UniPC ------------------------------------------------------------------------------------

namespace {

// NoiseScheduleVP('discrete'): log(alpha_t) (= 0.5 log alphas_cumprod) piecewise linear in
// t on t_n = (n + 1) / N, extended linearly beyond the ends. float32 like the reference.
class VpSchedule {
 public:
  explicit VpSchedule(const DiscreteSchedule& s) {
    for (float a : s.alphas_cumprod()) log_alpha_.push_back(0.5f * std::log(a));
    t_ = linspace_f32(0.0f, 1.0f, s.size() + 1);
    t_.erase(t_.begin());
  }
  int size() const { return static_cast<int>(t_.size()); }
  float log_alpha(float t) const {
    const int n = size();
    const int pos = static_cast<int>(std::lower_bound(t_.begin(), t_.end(), t) - t_.begin());
    const int i = std::clamp(pos, 1, n - 1) - 1;
    return log_alpha_[i] + (t - t_[i]) * (log_alpha_[i + 1] - log_alpha_[i]) / (t_[i + 1] - t_[i]);
  }
  float alpha(float t) const { return std::exp(log_alpha(t)); }
  float std_(float t) const { return std::sqrt(1.0f - std::exp(2.0f * log_alpha(t))); }
  float lambda(float t) const {
    const float la = log_alpha(t);
    return la - 0.5f * std::log(1.0f - std::exp(2.0f * la));
  }

 private:
  std::vector<float> log_alpha_, t_;
};

// Solves A x = b (small, dense) by Gaussian elimination with partial pivoting.
std::vector<double> solve(std::vector<std::vector<double>> A, std::vector<double> b) {
  const int n = static_cast<int>(b.size());
  for (int c = 0; c < n; ++c) {
    int p = c;
    for (int r = c + 1; r < n; ++r)
      if (std::fabs(A[r][c]) > std::fabs(A[p][c])) p = r;
    std::swap(A[c], A[p]);
    std::swap(b[c], b[p]);
    for (int r = c + 1; r < n; ++r) {
      const double f = A[r][c] / A[c][c];
      for (int k = c; k < n; ++k) A[r][k] -= f * A[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (int r = n - 1; r >= 0; --r) {
    double s = b[r];
    for (int k = r + 1; k < n; ++k) s -= A[r][k] * x[k];
    x[r] = s / A[r][r];
  }
  return x;
}

struct UniPC {
  Context& ctx;
  const TimestepModel& model;
  VpSchedule ns;

  // data prediction: x0 = (x - sigma_t * eps) / alpha_t, the model asked at (t - 1/N) * 1000
  Tensor model_x0(const Tensor& x, float t) const {
    const float t_input = (t - 1.0f / static_cast<float>(ns.size())) * 1000.0f;
    const Tensor e = model.eps(ctx, x, t_input);
    return ops::affine(ctx, xpay(ctx, x, -ns.std_(t), e), 1.0f / ns.alpha(t), 0.0f);
  }

  // multistep_uni_pc_bh_update, variant bh1, predict_x0
  std::pair<Tensor, Tensor> update(const Tensor& x, const std::vector<Tensor>& model_prev,
                                   const std::vector<float>& t_prev, float t, int order, bool use_corrector) const {
    const float lambda_p0 = ns.lambda(t_prev.back()), lambda_t = ns.lambda(t);
    const Tensor& m0 = model_prev.back();
    const float sigma_p0 = ns.std_(t_prev.back()), sigma_t = ns.std_(t);
    const float alpha_t = std::exp(ns.log_alpha(t));
    const float h = lambda_t - lambda_p0;

    std::vector<double> rks;
    std::vector<Tensor> D1s;
    for (int i = 1; i < order; ++i) {
      const size_t k = model_prev.size() - 1 - i;
      const float rk = (ns.lambda(t_prev[k]) - lambda_p0) / h;
      rks.push_back(rk);
      D1s.push_back(ops::affine(ctx, ops::sub(ctx, model_prev[k], m0), 1.0f / rk, 0.0f));
    }
    rks.push_back(1.0);

    const float hh = -h;
    const float h_phi_1 = std::expm1(hh);
    float h_phi_k = h_phi_1 / hh - 1.0f;
    const float B_h = hh;  // bh1
    std::vector<std::vector<double>> R(order, std::vector<double>(order));
    std::vector<double> b(order);
    float factorial = 1.0f;
    for (int i = 1; i <= order; ++i) {
      for (int k = 0; k < order; ++k) R[i - 1][k] = static_cast<float>(std::pow(rks[k], i - 1));
      b[i - 1] = h_phi_k * factorial / B_h;
      factorial *= static_cast<float>(i + 1);
      h_phi_k = h_phi_k / hh - 1.0f / factorial;
    }
    auto sub_system = [&](int m) {
      std::vector<std::vector<double>> A(m, std::vector<double>(m));
      for (int r = 0; r < m; ++r)
        for (int c = 0; c < m; ++c) A[r][c] = R[r][c];
      return solve(A, std::vector<double>(b.begin(), b.begin() + m));
    };
    auto weighted = [&](const std::vector<double>& rhos) {  // sum_k rhos[k] * D1s[k]
      Tensor acc = ops::affine(ctx, D1s[0], static_cast<float>(rhos[0]), 0.0f);
      for (size_t k = 1; k < D1s.size(); ++k) acc = xpay(ctx, acc, rhos[k], D1s[k]);
      return acc;
    };

    const Tensor x_t_ = axpby(ctx, sigma_t / sigma_p0, x, -(alpha_t * h_phi_1), m0);
    Tensor x_t = x_t_;
    if (!D1s.empty()) {
      const std::vector<double> rhos_p = order == 2 ? std::vector<double>{0.5} : sub_system(order - 1);
      x_t = xpay(ctx, x_t_, -(alpha_t * B_h), weighted(rhos_p));
    }
    Tensor model_t;
    if (use_corrector) {
      const std::vector<double> rhos_c = order == 1 ? std::vector<double>{0.5} : sub_system(order);
      model_t = model_x0(x_t, t);
      Tensor res = ops::affine(ctx, ops::sub(ctx, model_t, m0), static_cast<float>(rhos_c.back()), 0.0f);
      if (!D1s.empty()) res = ops::add(ctx, weighted(rhos_c), res);
      x_t = xpay(ctx, x_t_, -(alpha_t * B_h), res);
    }
    return {x_t, model_t};
  }
};

}  // namespace

Tensor sample_unipc(Context& ctx, const Plan& plan, const TimestepModel& model, Tensor x, const Steps& steps) {
  const int order = 3, n = plan.steps();
  UniPC u{ctx, model, VpSchedule(model.training_schedule())};
  const std::vector<float> ts = linspace_f32(plan.unipc_t_start, 1.0f / static_cast<float>(u.ns.size()), n + 1);
  std::vector<Tensor> model_prev{u.model_x0(x, ts[0])};
  std::vector<float> t_prev{ts[0]};
  int done = 0;
  for (int init_order = 1; init_order < order; ++init_order) {
    auto [x_new, mx] = u.update(x, model_prev, t_prev, ts[init_order], init_order, true);
    x = x_new;
    if (!mx.defined()) mx = u.model_x0(x, ts[init_order]);
    steps.done(done++, x, mx);
    model_prev.push_back(mx);
    t_prev.push_back(ts[init_order]);
  }
  for (int step = order; step <= n; ++step) {
    const int step_order = std::min(order, n + 1 - step);  // lower_order_final
    auto [x_new, mx] = u.update(x, model_prev, t_prev, ts[step], step_order, step != n);
    x = x_new;
    steps.done(done++, x, mx);
    for (int i = 0; i < order - 1; ++i) {
      t_prev[i] = t_prev[i + 1];
      model_prev[i] = model_prev[i + 1];
    }
    t_prev.back() = ts[step];
    if (step < n) model_prev.back() = mx.defined() ? mx : u.model_x0(x, ts[step]);
  }
  return x;
}

}  // namespace easel::sampling::detail
