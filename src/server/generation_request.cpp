#include "server/generation_request.h"

#include "io/base64.h"
#include "server/a1111_request.h"
#include "server/client_json.h"
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
  auto body = parse_client_json(req.body);
  if (!body.ok()) {
    respond(HttpResponse::json(
        {{"detail", json::array({{{"loc", {"body"}}, {"msg", body.error().message()}, {"type", "value_error.jsondecode"}}})}},
        422));
    return std::nullopt;
  }
  return std::move(*body);
}

Result<std::string> submit_job(ServerState& s, std::string kind, json request, int priority, JobQueue::FinishedCallback on_finished) {
  const JobUploads uploads = job_uploads(request);
  auto id = s.queue.submit(std::move(kind), std::move(request), priority, std::move(on_finished));
  if (!id.ok()) remove_uploads(uploads, s.uploads_dir);
  return id;
}

std::optional<std::string> queue_full(const ServerState& s) {
  if (s.queue.queued_count() < s.max_queued_jobs) return std::nullopt;
  return cat("the queue is full (", s.max_queued_jobs, " jobs waiting); retry later");
}

HttpResponse overloaded(HttpResponse response) {
  response.headers.emplace_back("Retry-After", "10");
  return response;
}

HttpResponse validation_error(const std::string& field, const std::string& msg) {
  ValidationErrors e;
  e.add(field, msg, "value_error");
  return HttpResponse::json({{"detail", e.detail}}, 422);
}

PreparedGeneration prepare_generation(ServerState& s, const json& body, bool img2img) {
  ValidationErrors errors;
  A1111Request parsed = parse_a1111_request(body, img2img, errors);
  if (errors.empty())
    if (Status v = validate(parsed.params, s.limits); !v.ok()) errors.add("", v.error().message(), "value_error");
  if (!errors.empty()) return reject(HttpResponse::json({{"detail", errors.detail}}, 422));
  const std::string checkpoint = requested_checkpoint(parsed.fields);
  if (!checkpoint.empty() && !s.catalog.find_checkpoint(checkpoint))
    return reject(validation_error("override_settings.sd_model_checkpoint", "no checkpoint named '" + checkpoint + "'"));
  if (checkpoint.empty() && s.images.current_checkpoint().empty())
    return reject(HttpResponse::error(
        503, "no Stable Diffusion checkpoint: put one in the models folder's Stable-diffusion directory and call "
             "/sdapi/v1/refresh-checkpoints"));

  if (auto full = queue_full(s)) return reject(overloaded(HttpResponse::error(503, *full)));

  json job_request = std::move(parsed.fields);
  if (img2img) {
    const json& inits = body.value("init_images", json::array());
    if (!inits.is_array() || inits.empty()) return reject(validation_error("init_images", "at least one image is required"));
    JobUploads uploads;
    auto file = store_upload(s, inits[0], "init_images.0");
    if (!file.ok()) return reject(validation_error("init_images", file.error().message()));
    uploads.init_images.push_back(*file);
    if (body.contains("mask") && !body["mask"].is_null()) {
      auto mask = store_upload(s, body["mask"], "mask");
      if (!mask.ok()) {
        remove_uploads(uploads, s.uploads_dir);
        return reject(validation_error("mask", mask.error().message()));
      }
      uploads.mask = *mask;
    }
    attach_uploads(job_request, uploads);
  }
  return {std::move(job_request), {}};
}

}  // namespace easel::server
