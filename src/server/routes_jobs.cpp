// easel's own job API, `/easel/v1/*`: queue a job of any kind a runner runs (a generation, ...)
// and get its id at once, list and look
// up jobs (the persisted history included), cancel them, and follow every job live over
// Server-Sent Events or a WebSocket (event_hub.h).
#include <algorithm>
#include <cctype>

#include "server/event_hub.h"
#include "server/media_types.h"
#include "server/generation_request.h"
#include "server/header_text.h"
#include "server/job_files.h"
#include "server/server_state.h"

namespace easel::server {

using nlohmann::json;

namespace {

constexpr int64_t kMaxPriority = 1000;

// Jobs ahead of this queued one: higher priority first, then first come first served (the
// executor's order).
int queue_position(const std::vector<Job>& jobs, const Job& job) {
  int ahead = 0;
  for (const Job& other : jobs)
    if (other.state == JobState::Queued && other.id != job.id &&
        (other.priority > job.priority || (other.priority == job.priority && other.seq < job.seq)))
      ++ahead;
  return ahead;
}

json job_json(const Job& job, const std::vector<Job>& all, const PreviewStore* previews) {
  const JobProgress& p = job.progress;
  json j = {{"id", job.id},
            {"kind", job.kind},
            {"state", job_state_name(job.state)},
            {"priority", job.priority},
            {"created_ms", job.created_ms},
            {"started_ms", job.started_ms ? json(job.started_ms) : json(nullptr)},
            {"finished_ms", job.finished_ms ? json(job.finished_ms) : json(nullptr)},
            {"progress", {{"image", p.image}, {"images", p.images}, {"step", p.step}, {"steps", p.steps}, {"stage", p.stage}}},
            {"error", job.error.empty() ? json(nullptr) : json(job.error)},
            {"interrupted", job.interrupted},
            {"skipped", job.skipped},
            {"request", without_uploads(job.request)},
            {"result", nullptr}};
  if (job.state == JobState::Queued) j["queue_position"] = queue_position(all, job);
  // The latest live preview, while the server remembers it (recent jobs only).
  if (const auto preview = previews ? previews->latest(job.id) : nullptr) {
    j["preview_seq"] = preview->seq;
    j["preview_url"] = "/easel/v1/jobs/" + job.id + "/preview";
  }
  if (job.result.is_object()) {
    // What the runner returned; an image job's files become their /outputs URLs.
    j["result"] = job.result;
    if (job.result.contains("images")) {
      json images = json::array();
      for (const auto& rel : job.result["images"])
        if (rel.is_string()) images.push_back("/outputs/" + rel.get<std::string>());
      j["result"]["images"] = images;
    }
  }
  return j;
}

// What POST /easel/v1/jobs answers: the id, the state, and while queued the position.
json accepted(ServerState& s, const std::string& id) {
  json answer = {{"id", id}, {"state", "queued"}};
  const auto job = s.queue.get(id);
  if (!job.ok() || !job->has_value()) return answer;
  answer["state"] = job_state_name((*job)->state);
  if ((*job)->state == JobState::Queued) answer["queue_position"] = queue_position(s.queue.active(), **job);
  return answer;
}

HttpResponse history_unreadable(const Error& error) {
  return HttpResponse::error(503, "the job history cannot be read: " + error.message());
}

// A job of any kind a runner runs. txt2img and img2img bodies are A1111 requests, validated and
// their uploads stored here; the request of any other kind goes to its runner as it came (the
// runner checks it when the job runs).
void submit(ServerState& s, HttpRequest& req, const Responder& respond) {
  auto body = parse_json_body(req, respond);
  if (!body) return;
  if (!body->is_object()) return respond(validation_error("", "value is not a valid dict"));
  const json kind = body->value("kind", json("txt2img"));
  if (!kind.is_string() || !s.queue.runs(kind.get<std::string>()))
    return respond(validation_error("kind", cat("expected one of the job kinds this server runs: ", s.queue.kinds())));
  const json request = body->value("request", json::object());
  if (!request.is_object()) return respond(validation_error("request", "expected an object of the kind's fields"));
  const json priority = body->value("priority", json(0));
  if (!priority.is_number_integer() || priority.get<int64_t>() < -kMaxPriority || priority.get<int64_t>() > kMaxPriority)
    return respond(validation_error("priority", cat("an integer from ", -kMaxPriority, " to ", kMaxPriority, " expected")));
  json job_request = request;
  if (kind == "txt2img" || kind == "img2img") {
    PreparedGeneration prepared = prepare_generation(s, request, kind == "img2img");
    if (!prepared.request) return respond(std::move(prepared.rejection));
    job_request = std::move(*prepared.request);
  } else if (auto full = queue_full(s)) {
    return respond(overloaded(HttpResponse::error(503, *full)));
  }
  const auto id = submit_job(s, kind.get<std::string>(), std::move(job_request), priority.get<int>());
  if (!id.ok()) return respond(HttpResponse::error(503, id.error().message()));
  respond(HttpResponse::json(accepted(s, *id), 202));
}

void list(ServerState& s, HttpRequest& req, const Responder& respond) {
  std::optional<JobState> state;
  if (auto it = req.query.find("state"); it != req.query.end() && !it->second.empty()) {
    state = parse_job_state(it->second);
    if (!state) return respond(HttpResponse::error(400, "state: expected queued, running, done, failed or cancelled"));
  }
  // The whole value must be the number: "5abc" is refused, not read as 5.
  const auto number = [&](const char* name, int64_t fallback, int64_t lo, int64_t hi) -> std::optional<int64_t> {
    const auto it = req.query.find(name);
    if (it == req.query.end()) return fallback;
    const auto v = whole_integer(it->second);
    if (!v || *v < lo || *v > hi) return std::nullopt;
    return v;
  };
  const auto limit = number("limit", 100, 1, 10000);
  if (!limit) return respond(HttpResponse::error(400, "limit: expected a number from 1 to 10000"));
  const auto offset = number("offset", 0, 0, INT64_MAX);
  if (!offset) return respond(HttpResponse::error(400, "offset: expected a whole number from 0"));
  const std::string q = req.query.count("q") ? req.query.at("q") : "";
  const auto page = s.queue.query(JobQuery{state, q, size_t(*limit), size_t(*offset)});  // newest first
  if (!page.ok()) return respond(history_unreadable(page.error()));
  const std::vector<Job> active = s.queue.active();
  json jobs = json::array();
  for (const Job& job : page->jobs) jobs.push_back(job_json(job, active, s.previews));
  // total: all that match, for a client that pages or shows a count
  respond(HttpResponse::json({{"jobs", jobs}, {"total", page->total}}));
}

}  // namespace

void add_job_routes(Router& r, ServerState& s) {
  r.add("POST", "/easel/v1/jobs", [&s](HttpRequest& req, Responder respond) { submit(s, req, respond); });
  r.add("GET", "/easel/v1/jobs", [&s](HttpRequest& req, Responder respond) { list(s, req, respond); });
  r.add("GET", "/easel/v1/jobs/{id}", [&s](HttpRequest& req, Responder respond) {
    const auto job = s.queue.get(req.params["id"]);
    if (!job.ok()) return respond(history_unreadable(job.error()));
    if (!job->has_value()) return respond(HttpResponse::error(404, "no job with id " + req.params["id"]));
    // The queue position needs the other unfinished jobs; a finished job does not pay for copying them.
    const Job& j = **job;
    respond(HttpResponse::json(job_json(j, j.state == JobState::Queued ? s.queue.active() : std::vector<Job>{}, s.previews)));
  });
  r.add("GET", "/easel/v1/jobs/{id}/preview", [&s](HttpRequest& req, Responder respond) {
    const std::string& id = req.params["id"];
    const auto preview = s.previews ? s.previews->latest(id) : nullptr;
    if (!preview) return respond(HttpResponse::error(404, "no preview of job " + id));
    HttpResponse r = HttpResponse::bytes(preview->bytes, std::string(media_type_of(preview->format)));
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("X-Preview-Seq", std::to_string(preview->seq));
    r.headers.emplace_back("X-Preview-Step", std::to_string(preview->step));
    respond(std::move(r));
  });
  r.add("DELETE", "/easel/v1/jobs/{id}", [&s](HttpRequest& req, Responder respond) {
    const std::string& id = req.params["id"];
    // The answer says what this request did: a running job may stop (and read as cancelled)
    // before the answer is written, and it is still a request, not a cancellation done.
    switch (s.queue.cancel(id)) {
      case CancelOutcome::Unknown: return respond(HttpResponse::error(404, "no job with id " + id));
      case CancelOutcome::AlreadyFinished: {
        const auto job = s.queue.get(id);
        const std::string state = job.ok() && job->has_value() ? std::string(job_state_name((*job)->state)) : "finished";
        return respond(HttpResponse::error(409, "job " + id + " has already finished (" + state + ")"));
      }
      case CancelOutcome::CancelledNow:
        return respond(HttpResponse::json({{"id", id}, {"state", "cancelled"}, {"cancel_requested", true}}, 200));
      case CancelOutcome::CancelRequested:
        return respond(HttpResponse::json({{"id", id}, {"state", "running"}, {"cancel_requested", true}}, 202));
    }
  });

  if (!s.events) return;
  EventHub& hub = *s.events;
  r.add("GET", "/easel/v1/events", [&hub](HttpRequest&, Responder respond) {
    respond(HttpResponse::streaming(hub.subscribe()));
  });
  r.add("GET", "/easel/v1/ws", [&hub](HttpRequest& req, Responder respond) {
    if (ascii_lower(req.header("upgrade")) != "websocket") {
      HttpResponse r = HttpResponse::error(426, "this is a WebSocket endpoint: connect with a WebSocket client "
                                                "(or read /easel/v1/events as Server-Sent Events)");
      r.headers.emplace_back("Upgrade", "websocket");
      return respond(std::move(r));
    }
    respond(HttpResponse::streaming(hub.subscribe(/*binary_previews=*/true)));
  });
}

}  // namespace easel::server
