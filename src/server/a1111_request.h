// A1111 / SD.Next `/sdapi/v1/txt2img` and `/img2img` request bodies -> GenerationParams.
//
// Field names, defaults and coercions follow A1111's pydantic models (StableDiffusionProcessing*
// API models): numbers may come as numeric strings, and every problem is collected as FastAPI
// reports it, so a client gets all of them at once in a 422:
//   {"detail": [{"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "type_error.integer"}]}
//
// This is the one place a generation request is validated, for every API family, before anything
// is queued or stored: integers must fit their field, strings carry no NUL and have a length
// limit, the sampler and schedule must exist. What comes out is the request reduced to the fields
// easel reads (`fields`), coerced to their types: unknown fields are dropped, never stored.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "pipelines/generation_params.h"

namespace easel::server {

struct ValidationErrors {
  nlohmann::json detail = nlohmann::json::array();
  void add(const std::string& field, const std::string& msg, const std::string& type);
  bool empty() const { return detail.empty(); }
};

struct A1111Request {
  GenerationParams params;
  // The fields the client sent that easel reads, with their coerced values (steps "20" -> 20,
  // sampler_index -> sampler_name; override_settings only with the settings easel applies):
  // what a job queues, stores, and shows back. Fields the client left out stay out, so A1111's
  // defaults that depend on them (eta per sampler) apply the same way when the job runs.
  nlohmann::json fields = nlohmann::json::object();
};

// init_images / mask are not read here (the server stores uploads as files first); everything
// else is. The A1111 API defaults apply to missing fields (steps 50, sampler "Euler", 512x512, ...).
A1111Request parse_a1111_request(const nlohmann::json& body, bool img2img, ValidationErrors& errors);

// The checkpoint a request asks for through override_settings.sd_model_checkpoint ("" = current).
std::string requested_checkpoint(const nlohmann::json& body);

// A string from a client: no NUL (it ends C strings: PNG text chunks and file APIs cut there) and
// at most `max_bytes`. The error is FastAPI's message for the field.
std::optional<std::string> client_string_problem(const std::string& value, size_t max_bytes);

}  // namespace easel::server
