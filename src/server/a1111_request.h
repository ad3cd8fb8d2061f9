// A1111 / SD.Next `/sdapi/v1/txt2img` and `/img2img` request bodies -> GenerationParams.
//
// Field names, defaults and coercions follow A1111's pydantic models (StableDiffusionProcessing*
// API models): numbers may come as numeric strings, unknown fields are ignored, and every problem
// is collected as FastAPI reports it, so a client gets all of them at once in a 422:
//   {"detail": [{"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "type_error.integer"}]}
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "pipelines/generation_params.h"

namespace easel::server {

struct ValidationErrors {
  nlohmann::json detail = nlohmann::json::array();
  void add(const std::string& field, const std::string& msg, const std::string& type);
  bool empty() const { return detail.empty(); }
};

// init_images / mask are not read here (the server stores uploads as files first); everything
// else is. The A1111 API defaults apply to missing fields (steps 50, sampler "Euler", 512x512, ...).
GenerationParams parse_a1111_request(const nlohmann::json& body, bool img2img, ValidationErrors& errors);

// The checkpoint a request asks for through override_settings.sd_model_checkpoint ("" = current).
std::string requested_checkpoint(const nlohmann::json& body);

}  // namespace easel::server
