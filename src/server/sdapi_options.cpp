#include "server/sdapi_options.h"

#include <algorithm>
#include <cctype>

namespace easel::server {

using nlohmann::json;

namespace {

bool valid_name(const std::string& name, size_t max_bytes) {
  return !name.empty() && name.size() <= max_bytes && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}

// Empty when the scalar may be stored, else why not.
std::string scalar_problem(const json& v, const OptionLimits& limits) {
  if (v.is_string()) return client_string_problem(v.get<std::string>(), limits.max_string_bytes).value_or("");
  if (v.is_null() || v.is_boolean() || v.is_number()) return "";
  return "expected a string, number, boolean or null";
}

std::string value_problem(const json& v, const OptionLimits& limits) {
  if (!v.is_array()) return scalar_problem(v, limits);
  if (v.size() > limits.max_list_items) return cat("a list of at most ", limits.max_list_items, " items expected");
  for (const json& item : v)
    if (std::string p = scalar_problem(item, limits); !p.empty()) return "list item: " + p;
  return "";
}

// The settings easel applies: their types and ranges.
void check_known(const std::string& name, const json& v, ValidationErrors& errors) {
  const auto integer_in = [&](int64_t lo, int64_t hi) {
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      errors.add(name, cat("an integer from ", lo, " to ", hi, " expected"), "value_error.number");
  };
  if (name == "sd_model_checkpoint" && !v.is_string()) errors.add(name, "str type expected", "type_error.str");
  else if (name == "show_progress_every_n_steps") integer_in(-1, 1000);
  else if (name == "CLIP_stop_at_last_layers") integer_in(1, 12);
  else if (name == "eta_noise_seed_delta") integer_in(0, 0xFFFFFFFFLL);
}

}  // namespace

json check_options(const json& body, const json& stored, ValidationErrors& errors, const OptionLimits& limits) {
  json accepted = json::object();
  if (!body.is_object()) {
    errors.add("", "value is not a valid dict", "type_error.dict");
    return accepted;
  }
  size_t count = stored.is_object() ? stored.size() : 0;
  for (const auto& [name, value] : body.items()) {
    if (!valid_name(name, limits.max_name_bytes)) {
      errors.add(name.substr(0, limits.max_name_bytes),
                 cat("option names are 1 to ", limits.max_name_bytes, " letters, digits, '_', '-' or '.'"), "value_error.name");
      continue;
    }
    if (std::string p = value_problem(value, limits); !p.empty()) {
      errors.add(name, p, "value_error");
      continue;
    }
    check_known(name, value, errors);
    if (!(stored.is_object() && stored.contains(name)) && ++count > limits.max_options) {
      errors.add(name, cat("the server keeps at most ", limits.max_options, " options"), "value_error.too_many");
      continue;
    }
    accepted[name] = value;
  }
  return accepted;
}

}  // namespace easel::server
