#include "server/a1111_request.h"

#include <cmath>
#include <limits>

namespace easel::server {

void ValidationErrors::add(const std::string& field, const std::string& msg, const std::string& type) {
  nlohmann::json loc = nlohmann::json::array({"body"});
  size_t start = 0;
  while (start <= field.size()) {  // "override_settings.CLIP_stop_at_last_layers" -> two parts
    const size_t dot = field.find('.', start);
    loc.push_back(field.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  detail.push_back({{"loc", loc}, {"msg", msg}, {"type", type}});
}

namespace {

// pydantic 1 coercions: ints from integral numbers or numeric strings, floats from numbers or
// numeric strings, bools from true/false/0/1 and their strings, strings from strings.
struct Reader {
  const nlohmann::json& body;
  ValidationErrors& errors;
  std::string prefix;

  const nlohmann::json* field(const std::string& name) const {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // A number, or a string holding exactly one; NaN otherwise.
  static double as_number(const nlohmann::json& v) {
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) {
      try {
        size_t used = 0;
        const std::string s = v.get<std::string>();
        const double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (...) {
      }
    }
    return std::numeric_limits<double>::quiet_NaN();
  }

  template <class Int>
  void integer(const std::string& name, Int& out) {
    const nlohmann::json* v = field(name);
    if (!v) return;
    const double d = as_number(*v);
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.2e18) {
      errors.add(prefix + name, "value is not a valid integer", "type_error.integer");
      return;
    }
    out = static_cast<Int>(d);
  }

  void number(const std::string& name, double& out) {
    const nlohmann::json* v = field(name);
    if (!v) return;
    const double d = as_number(*v);
    if (!std::isfinite(d)) {
      errors.add(prefix + name, "value is not a valid float", "type_error.float");
      return;
    }
    out = d;
  }

  void boolean(const std::string& name, bool& out) {
    const nlohmann::json* v = field(name);
    if (!v) return;
    if (v->is_boolean()) out = v->get<bool>();
    else if (v->is_number_integer() && (v->get<int64_t>() == 0 || v->get<int64_t>() == 1)) out = v->get<int64_t>() == 1;
    else if (v->is_string() && (*v == "true" || *v == "false" || *v == "1" || *v == "0")) out = (*v == "true" || *v == "1");
    else errors.add(prefix + name, "value could not be parsed to a boolean", "type_error.bool");
  }

  void string(const std::string& name, std::string& out) {
    const nlohmann::json* v = field(name);
    if (!v) return;
    if (v->is_string()) out = v->get<std::string>();
    else if (v->is_number()) out = v->dump();
    else errors.add(prefix + name, "str type expected", "type_error.str");
  }
};

}  // namespace

GenerationParams parse_a1111_request(const nlohmann::json& body, bool img2img, ValidationErrors& errors) {
  GenerationParams p;
  if (!body.is_object()) {
    errors.add("", "value is not a valid dict", "type_error.dict");
    return p;
  }
  // A1111's API model defaults (StableDiffusionProcessing: steps 50, cfg 7, 512x512, Euler).
  p.steps = 50;
  p.sampler_name = "Euler";
  Reader r{body, errors, ""};
  r.string("prompt", p.prompt);
  r.string("negative_prompt", p.negative_prompt);
  r.integer("steps", p.steps);
  r.string("sampler_name", p.sampler_name);
  if (!body.contains("sampler_name") || body["sampler_name"].is_null()) r.string("sampler_index", p.sampler_name);
  r.string("scheduler", p.scheduler);
  if (p.scheduler.empty()) p.scheduler = "Automatic";
  r.number("cfg_scale", p.cfg_scale);
  r.integer("width", p.width);
  r.integer("height", p.height);
  r.integer("batch_size", p.batch_size);
  r.integer("n_iter", p.n_iter);
  r.integer("seed", p.seed);
  r.integer("subseed", p.subseed);
  r.number("subseed_strength", p.subseed_strength);
  r.integer("seed_resize_from_w", p.seed_resize_from_w);
  r.integer("seed_resize_from_h", p.seed_resize_from_h);
  if (p.seed_resize_from_w < 0) p.seed_resize_from_w = 0;  // A1111 sends -1 for "off"
  if (p.seed_resize_from_h < 0) p.seed_resize_from_h = 0;
  r.number("eta", p.eta);
  r.number("s_noise", p.s_noise);
  if (img2img) {
    r.number("denoising_strength", p.denoising_strength);
    r.integer("resize_mode", p.resize_mode);
    r.integer("mask_blur", p.mask_blur);
    r.integer("inpainting_fill", p.inpainting_fill);
    r.boolean("inpaint_full_res", p.inpaint_full_res);
    r.integer("inpaint_full_res_padding", p.inpaint_full_res_padding);
    r.integer("inpainting_mask_invert", p.inpainting_mask_invert);
  }
  if (auto it = body.find("override_settings"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      errors.add("override_settings", "value is not a valid dict", "type_error.dict");
    } else {
      Reader o{*it, errors, "override_settings."};
      o.integer("CLIP_stop_at_last_layers", p.clip_skip);
      o.integer("eta_noise_seed_delta", p.eta_noise_seed_delta);
    }
  }
  if (errors.empty()) {
    if (Status s = validate(p); !s.ok()) errors.add("", s.error().message(), "value_error");
  }
  return p;
}

std::string requested_checkpoint(const nlohmann::json& body) {
  if (!body.is_object()) return "";
  auto it = body.find("override_settings");
  if (it == body.end() || !it->is_object()) return "";
  auto ck = it->find("sd_model_checkpoint");
  return ck != it->end() && ck->is_string() ? ck->get<std::string>() : "";
}

}  // namespace easel::server
