#include "server/generation_request.h"

#include "io/base64.h"
#include "server/a1111_request.h"
#include "server/job_files.h"

namespace easel::server {

using nlohmann::json;

namespace {

// An uploaded image as base64 or a data URI, stored as PNG for the job; the error names the field.
Result<std::string> store_upload(ServerState& s, const json& value, const std::string& field) {
  if (!value.is_string()) return Error(cat(field, ": expected a base64-encoded image"));
  auto bytes = base64_decode(value.get<std::string>());
  if (!bytes) return Error(cat(field, ": not valid base64"));
  return server::store_upload(s, *bytes, field);
}

PreparedGeneration reject(HttpResponse response) { return {std::nullopt, std::move(response)}; }

}  // namespace

std::optional<json> parse_json_body(const HttpRequest& req, const Responder& respond) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    respond(HttpResponse::json({{"detail", json::array({{{"loc", {"body"}}, {"msg", "the request body is not valid JSON"},
                                                         {"type", "value_error.jsondecode"}}})}},
                               422));
    return std::nullopt;
  }
  return body;
}

HttpResponse validation_error(const std::string& field, const std::string& msg) {
  ValidationErrors e;
  e.add(field, msg, "value_error");
  return HttpResponse::json({{"detail", e.detail}}, 422);
}

PreparedGeneration prepare_generation(ServerState& s, const json& body, bool img2img) {
  ValidationErrors errors;
  GenerationParams p = parse_a1111_request(body, img2img, errors);
  if (errors.empty())
    if (Status v = validate(p, s.limits); !v.ok()) errors.add("", v.error().message(), "value_error");
  if (!errors.empty()) return reject(HttpResponse::json({{"detail", errors.detail}}, 422));
  const std::string checkpoint = requested_checkpoint(body);
  if (!checkpoint.empty() && !s.catalog.find_checkpoint(checkpoint))
    return reject(validation_error("override_settings.sd_model_checkpoint", "no checkpoint named '" + checkpoint + "'"));
  if (checkpoint.empty() && s.runner.current_checkpoint().empty())
    return reject(HttpResponse::error(
        503, "no Stable Diffusion checkpoint: put one in " + (s.catalog.dir() / "Stable-diffusion").string() +
                 " and call /sdapi/v1/refresh-checkpoints"));

  json job_request = body;
  if (img2img) {
    const json& inits = body.value("init_images", json::array());
    if (!inits.is_array() || inits.empty()) return reject(validation_error("init_images", "at least one image is required"));
    auto file = store_upload(s, inits[0], "init_images.0");
    if (!file.ok()) return reject(validation_error("init_images", file.error().message()));
    job_request["init_image_files"] = json::array({*file});
    if (body.contains("mask") && !body["mask"].is_null()) {
      auto mask = store_upload(s, body["mask"], "mask");
      if (!mask.ok()) return reject(validation_error("mask", mask.error().message()));
      job_request["mask_file"] = *mask;
    }
    job_request.erase("init_images");
    job_request.erase("mask");
  }
  return {std::move(job_request), {}};
}

}  // namespace easel::server
