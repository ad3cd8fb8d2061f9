// What every API that queues a generation shares (A1111 /sdapi, the native job API): reading the
// JSON body within limits, validating it as A1111 does, and storing its uploaded images as files so
// the job's request holds upload ids, not megabytes of base64 (and survives a restart).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/http_message.h"
#include "server/server_state.h"

namespace easel::server {

// The body as JSON (client_json.h limits), or the 422 FastAPI sends for one that is not JSON.
std::optional<nlohmann::json> parse_json_body(const HttpRequest& request, const Responder& respond);

// Queues a prepared job. When the queue cannot take it (the job history cannot be written) the
// job's stored uploads are deleted and the error returned: answer it with 503.
Result<std::string> submit_job(ServerState& state, std::string kind, nlohmann::json request, int priority = 0,
                               JobQueue::FinishedCallback on_finished = {});

// Why a new job cannot be queued now (as many wait as ServerState::max_queued_jobs), or nothing.
std::optional<std::string> queue_full(const ServerState& state);
// `response` (a 503) with Retry-After, as an overloaded server answers.
HttpResponse overloaded(HttpResponse response);

// A FastAPI-style 422 for one field.
HttpResponse validation_error(const std::string& field, const std::string& message);

// Validates an A1111 txt2img / img2img body and stores its init image and mask. Returns the job's
// request: the body's known fields (a1111_request.h) with the uploads attached by id (job_files.h);
// or the response that rejects it (422 with every problem, 503 without any checkpoint).
struct PreparedGeneration {
  std::optional<nlohmann::json> request;
  HttpResponse rejection;
};
PreparedGeneration prepare_generation(ServerState& state, const nlohmann::json& body, bool img2img);

}  // namespace easel::server
