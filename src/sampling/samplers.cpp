// Sampler names and tables (A1111 sd_samplers_kdiffusion.py, sd_samplers_timesteps.py,
// sd_samplers_lcm.py, sd_samplers.py), the plan (get_sigmas / get_timesteps / sample_img2img),
// A1111's ImageRNG, and the k-diffusion samplers (k_diffusion/sampling.py 0.1.1) step by step.
#include "sampling/samplers.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>
#include <string>

#include "ops/ops.h"
#include "sampling/sampler_impl.h"

namespace easel::sampling {

// --- names -----------------------------------------------------------------------------------

const std::vector<SamplerInfo>& all_samplers() {
  using S = SamplerKind;
  using T = ScheduleType;
  // A1111 1.10's order and options; eta 1 where the k-diffusion function takes eta; the last
  // column is A1111's option brownian_noise.
  static const std::vector<SamplerInfo> table = {
      {S::Dpmpp2M, "DPM++ 2M", {"k_dpmpp_2m"}, T::Karras},
      {S::DpmppSde, "DPM++ SDE", {"k_dpmpp_sde"}, T::Karras, false, false, 1.0f, true},
      {S::Dpmpp2MSde, "DPM++ 2M SDE", {"k_dpmpp_2m_sde"}, T::Exponential, false, false, 1.0f, true},
      {S::Dpmpp2MSdeHeun, "DPM++ 2M SDE Heun", {"k_dpmpp_2m_sde_heun"}, T::Exponential, false, false, 1.0f, true},
      {S::Dpmpp2SA, "DPM++ 2S a", {"k_dpmpp_2s_a"}, T::Karras, false, false, 1.0f},
      {S::Dpmpp3MSde, "DPM++ 3M SDE", {"k_dpmpp_3m_sde"}, T::Exponential, true, false, 1.0f, true},
      {S::EulerA, "Euler a", {"k_euler_a", "k_euler_ancestral"}, T::Uniform, false, false, 1.0f},
      {S::Euler, "Euler", {"k_euler"}, T::Uniform},
      {S::Lms, "LMS", {"k_lms"}, T::Uniform},
      {S::Heun, "Heun", {"k_heun"}, T::Uniform},
      {S::Dpm2, "DPM2", {"k_dpm_2"}, T::Karras, true},
      {S::Dpm2A, "DPM2 a", {"k_dpm_2_a"}, T::Karras, true, false, 1.0f},
      {S::Lcm, "LCM", {"k_lcm"}, T::Uniform},
      {S::Ddim, "DDIM", {"ddim"}, T::Uniform, false, true, 0.0f},
      {S::Plms, "PLMS", {"plms"}, T::Uniform, false, true},
      {S::UniPC, "UniPC", {"unipc"}, T::Uniform, false, true},
  };
  return table;
}

const SamplerInfo& sampler_info(SamplerKind kind) {
  for (const auto& s : all_samplers())
    if (s.kind == kind) return s;
  throw Exception("unknown sampler kind");
}

std::string_view sampler_name(SamplerKind kind) { return sampler_info(kind).name; }

namespace {
bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<SamplerKind> find_sampler(std::string_view name) {
  for (const auto& s : all_samplers()) {
    if (iequal(name, s.name)) return s.kind;
    for (auto a : s.aliases)
      if (iequal(name, a)) return s.kind;
  }
  return std::nullopt;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

Error unknown_sampler(std::string_view name) {
  std::string valid;
  for (const auto& s : all_samplers()) valid += std::string(valid.empty() ? "" : ", ") + "'" + std::string(s.name) + "'";
  return Error(cat("unknown sampler '", name, "'; valid: ", valid,
                   " (a schedule may follow the name, e.g. 'DPM++ 2M Karras')"));
}
}  // namespace

Result<SamplerKind> parse_sampler(std::string_view name) {
  const std::string n = trim(name);
  if (auto k = find_sampler(n)) return *k;
  return unknown_sampler(name);
}

Result<SamplerChoice> parse_sampler_and_schedule(std::string_view sampler, std::string_view schedule) {
  EASEL_TRY(ScheduleType sched, parse_schedule(trim(schedule)));
  std::string name = trim(sampler);
  std::optional<SamplerKind> kind = find_sampler(name);
  if (!kind) {
    // legacy combined names: "<sampler> <schedule label or alias>"
    static const std::pair<std::string_view, ScheduleType> suffixes[] = {
        {"Uniform", ScheduleType::Uniform},       {"Karras", ScheduleType::Karras},
        {"Exponential", ScheduleType::Exponential}, {"SGM Uniform", ScheduleType::SgmUniform},
        {"SGMUniform", ScheduleType::SgmUniform}};
    for (const auto& [label, type] : suffixes) {
      if (name.size() > label.size() + 1 && name[name.size() - label.size() - 1] == ' ' &&
          iequal(std::string_view(name).substr(name.size() - label.size()), label)) {
        if (auto k = find_sampler(trim(std::string_view(name).substr(0, name.size() - label.size() - 1)))) {
          kind = k;
          sched = type;
          break;
        }
      }
    }
  }
  if (!kind) return unknown_sampler(sampler);
  if (sched == sampler_info(*kind).automatic) sched = ScheduleType::Automatic;
  return SamplerChoice{*kind, sched};
}

// --- plan ------------------------------------------------------------------------------------

namespace {
std::vector<float> plan_sigmas(SamplerChoice choice, const Denoiser& model, int steps) {
  const SamplerInfo& info = sampler_info(choice.sampler);
  const ScheduleType type = choice.schedule == ScheduleType::Automatic ? info.automatic : choice.schedule;
  std::vector<float> sigmas = sigmas_for(type, model.noise_schedule(), steps + (info.discard_penultimate ? 1 : 0));
  if (info.discard_penultimate) sigmas.erase(sigmas.end() - 2);
  return sigmas;
}

// The model's view for the timestep samplers; a model without one (flow matching) is refused.
const TimestepModel& timestep_model(SamplerChoice choice, const Denoiser& model) {
  const TimestepModel* t = model.timesteps();
  EASEL_CHECK(t, sampler_name(choice.sampler), " walks the timesteps of a DDPM-trained model, and this model has none; "
              "use a k-diffusion sampler such as Euler");
  return *t;
}

std::vector<int> a1111_timesteps(const TimestepModel& model, int steps) {
  EASEL_CHECK(steps >= 1 && steps <= 1000, "timestep samplers take 1 to 1000 steps, got ", steps);
  const int last = model.training_schedule().size() - 1;
  std::vector<int> ts;
  for (int t = 0; t < 1000; t += 1000 / steps) ts.push_back(std::clamp(t + 1, 0, last));
  return ts;
}

// sigmas[sigmas > 0].min() and sigmas.max() of the planned table (create_noise_sampler).
void set_table_range(Plan& p, const std::vector<float>& table) {
  p.table_sigma_max = *std::max_element(table.begin(), table.end());
  p.table_sigma_min = p.table_sigma_max;
  for (float s : table)
    if (s > 0) p.table_sigma_min = std::min(p.table_sigma_min, s);
}

int t_enc_of(int steps, float strength) {
  return static_cast<int>(std::min(static_cast<double>(strength), 0.999) * steps);
}
}  // namespace

int Plan::steps() const {
  if (!sampler_info(sampler).timesteps) return std::max<int>(0, static_cast<int>(sigmas.size()) - 1);
  if (sampler == SamplerKind::UniPC) return static_cast<int>(timesteps.size());
  return std::max<int>(0, static_cast<int>(timesteps.size()) - 1);
}

Plan plan_txt2img(SamplerChoice choice, const Denoiser& model, int steps) {
  Plan p;
  p.sampler = choice.sampler;
  p.model_sampling = model.model_sampling();
  if (sampler_info(choice.sampler).timesteps) {
    const TimestepModel& tm = timestep_model(choice, model);
    p.training = &tm.training_schedule();
    p.timesteps = a1111_timesteps(tm, steps);
  } else {
    p.sigmas = plan_sigmas(choice, model, steps);
    if (!p.sigmas.empty()) set_table_range(p, p.sigmas);
  }
  return p;
}

Plan plan_img2img(SamplerChoice choice, const Denoiser& model, int steps, float strength) {
  EASEL_CHECK(strength > 0.0f && strength <= 1.0f, "img2img strength must be in (0, 1], got ", strength);
  Plan p;
  p.sampler = choice.sampler;
  p.model_sampling = model.model_sampling();
  const int t_enc = t_enc_of(steps, strength);
  if (sampler_info(choice.sampler).timesteps) {
    const TimestepModel& tm = timestep_model(choice, model);
    p.training = &tm.training_schedule();
    const std::vector<int> all = a1111_timesteps(tm, steps);
    EASEL_CHECK(t_enc >= 1 && t_enc < static_cast<int>(all.size()), "img2img: strength ", strength, " with ", steps,
                " steps leaves no step to run");
    p.timesteps.assign(all.begin(), all.begin() + t_enc);
    p.img2img_timestep = all[t_enc];
    p.unipc_t_start = static_cast<float>(p.timesteps.back()) / 1000.0f + 0.001f;
  } else {
    const std::vector<float> all = plan_sigmas(choice, model, steps);
    p.sigmas.assign(all.begin() + (steps - t_enc - 1), all.end());
    p.img2img_sigma = p.sigmas.front();
    set_table_range(p, all);
  }
  return p;
}

Tensor Plan::start(Context& ctx, const Tensor& noise, const Tensor& init) const {
  const bool ts = sampler_info(sampler).timesteps;
  if (!init.defined()) return ts ? noise : model_sampling.noise_scaling(ctx, sigmas.at(0), noise);
  if (!ts) {
    EASEL_CHECK(img2img_sigma >= 0, "Plan::start: an init latent needs a plan from plan_img2img");
    return model_sampling.noise_scaling(ctx, img2img_sigma, noise, init);
  }
  EASEL_CHECK(init.shape() == noise.shape(), "img2img: init latent ", init.describe(), " and noise ",
              noise.describe(), " differ in shape");
  EASEL_CHECK(img2img_timestep >= 0 && training, "Plan::start: an init latent needs a plan from plan_img2img");
  const float a = training->alphas_cumprod().at(img2img_timestep);
  return axpby(ctx, std::sqrt(a), init, std::sqrt(1.0f - a), noise);
}

// --- noise -----------------------------------------------------------------------------------

// --- k-diffusion samplers ----------------------------------------------------------------------

namespace {

struct Ancestral {
  double down, up;
};
// get_ancestral_step: the sigma to step down to and the noise to add back.
Ancestral ancestral_step(double from, double to, double eta) {
  if (eta == 0) return {to, 0.0};
  const double up = std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
  return {std::sqrt(to * to - up * up), up};
}

// to_d: (x - denoised) / sigma
Tensor to_d(Context& ctx, const Tensor& x, double sigma, const Tensor& denoised) {
  return ops::affine(ctx, ops::sub(ctx, x, denoised), static_cast<float>(1.0 / sigma), 0.0f);
}

struct KArgs {
  Context& ctx;
  const Denoiser& model;
  const std::vector<float>& s;  // sigmas
  NoiseSource& noise;
  double eta, s_noise;
  const SamplerOptions& o;
  const detail::Steps& steps;
  Tensor denoise(const Tensor& x, double sigma) const { return model.denoise(ctx, x, static_cast<float>(sigma)); }
  Tensor randn(const Tensor& like) const { return noise.next(ctx, like.shape()); }
  // The SDE samplers' noise_sampler(sigma, sigma_next).
  Tensor sde_noise(const Tensor& like, float sigma, float sigma_next) const {
    if (!o.interval_noise) return randn(like);
    Tensor n = o.interval_noise->between(ctx, sigma, sigma_next);
    EASEL_CHECK(n.shape() == like.shape(), "SDE noise of shape ", n.shape().str(), " for x of shape ",
                like.shape().str());
    return n;
  }
  int n() const { return static_cast<int>(s.size()) - 1; }
};

// Euler / Heun / DPM2 "churn" (Karras et al. algorithm 2); A1111 draws the noise every step.
double churn(const KArgs& a, Tensor& x, int i) {
  if (a.o.s_churn <= 0) return a.s[i];
  const double si = a.s[i];
  const double gamma = (a.o.s_tmin <= si && si <= a.o.s_tmax) ? std::min<double>(a.o.s_churn / a.n(), std::sqrt(2.0) - 1)
                                                              : 0.0;
  Tensor eps = ops::affine(a.ctx, a.randn(x), static_cast<float>(a.o.s_noise), 0.0f);
  const double sigma_hat = static_cast<float>(si * (gamma + 1));
  if (gamma > 0) x = xpay(a.ctx, x, std::sqrt(sigma_hat * sigma_hat - si * si), eps);
  return sigma_hat;
}

Tensor euler(const KArgs& a, Tensor x) {
  for (int i = 0; i < a.n(); ++i) {
    const double sigma_hat = churn(a, x, i);
    Tensor den = a.denoise(x, sigma_hat);
    x = xpay(a.ctx, x, a.s[i + 1] - sigma_hat, to_d(a.ctx, x, sigma_hat, den));
    a.steps.done(i, x, den);
  }
  return x;
}

Tensor euler_ancestral(const KArgs& a, Tensor x) {
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    const Ancestral st = ancestral_step(a.s[i], a.s[i + 1], a.eta);
    x = xpay(a.ctx, x, st.down - a.s[i], to_d(a.ctx, x, a.s[i], den));
    if (a.s[i + 1] > 0) x = xpay(a.ctx, x, a.s_noise * st.up, a.randn(x));
    a.steps.done(i, x, den);
  }
  return x;
}

Tensor heun(const KArgs& a, Tensor x) {
  for (int i = 0; i < a.n(); ++i) {
    const double sigma_hat = churn(a, x, i);
    Tensor den = a.denoise(x, sigma_hat);
    Tensor d = to_d(a.ctx, x, sigma_hat, den);
    const double dt = a.s[i + 1] - sigma_hat;
    if (a.s[i + 1] == 0) {
      x = xpay(a.ctx, x, dt, d);
    } else {
      Tensor x2 = xpay(a.ctx, x, dt, d);
      Tensor d2 = to_d(a.ctx, x2, a.s[i + 1], a.denoise(x2, a.s[i + 1]));
      x = xpay(a.ctx, x, dt, axpby(a.ctx, 0.5, d, 0.5, d2));
    }
    a.steps.done(i, x, den);
  }
  return x;
}

Tensor dpm2(const KArgs& a, Tensor x) {
  for (int i = 0; i < a.n(); ++i) {
    const double sigma_hat = churn(a, x, i);
    Tensor den = a.denoise(x, sigma_hat);
    Tensor d = to_d(a.ctx, x, sigma_hat, den);
    if (a.s[i + 1] == 0) {
      x = xpay(a.ctx, x, a.s[i + 1] - sigma_hat, d);
    } else {
      const double sigma_mid = std::exp(0.5 * (std::log(sigma_hat) + std::log(static_cast<double>(a.s[i + 1]))));
      Tensor x2 = xpay(a.ctx, x, sigma_mid - sigma_hat, d);
      Tensor d2 = to_d(a.ctx, x2, sigma_mid, a.denoise(x2, sigma_mid));
      x = xpay(a.ctx, x, a.s[i + 1] - sigma_hat, d2);
    }
    a.steps.done(i, x, den);
  }
  return x;
}

Tensor dpm2_ancestral(const KArgs& a, Tensor x) {
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    const Ancestral st = ancestral_step(a.s[i], a.s[i + 1], a.eta);
    Tensor d = to_d(a.ctx, x, a.s[i], den);
    if (st.down == 0) {
      x = xpay(a.ctx, x, st.down - a.s[i], d);
    } else {
      const double sigma_mid = std::exp(0.5 * (std::log(static_cast<double>(a.s[i])) + std::log(st.down)));
      Tensor x2 = xpay(a.ctx, x, sigma_mid - a.s[i], d);
      Tensor d2 = to_d(a.ctx, x2, sigma_mid, a.denoise(x2, sigma_mid));
      x = xpay(a.ctx, x, st.down - a.s[i], d2);
      x = xpay(a.ctx, x, a.s_noise * st.up, a.randn(x));
    }
    a.steps.done(i, x, den);
  }
  return x;
}

// linear_multistep_coeff: the integral over [t_i, t_i+1] of the Lagrange basis polynomial j on
// t_i, t_i-1, ... (a polynomial of degree <= 3: 4-point Gauss-Legendre is exact).
double lms_coeff(int order, const std::vector<float>& t, int i, int j) {
  auto fn = [&](double tau) {
    double prod = 1.0;
    for (int k = 0; k < order; ++k)
      if (k != j) prod *= (tau - t[i - k]) / (static_cast<double>(t[i - j]) - t[i - k]);
    return prod;
  };
  static const double nodes[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
  static const double weights[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
  const double lo = t[i], hi = t[i + 1], half = 0.5 * (hi - lo), mid = 0.5 * (hi + lo);
  double sum = 0;
  for (int q = 0; q < 4; ++q) sum += weights[q] * fn(mid + half * nodes[q]);
  return sum * half;
}

Tensor lms(const KArgs& a, Tensor x, int order = 4) {
  std::vector<Tensor> ds;
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    ds.push_back(to_d(a.ctx, x, a.s[i], den));
    if (static_cast<int>(ds.size()) > order) ds.erase(ds.begin());
    const int cur = std::min(i + 1, order);
    for (int j = 0; j < cur; ++j) x = xpay(a.ctx, x, lms_coeff(cur, a.s, i, j), ds[ds.size() - 1 - j]);
    a.steps.done(i, x, den);
  }
  return x;
}

// DPM-Solver++ in t = -log(sigma)
Tensor dpmpp_2s_ancestral(const KArgs& a, Tensor x) {
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    const Ancestral st = ancestral_step(a.s[i], a.s[i + 1], a.eta);
    if (st.down == 0) {
      x = xpay(a.ctx, x, st.down - a.s[i], to_d(a.ctx, x, a.s[i], den));
    } else {
      const double t = -std::log(static_cast<double>(a.s[i])), t_next = -std::log(st.down);
      const double h = t_next - t, s = t + 0.5 * h;
      Tensor x2 = axpby(a.ctx, std::exp(-s) / std::exp(-t), x, -std::expm1(-h * 0.5), den);
      Tensor den2 = a.denoise(x2, std::exp(-s));
      x = axpby(a.ctx, std::exp(-t_next) / std::exp(-t), x, -std::expm1(-h), den2);
    }
    if (a.s[i + 1] > 0) x = xpay(a.ctx, x, a.s_noise * st.up, a.randn(x));
    a.steps.done(i, x, den);
  }
  return x;
}

// The noise levels sample_dpmpp_sde asks its noise sampler for: sigma_fn(t), sigma_fn(s) and
// sigma_fn(t_next), which torch computes on float32 scalars (t = -log(sigma), s = t + h / 2,
// sigma_fn(t) = exp(-t), not quite sigma). A Brownian tree rounds its query times to 1e-6, so the
// float bits matter; log and exp are taken correctly rounded (torch's CPU log/exp are within an ulp).
struct SdeQueryLevels {
  float sigma, mid, next;
};
SdeQueryLevels dpmpp_sde_query_levels(float sigma, float sigma_next) {
  auto t_fn = [](float s) { return -static_cast<float>(std::log(static_cast<double>(s))); };
  auto sigma_fn = [](float t) { return static_cast<float>(std::exp(-static_cast<double>(t))); };
  const float t = t_fn(sigma), t_next = t_fn(sigma_next);
  const float h = t_next - t;
  const float s = t + h * 0.5f;
  return {sigma_fn(t), sigma_fn(s), sigma_fn(t_next)};
}

Tensor dpmpp_sde(const KArgs& a, Tensor x, double r = 0.5) {
  auto sigma_fn = [](double t) { return std::exp(-t); };
  auto t_fn = [](double sigma) { return -std::log(sigma); };
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    if (a.s[i + 1] == 0) {
      x = xpay(a.ctx, x, a.s[i + 1] - a.s[i], to_d(a.ctx, x, a.s[i], den));
    } else {
      const double t = t_fn(a.s[i]), t_next = t_fn(a.s[i + 1]);
      const double h = t_next - t, s = t + h * r, fac = 1 / (2 * r);
      const SdeQueryLevels q = dpmpp_sde_query_levels(a.s[i], a.s[i + 1]);
      // step 1
      Ancestral st = ancestral_step(sigma_fn(t), sigma_fn(s), a.eta);
      const double s_ = t_fn(st.down);
      Tensor x2 = axpby(a.ctx, sigma_fn(s_) / sigma_fn(t), x, -std::expm1(t - s_), den);
      x2 = xpay(a.ctx, x2, a.s_noise * st.up, a.sde_noise(x, q.sigma, q.mid));
      Tensor den2 = a.denoise(x2, sigma_fn(s));
      // step 2
      st = ancestral_step(sigma_fn(t), sigma_fn(t_next), a.eta);
      const double t_next_ = t_fn(st.down);
      Tensor den_d = axpby(a.ctx, 1 - fac, den, fac, den2);
      x = axpby(a.ctx, sigma_fn(t_next_) / sigma_fn(t), x, -std::expm1(t - t_next_), den_d);
      x = xpay(a.ctx, x, a.s_noise * st.up, a.sde_noise(x, q.sigma, q.next));
    }
    a.steps.done(i, x, den);
  }
  return x;
}

