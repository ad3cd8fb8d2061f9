// Schedules: k-diffusion's DiscreteSchedule (external.py), get_sigmas_* (sampling.py) and A1111's
// sd_schedulers.py / sd_samplers_lcm.py, side by side with those files.
//
// The tables must be torch's float32 bits, not just close: the SDE samplers' Brownian tree rounds
// its query times (the sigmas) to 1e-6. Torch multiplies and adds separately, so the compiler
// must not fuse them (-march=native enables FMA): cmake/source_properties.cmake compiles this
// file with -ffp-contract=off.
#include "sampling/schedules.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <string>

namespace easel::sampling {

std::vector<float> linspace_f32(float start, float end, int n) {
  std::vector<float> out(static_cast<size_t>(std::max(n, 0)));
  if (n == 1) out[0] = start;
  if (n <= 1) return out;
  // ATen's linspace kernel: the first half counts up from start, the second half down from end.
  // Its AVX2 / AVX-512 builds (GCC, -mfma) fuse `start + step * i` into one FMA, scalar and
  // vector paths alike (ATEN_CPU_CAPABILITY=default does not; checked against torch 2.5.1).
  const float step = (end - start) / static_cast<float>(n - 1);
  const int halfway = n / 2;
  for (int i = 0; i < n; ++i)
    out[i] = i < halfway ? std::fma(step, static_cast<float>(i), start)
                         : std::fma(-step, static_cast<float>(n - 1 - i), end);
  return out;
}

// --- DiscreteSchedule -------------------------------------------------------------------------

DiscreteSchedule DiscreteSchedule::scaled_linear(int n, double beta_start, double beta_end) {
  // ldm make_beta_schedule("linear"): torch.linspace(start**0.5, end**0.5, n, float64) ** 2
  const double a = std::sqrt(beta_start), b = std::sqrt(beta_end);
  const double step = (b - a) / (n - 1);
  std::vector<double> ac(static_cast<size_t>(n));
  double prod = 1.0;
  for (int i = 0; i < n; ++i) {
    const double s = i < n / 2 ? a + step * i : b - step * (n - 1 - i);
    prod *= 1.0 - s * s;
    ac[i] = prod;
  }
  return from_alphas_cumprod(std::move(ac));
}

DiscreteSchedule DiscreteSchedule::from_alphas_cumprod(std::vector<double> alphas_cumprod) {
  EASEL_CHECK(alphas_cumprod.size() >= 2, "a discrete schedule needs at least 2 timesteps");
  DiscreteSchedule s;
  s.ac64_ = std::move(alphas_cumprod);
  for (double a : s.ac64_) {
    const float af = static_cast<float>(a);
    const float sigma = std::sqrt((1.0f - af) / af);  // ((1 - ac) / ac) ** 0.5 on the float32 buffer
    s.ac_.push_back(af);
    s.sigmas_.push_back(sigma);
    s.log_sigmas_.push_back(std::log(sigma));
  }
  return s;
}

float DiscreteSchedule::sigma_to_t(float sigma) const {
  const float log_sigma = std::log(sigma);
  const int n = size();
  // low_idx = dists.ge(0).cumsum().argmax(): the last timestep whose log sigma is <= ours
  int low = 0;
  for (int i = 0; i < n; ++i)
    if (log_sigma - log_sigmas_[i] >= 0) low = i;
  low = std::min(low, n - 2);
  const int high = low + 1;
  const float lo = log_sigmas_[low], hi = log_sigmas_[high];
  float w = (lo - log_sigma) / (lo - hi);
  w = std::clamp(w, 0.0f, 1.0f);
  return (1.0f - w) * static_cast<float>(low) + w * static_cast<float>(high);
}

float DiscreteSchedule::t_to_sigma(float t) const {
  const int low = static_cast<int>(std::floor(t)), high = static_cast<int>(std::ceil(t));
  const float w = t - std::trunc(t);
  const float log_sigma = (1.0f - w) * log_sigmas_.at(low) + w * log_sigmas_.at(high);
  return std::exp(log_sigma);
}

std::vector<float> DiscreteSchedule::default_sigmas(int n) const {
  std::vector<float> out;
  for (float t : linspace_f32(static_cast<float>(size() - 1), 0.0f, n)) out.push_back(t_to_sigma(t));
  out.push_back(0.0f);
  return out;
}

// --- LCM ----------------------------------------------------------------------------------------

namespace {
DiscreteSchedule lcm_valid(const DiscreteSchedule& training, int original_steps) {
  const int total = training.size(), skip = total / original_steps;
  std::vector<double> valid(static_cast<size_t>(original_steps));
  // A1111 copies the float32 buffer: valid[49 - x] = alphas_cumprod[999 - x * 20]
  for (int x = 0; x < original_steps; ++x)
    valid[original_steps - 1 - x] = training.alphas_cumprod()[total - 1 - x * skip];
  return DiscreteSchedule::from_alphas_cumprod(std::move(valid));
}
}  // namespace

LcmSchedule::LcmSchedule(const DiscreteSchedule& training, int original_steps)
    : valid_(lcm_valid(training, original_steps)), skip_(training.size() / original_steps) {}

float LcmSchedule::sigma_to_t(float sigma) const {
  // argmin |log sigma - log sigma_i|, the first of equals. A sigma halfway (in log) between two
  // valid timesteps, which A1111's own tables produce (e.g. 3 or 5 steps), is an exact tie that
  // torch resolves by float rounding; distances within float rounding count as equal here, so
  // the tie goes to the lower timestep as exact arithmetic (and torch on the CPU) has it.
  const double log_sigma = std::log(static_cast<double>(sigma));
  std::vector<double> d;
  for (float l : valid_.log_sigmas()) d.push_back(std::fabs(log_sigma - l));
  const double best = *std::min_element(d.begin(), d.end());
  const double tol = 4.0 * std::numeric_limits<float>::epsilon() * (1.0 + std::fabs(log_sigma));
  int i = 0;
  while (d[i] > best + tol) ++i;
  return static_cast<float>(i * skip_ + (skip_ - 1));
}

float LcmSchedule::t_to_sigma(float t) const {
  const float tt = std::clamp((t - static_cast<float>(skip_ - 1)) / static_cast<float>(skip_), 0.0f,
                              static_cast<float>(valid_.size() - 1));
  return valid_.t_to_sigma(tt);
}

std::vector<float> LcmSchedule::default_sigmas(int n) const {
  std::vector<float> out;
  for (float t : linspace_f32(sigma_to_t(sigma_max()), sigma_to_t(sigma_min()), n)) out.push_back(t_to_sigma(t));
  out.push_back(0.0f);
  return out;
}

// --- schedule types ----------------------------------------------------------------------------

std::vector<float> karras_sigmas(int n, double sigma_min, double sigma_max, double rho) {
  const double min_inv_rho = std::pow(sigma_min, 1.0 / rho), max_inv_rho = std::pow(sigma_max, 1.0 / rho);
  const float diff = static_cast<float>(min_inv_rho - max_inv_rho);
  std::vector<float> out;
  for (float r : linspace_f32(0.0f, 1.0f, n))
    out.push_back(std::pow(static_cast<float>(max_inv_rho) + r * diff, static_cast<float>(rho)));
  out.push_back(0.0f);
  return out;
}

std::vector<float> exponential_sigmas(int n, double sigma_min, double sigma_max) {
  std::vector<float> out;
  for (float l : linspace_f32(static_cast<float>(std::log(sigma_max)), static_cast<float>(std::log(sigma_min)), n))
    out.push_back(std::exp(l));
  out.push_back(0.0f);
  return out;
}

std::vector<float> sigmas_for(ScheduleType type, const NoiseSchedule& schedule, int steps) {
  EASEL_CHECK(steps >= 1, "sampling needs at least 1 step, got ", steps);
  // A1111 passes the model's float32 range as Python floats (doubles)
  const double lo = schedule.sigma_min(), hi = schedule.sigma_max();
  switch (type) {
    case ScheduleType::Automatic:
    case ScheduleType::Uniform: return schedule.default_sigmas(steps);
    case ScheduleType::Karras: return karras_sigmas(steps, lo, hi);
    case ScheduleType::Exponential: return exponential_sigmas(steps, lo, hi);
    case ScheduleType::SgmUniform: {
      // sgm_uniform: n + 1 timesteps from t(sigma_max) to t(sigma_min), the last dropped
      std::vector<float> out;
      auto ts = linspace_f32(schedule.sigma_to_t(schedule.sigma_max()), schedule.sigma_to_t(schedule.sigma_min()),
                             steps + 1);
      ts.pop_back();
      for (float t : ts) out.push_back(schedule.t_to_sigma(t));
      out.push_back(0.0f);
      return out;
    }
  }
  return {};
}

// --- names --------------------------------------------------------------------------------------

namespace {
struct ScheduleName {
  ScheduleType type;
  std::string_view label, name, alias;
};
constexpr ScheduleName kScheduleNames[] = {
    {ScheduleType::Automatic, "Automatic", "automatic", ""},
    {ScheduleType::Uniform, "Uniform", "uniform", ""},
    {ScheduleType::Karras, "Karras", "karras", ""},
    {ScheduleType::Exponential, "Exponential", "exponential", ""},
    {ScheduleType::SgmUniform, "SGM Uniform", "sgm_uniform", "SGMUniform"},
};

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}
}  // namespace

std::string_view schedule_label(ScheduleType type) {
  for (const auto& n : kScheduleNames)
    if (n.type == type) return n.label;
  return "?";
}

const std::vector<ScheduleType>& all_schedules() {
  static const std::vector<ScheduleType> all = [] {
    std::vector<ScheduleType> v;
    for (const auto& n : kScheduleNames) v.push_back(n.type);
    return v;
  }();
  return all;
}

Result<ScheduleType> parse_schedule(std::string_view name) {
  if (name.empty()) return ScheduleType::Automatic;
  for (const auto& n : kScheduleNames)
    if (iequal(name, n.label) || iequal(name, n.name) || (!n.alias.empty() && iequal(name, n.alias))) return n.type;
  std::string valid;
  for (const auto& n : kScheduleNames) valid += std::string(valid.empty() ? "" : ", ") + "'" + std::string(n.label) + "'";
  return Error(cat("unknown schedule type '", name, "'; valid: ", valid));
}

}  // namespace easel::sampling
