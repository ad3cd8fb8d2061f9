#include "server/a1111_request.h"

#include <cmath>
#include <limits>

namespace easel::server {

namespace {

constexpr size_t kMaxPromptBytes = 64 * 1024;  // far beyond CLIP's useful length, far below harm
constexpr size_t kMaxNameBytes = 1024;          // sampler, scheduler, checkpoint names

}  // namespace

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

std::optional<std::string> client_string_problem(const std::string& value, size_t max_bytes) {
  if (value.find('\0') != std::string::npos) return "the text contains a NUL character (\\u0000)";
  if (value.size() > max_bytes) return cat("ensure this value has at most ", max_bytes, " bytes");
  return std::nullopt;
}

namespace {

// pydantic 1 coercions: ints from integral numbers or numeric strings, floats from numbers or
// numeric strings, bools from true/false/0/1 and their strings, strings from strings. Each value
// read is also written, coerced, to `kept`.
struct Reader {
  const nlohmann::json& body;
  ValidationErrors& errors;
  nlohmann::json& kept;
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

  // Integers are range-checked for the field's type: 4294967344 must not become -2147483648.
  template <class Int>
  void integer(const std::string& name, Int& out, const std::string& stored_as = "") {
    const nlohmann::json* v = field(name);
    if (!v) return;
    using Limits = std::numeric_limits<Int>;
    bool in_range = false, integral = true;
    int64_t value = 0;
    if (v->is_number_unsigned()) {
      in_range = v->get<uint64_t>() <= uint64_t(Limits::max());
      value = in_range ? int64_t(v->get<uint64_t>()) : 0;
    } else if (v->is_number_integer()) {
      value = v->get<int64_t>();
      in_range = value >= int64_t(Limits::min()) && value <= int64_t(Limits::max());
    } else {
      const double d = as_number(*v);
      integral = std::isfinite(d) && d == std::floor(d);
      in_range = integral && d >= double(Limits::min()) && d <= double(Limits::max());
      value = in_range ? int64_t(d) : 0;
    }
    if (!integral) return errors.add(prefix + name, "value is not a valid integer", "type_error.integer");
    if (!in_range)
      return errors.add(prefix + name, cat("ensure this value is from ", int64_t(Limits::min()), " to ", int64_t(Limits::max())),
                        "value_error.number.out_of_range");
    out = static_cast<Int>(value);
    kept[stored_as.empty() ? name : stored_as] = out;
  }

  void number(const std::string& name, double& out) {
    const nlohmann::json* v = field(name);
    if (!v) return;
    const double d = as_number(*v);
    if (!std::isfinite(d)) return errors.add(prefix + name, "value is not a valid float", "type_error.float");
    out = d;
    kept[name] = d;
  }

  void boolean(const std::string& name, bool& out) {
    const nlohmann::json* v = field(name);
    if (!v) return;
    if (v->is_boolean()) out = v->get<bool>();
    else if (v->is_number_integer() && (v->get<int64_t>() == 0 || v->get<int64_t>() == 1)) out = v->get<int64_t>() == 1;
    else if (v->is_string() && (*v == "true" || *v == "false" || *v == "1" || *v == "0")) out = (*v == "true" || *v == "1");
    else return errors.add(prefix + name, "value could not be parsed to a boolean", "type_error.bool");
    kept[name] = out;
  }

  void string(const std::string& name, std::string& out, size_t max_bytes, const std::string& stored_as = "") {
    const nlohmann::json* v = field(name);
    if (!v) return;
    std::string s;
    if (v->is_string()) s = v->get<std::string>();
    else if (v->is_number()) s = v->dump();
    else return errors.add(prefix + name, "str type expected", "type_error.str");
    if (auto problem = client_string_problem(s, max_bytes)) return errors.add(prefix + name, *problem, "value_error.str");
    out = std::move(s);
    kept[stored_as.empty() ? name : stored_as] = out;
  }
};

}  // namespace

A1111Request parse_a1111_request(const nlohmann::json& body, bool img2img, ValidationErrors& errors) {
  A1111Request request;
  GenerationParams& p = request.params;
  if (!body.is_object()) {
    errors.add("", "value is not a valid dict", "type_error.dict");
    return request;
  }
  // A1111's API model defaults (StableDiffusionProcessing: steps 50, cfg 7, 512x512, Euler).
  p.steps = 50;
  p.sampler_name = "Euler";
  Reader r{body, errors, request.fields, ""};
  r.string("prompt", p.prompt, kMaxPromptBytes);
  r.string("negative_prompt", p.negative_prompt, kMaxPromptBytes);
  r.integer("steps", p.steps);
  r.string("sampler_name", p.sampler_name, kMaxNameBytes);
  if (!r.field("sampler_name")) r.string("sampler_index", p.sampler_name, kMaxNameBytes, "sampler_name");
  r.string("scheduler", p.scheduler, kMaxNameBytes);
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
      nlohmann::json settings = nlohmann::json::object();
      Reader o{*it, errors, settings, "override_settings."};
      std::string checkpoint;
      o.string("sd_model_checkpoint", checkpoint, kMaxNameBytes);
      o.integer("CLIP_stop_at_last_layers", p.clip_skip);
      o.integer("eta_noise_seed_delta", p.eta_noise_seed_delta);
      if (!settings.empty()) request.fields["override_settings"] = std::move(settings);
    }
  }
  if (errors.empty()) {
    if (Status s = validate(p); !s.ok()) errors.add("", s.error().message(), "value_error");
  }
  return request;
}

std::string requested_checkpoint(const nlohmann::json& body) {
  if (!body.is_object()) return "";
  auto it = body.find("override_settings");
  if (it == body.end() || !it->is_object()) return "";
  auto ck = it->find("sd_model_checkpoint");
  return ck != it->end() && ck->is_string() ? ck->get<std::string>() : "";
}

}  // namespace easel::server