Tensor dpmpp_2m(const KArgs& a, Tensor x) {
  Tensor old;
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    if (a.s[i + 1] == 0) {
      x = den;  // sigma_fn(inf) / sigma * x - expm1(-inf) * denoised
    } else {
      const double t = -std::log(static_cast<double>(a.s[i])), t_next = -std::log(static_cast<double>(a.s[i + 1]));
      const double h = t_next - t;
      Tensor den_d = den;
      if (old.defined()) {
        const double h_last = t + std::log(static_cast<double>(a.s[i - 1]));
        const double r = h_last / h;
        den_d = axpby(a.ctx, 1 + 1 / (2 * r), den, -1 / (2 * r), old);
      }
      x = axpby(a.ctx, std::exp(-t_next) / std::exp(-t), x, -std::expm1(-h), den_d);
    }
    old = den;
    a.steps.done(i, x, den);
  }
  return x;
}

Tensor dpmpp_2m_sde(const KArgs& a, Tensor x, bool heun) {
  Tensor old;
  double h_last = 0, h = 0;
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    if (a.s[i + 1] == 0) {
      x = den;
    } else {
      const double t = -std::log(static_cast<double>(a.s[i])), s = -std::log(static_cast<double>(a.s[i + 1]));
      h = s - t;
      const double eta_h = a.eta * h;
      x = axpby(a.ctx, static_cast<double>(a.s[i + 1]) / a.s[i] * std::exp(-eta_h), x, -std::expm1(-h - eta_h), den);
      if (old.defined()) {
        const double r = h_last / h;
        const double c = heun ? (-std::expm1(-h - eta_h) / (-h - eta_h) + 1) * (1 / r)
                              : 0.5 * -std::expm1(-h - eta_h) * (1 / r);
        x = xpay(a.ctx, x, c, ops::sub(a.ctx, den, old));
      }
      if (a.eta != 0)
        x = xpay(a.ctx, x, a.s[i + 1] * std::sqrt(-std::expm1(-2 * eta_h)) * a.s_noise,
                 a.sde_noise(x, a.s[i], a.s[i + 1]));
    }
    old = den;
    h_last = h;
    a.steps.done(i, x, den);
  }
  return x;
}

