#include "pipelines/infotext.h"

#include <charconv>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "io/sha256.h"
#include "text/regex.h"

namespace easel {
namespace {

// A1111's re_param: `\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)` (Python 3 `\w` is Unicode).
const text::Regex& param_regex() {
  static const text::Regex re(R"(\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$))", text::Regex::kUtf);
  return re;
}

struct Param {
  std::string key, value;
};

// re.findall over the line: every non-overlapping match, left to right.
std::vector<Param> find_params(std::string_view line) {
  std::vector<Param> out;
  const auto& re = param_regex();
  size_t from = 0;
  text::RegexMatch m;
  while (from <= line.size() && re.search(line, from, &m)) {
    // Re-split the match into key and value (the wrapper reports only whole-match offsets).
    std::string_view whole = line.substr(m.begin, m.end - m.begin);
    size_t k = 0;
    while (k < whole.size() && (whole[k] == ' ' || whole[k] == '\t' || whole[k] == '\r' || whole[k] == '\n' ||
                                whole[k] == '\f' || whole[k] == '\v'))
      ++k;
    const size_t colon = whole.find(':', k);
    std::string key(whole.substr(k, colon - k));
    size_t v = colon + 1;
    while (v < whole.size() && (whole[v] == ' ' || whole[v] == '\t')) ++v;
    std::string_view value = whole.substr(v);
    if (!value.empty() && value.back() == ',') value.remove_suffix(1);
    out.push_back({std::move(key), std::string(value)});
    from = m.end > m.begin ? m.end : m.end + 1;
  }
  return out;
}

std::string_view strip(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

const std::string* Infotext::find(std::string_view key) const {
  for (const auto& [k, v] : params)
    if (k == key) return &v;
  return nullptr;
}

std::string infotext_quote(std::string_view value) {
  if (value.find_first_of(",:\n") == std::string_view::npos) return std::string(value);
  // json.dumps(text, ensure_ascii=False)
  return nlohmann::json(std::string(value)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string python_float(double value) {
  if (value != value) return "nan";
  if (value == INFINITY) return "inf";
  if (value == -INFINITY) return "-inf";
  // Shortest round-trip digits, laid out by repr's rule: positional for 1e-4 <= |x| < 1e16.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string_view sci(buf, size_t(r.ptr - buf));
  const size_t e = sci.find('e');
  const int exponent = std::atoi(std::string(sci.substr(e + 1)).c_str());
  std::string sign, digits;
  for (char c : sci.substr(0, e)) {
    if (c == '-') sign = "-";
    else if (c != '.') digits += c;
  }
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int ae = exponent < 0 ? -exponent : exponent;
    out += exponent < 0 ? "e-" : "e+";
    if (ae < 10) out += "0";
    return out + std::to_string(ae);
  }
  std::string out;
  if (exponent < 0) {
    out = "0." + std::string(size_t(-exponent - 1), '0') + digits;
  } else {
    const size_t int_len = size_t(exponent) + 1;
    if (digits.size() <= int_len) out = digits + std::string(int_len - digits.size(), '0') + ".0";
    else out = digits.substr(0, int_len) + "." + digits.substr(int_len);
  }
  return sign + out;
}

Result<std::string> a1111_model_hash(const std::filesystem::path& file) {
  EASEL_TRY(std::string full, sha256_file_hex(file));
  return full.substr(0, 10);
}

Infotext make_infotext(const GenerationParams& p, const ImageProvenance& im) {
  Infotext info{p.prompt, p.negative_prompt, {}};
  auto add = [&](const char* key, std::string value) { info.params.emplace_back(key, std::move(value)); };
  add("Steps", std::to_string(p.steps));
  add("Sampler", im.sampler);
  add("Schedule type", im.schedule);
  add("CFG scale", python_float(p.cfg_scale));
  add("Seed", std::to_string(im.seed));
  add("Size", cat(p.width, "x", p.height));
  if (!im.model_hash.empty()) add("Model hash", im.model_hash);
  if (!im.model_name.empty()) add("Model", im.model_name);
  if (!im.vae_hash.empty()) add("VAE hash", im.vae_hash);
  if (!im.vae_name.empty()) add("VAE", im.vae_name);
  if (p.subseed_strength != 0) {
    add("Variation seed", std::to_string(im.subseed));
    add("Variation seed strength", python_float(p.subseed_strength));
  }
  if (p.seed_resize_from_w > 0 && p.seed_resize_from_h > 0)
    add("Seed resize from", cat(p.seed_resize_from_w, "x", p.seed_resize_from_h));
  if (im.img2img) add("Denoising strength", python_float(p.denoising_strength));
  if (im.inpainting_model && im.img2img) add("Conditional mask weight", "1.0");
  if (p.clip_skip > 1) add("Clip skip", std::to_string(p.clip_skip));
  if (p.eta_noise_seed_delta != 0) add("ENSD", std::to_string(p.eta_noise_seed_delta));
  for (const auto& [key, value] : im.img2img_params) info.params.emplace_back(key, value);
  if (p.guidance_rescale != 0) add("CFG Rescale phi", python_float(p.guidance_rescale));
  add("Version", im.version);
  return info;
}

std::string format_infotext(const Infotext& info) {
  std::string params;
  for (const auto& [k, v] : info.params) {
    if (!params.empty()) params += ", ";
    params += k == v ? k : k + ": " + infotext_quote(v);
  }
  std::string out = info.prompt;
  if (!info.negative_prompt.empty()) out += "\nNegative prompt: " + info.negative_prompt;
  out += "\n" + params;
  return std::string(strip(out));
}

Infotext parse_infotext(std::string_view text) {
  Infotext info;
  std::vector<std::string_view> lines;
  const std::string_view body = strip(text);
  for (size_t start = 0;;) {
    const size_t nl = body.find('\n', start);
    lines.push_back(body.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  std::string_view last = lines.back();
  lines.pop_back();
  std::vector<Param> params = find_params(last);
  if (params.size() < 3) {
    lines.push_back(last);
    params.clear();
  }
  bool negative = false;
  for (std::string_view line : lines) {
    line = strip(line);
    if (line.substr(0, 16) == "Negative prompt:") {
      negative = true;
      line = strip(line.substr(16));
    }
    std::string& target = negative ? info.negative_prompt : info.prompt;
    if (!target.empty()) target += "\n";
    target += line;
  }
  for (auto& [k, v] : params) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
      auto parsed = nlohmann::json::parse(v, nullptr, false);
      if (parsed.is_string()) v = parsed.get<std::string>();
    }
    info.params.emplace_back(std::move(k), std::move(v));
  }
  return info;
}

}  // namespace easel