Tensor dpmpp_3m_sde(const KArgs& a, Tensor x) {
  Tensor den_1, den_2;
  double h = 0, h_1 = 0, h_2 = 0;
  bool have_1 = false, have_2 = false;
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    if (a.s[i + 1] == 0) {
      x = den;
    } else {
      const double t = -std::log(static_cast<double>(a.s[i])), s = -std::log(static_cast<double>(a.s[i + 1]));
      h = s - t;
      const double h_eta = h * (a.eta + 1);
      x = axpby(a.ctx, std::exp(-h_eta), x, -std::expm1(-h_eta), den);
      const double phi_2 = std::expm1(-h_eta) / h_eta + 1;
      if (have_2) {
        const double r0 = h_1 / h, r1 = h_2 / h;
        Tensor d1_0 = ops::affine(a.ctx, ops::sub(a.ctx, den, den_1), static_cast<float>(1 / r0), 0.0f);
        Tensor d1_1 = ops::affine(a.ctx, ops::sub(a.ctx, den_1, den_2), static_cast<float>(1 / r1), 0.0f);
        Tensor diff = ops::sub(a.ctx, d1_0, d1_1);
        Tensor d1 = xpay(a.ctx, d1_0, r0 / (r0 + r1), diff);
        Tensor d2 = ops::affine(a.ctx, diff, static_cast<float>(1 / (r0 + r1)), 0.0f);
        const double phi_3 = phi_2 / h_eta - 0.5;
        x = ops::add(a.ctx, x, axpby(a.ctx, phi_2, d1, -phi_3, d2));
      } else if (have_1) {
        const double r = h_1 / h;
        x = xpay(a.ctx, x, phi_2 / r, ops::sub(a.ctx, den, den_1));
      }
      if (a.eta != 0)
        x = xpay(a.ctx, x, a.s[i + 1] * std::sqrt(-std::expm1(-2 * h * a.eta)) * a.s_noise,
                 a.sde_noise(x, a.s[i], a.s[i + 1]));
    }
    den_2 = den_1;
    den_1 = den;
    have_2 = have_1;
    have_1 = true;
    h_2 = h_1;
    h_1 = h;
    a.steps.done(i, x, den);
  }
  return x;
}

// A1111 sd_samplers_lcm.sample_lcm
Tensor lcm(const KArgs& a, Tensor x) {
  for (int i = 0; i < a.n(); ++i) {
    Tensor den = a.denoise(x, a.s[i]);
    x = den;
    if (a.s[i + 1] > 0) x = xpay(a.ctx, x, a.s[i + 1], a.randn(x));
    a.steps.done(i, x, den);
  }
  return x;
}

}  // namespace

Result<Tensor> sample(Context& ctx, const Plan& plan, const Denoiser& model, Tensor x, NoiseSource& noise,
                      const SamplerOptions& options, const StepCallback& on_step) {
  const SamplerInfo& info = sampler_info(plan.sampler);
  const double eta = std::isnan(options.eta) ? info.default_eta : options.eta;
  const detail::Steps steps{ctx, plan.steps(), on_step, options.stop_early};
  if (plan.sampler == SamplerKind::UniPC && plan.steps() < 3)
    return Error(cat("UniPC (order 3) needs at least 3 steps, the plan has ", plan.steps()));
  // By its schedule, so that an LcmDenoiser inside an inpainting blend (MaskedDenoiser) is one too.
  if (plan.sampler == SamplerKind::Lcm && !dynamic_cast<const LcmSchedule*>(&model.noise_schedule()))
    return Error("the LCM sampler needs an LcmDenoiser (A1111's LCM model wrapper)");
  try {
    if (info.timesteps) {
      const TimestepModel& tm = timestep_model({plan.sampler}, model);
      switch (plan.sampler) {
        case SamplerKind::Ddim: return detail::sample_ddim(ctx, plan, tm, std::move(x), noise, static_cast<float>(eta), steps);
        case SamplerKind::Plms: return detail::sample_plms(ctx, plan, tm, std::move(x), steps);
        default: return detail::sample_unipc(ctx, plan, tm, std::move(x), steps);
      }
    }
    const KArgs a{ctx, model, plan.sigmas, noise, eta, options.s_noise, options, steps};
    switch (plan.sampler) {
      case SamplerKind::Euler: return euler(a, std::move(x));
      case SamplerKind::EulerA: return euler_ancestral(a, std::move(x));
      case SamplerKind::Heun: return heun(a, std::move(x));
      case SamplerKind::Dpm2: return dpm2(a, std::move(x));
      case SamplerKind::Dpm2A: return dpm2_ancestral(a, std::move(x));
      case SamplerKind::Lms: return lms(a, std::move(x));
      case SamplerKind::Dpmpp2SA: return dpmpp_2s_ancestral(a, std::move(x));
      case SamplerKind::DpmppSde: return dpmpp_sde(a, std::move(x));
      case SamplerKind::Dpmpp2M: return dpmpp_2m(a, std::move(x));
      case SamplerKind::Dpmpp2MSde: return dpmpp_2m_sde(a, std::move(x), false);
      case SamplerKind::Dpmpp2MSdeHeun: return dpmpp_2m_sde(a, std::move(x), true);
      case SamplerKind::Dpmpp3MSde: return dpmpp_3m_sde(a, std::move(x));
      case SamplerKind::Lcm: return lcm(a, std::move(x));
      default: break;
    }
  } catch (const detail::Cancelled&) {
    return Error("sampling cancelled");
  } catch (detail::StoppedEarly& stop) {
    // A1111 returns the sampler's last x0 estimate when interrupted or skipped.
    return std::move(stop.latent);
  } catch (const Exception& e) {  // e.g. a noise sampler that could not answer
    return e.error();
  }
  return Error(cat("sampler '", info.name, "' is not implemented"));
}

}  // namespace easel::sampling
