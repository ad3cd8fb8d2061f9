// AUTOMATIC1111 / SD.Next API, `/sdapi/v1/*` (A1111 modules/api/api.py and models.py): the same
// paths, fields, defaults and response shapes, so existing clients (webuiapi, scripts, UIs) work.
#include "io/base64.h"
#include "pipelines/infotext.h"
#include "sampling/samplers.h"
#include "server/a1111_request.h"
#include "server/generation_request.h"
#include "server/header_text.h"
#include "server/job_files.h"
#include "server/sdapi_options.h"
#include "server/server_state.h"

namespace easel::server {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void generate(ServerState& s, HttpRequest& req, const Responder& respond, bool img2img) {
  auto body = parse_json_body(req, respond);
  if (!body) return;
  PreparedGeneration prepared = prepare_generation(s, *body, img2img);
  if (!prepared.request) return respond(std::move(prepared.rejection));
  json job_request = std::move(*prepared.request);

  // The answer comes when the job ends; no HTTP thread waits for it.
  const fs::path outputs = s.images.outputs_dir();
  json parameters = without_uploads(job_request);
  const auto queued = submit_job(s, img2img ? "img2img" : "txt2img", std::move(job_request), 0,
                 [respond, outputs, parameters = std::move(parameters)](const Job& job) {
                   if (job.state == JobState::Cancelled) return respond(HttpResponse::error(409, "the job was cancelled"));
                   if (job.state != JobState::Done) return respond(HttpResponse::error(500, job.error));
                   json images = json::array();
                   for (const auto& rel : job.result["images"]) {
                     const std::string png = read_whole_file(outputs / rel.get<std::string>());
                     images.push_back(base64_encode({reinterpret_cast<const uint8_t*>(png.data()), png.size()}));
                   }
                   respond(HttpResponse::json({{"images", images},
                                               {"parameters", parameters},
                                               {"info", job.result["info"].dump()}}));
                 });
  if (!queued.ok()) respond(HttpResponse::error(503, queued.error().message()));
}

// FastAPI's bool query parameters.
bool query_flag(const HttpRequest& req, const std::string& name) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return false;
  const std::string v = ascii_lower(it->second);
  return v == "true" || v == "1" || v == "yes" || v == "on";
}

// A1111 progress: 0.01 + job_no / job_count + (sampling_step / sampling_steps) / job_count.
// current_image: the running job's latest live preview, base64 (null before the first one, or
// with skip_current_image).
json progress_json(ServerState& s, bool skip_current_image) {
  const auto job = s.queue.running();
  const int queued = s.queue.queued_count();
  json state = {{"skipped", false}, {"interrupted", false}, {"job", ""}, {"job_count", queued},
                {"job_timestamp", "0"}, {"job_no", 0}, {"sampling_step", 0}, {"sampling_steps", 0}};
  if (!job) return {{"progress", 0.0}, {"eta_relative", 0.0}, {"state", state}, {"current_image", nullptr}, {"textinfo", nullptr}};
  const JobProgress& pr = job->progress;
  const int images = std::max(1, pr.images);
  double progress = 0.01 + double(pr.image) / images + (pr.steps ? double(pr.step) / pr.steps : 0.0) / images;
  progress = std::min(progress, 1.0);
  const double elapsed = double(unix_ms() - job->started_ms) / 1000.0;
  state["job"] = job->id;
  state["job_count"] = images;
  state["job_no"] = pr.image;
  state["job_timestamp"] = std::to_string(job->started_ms);
  state["sampling_step"] = pr.step;
  state["sampling_steps"] = pr.steps;
  state["interrupted"] = job->interrupted;
  state["skipped"] = job->skipped;
  json current_image = nullptr;
  if (!skip_current_image && s.previews)
    if (const auto preview = s.previews->latest(job->id))
      current_image = base64_encode({reinterpret_cast<const uint8_t*>(preview->bytes.data()), preview->bytes.size()});
  return {{"progress", progress},
          {"eta_relative", elapsed / progress - elapsed},
          {"state", state},
          {"current_image", current_image},
          {"textinfo", pr.stage}};
}

json options_json(ServerState& s) {
  json o = {{"sd_model_checkpoint", s.images.current_checkpoint()},
            {"sd_vae", "Automatic"},
            {"CLIP_stop_at_last_layers", 1},
            {"eta_noise_seed_delta", 0},
            {"samples_format", "png"},
            {"outdir_samples", s.images.outputs_dir().string()},
            {"show_progress_every_n_steps", s.images.preview_every()}};
  if (auto e = s.catalog.find_checkpoint(s.images.current_checkpoint())) o["sd_model_checkpoint"] = e->title;
  std::lock_guard lock(s.options_mutex);
  for (const auto& [k, v] : s.options.items())
    if (k != "sd_model_checkpoint" && k != "show_progress_every_n_steps") o[k] = v;
  return o;
}

}  // namespace

void add_sdapi_routes(Router& r, ServerState& s) {
  r.add("POST", "/sdapi/v1/txt2img", [&s](HttpRequest& req, Responder respond) { generate(s, req, respond, false); });
  r.add("POST", "/sdapi/v1/img2img", [&s](HttpRequest& req, Responder respond) { generate(s, req, respond, true); });
  r.add("GET", "/sdapi/v1/progress", [&s](HttpRequest& req, Responder respond) {
    respond(HttpResponse::json(progress_json(s, query_flag(req, "skip_current_image"))));
  });
  r.add("POST", "/sdapi/v1/interrupt", [&s](HttpRequest&, Responder respond) {
    s.queue.interrupt();
    respond(HttpResponse::json(json::object()));
  });
  r.add("POST", "/sdapi/v1/skip", [&s](HttpRequest&, Responder respond) {
    s.queue.skip();
    respond(HttpResponse::json(json::object()));
  });
  r.add("GET", "/sdapi/v1/options", [&s](HttpRequest&, Responder respond) { respond(HttpResponse::json(options_json(s))); });
  r.add("POST", "/sdapi/v1/options", [&s](HttpRequest& req, Responder respond) {
    auto body = parse_json_body(req, respond);
    if (!body) return;
    ValidationErrors errors;
    json accepted;
    {
      std::lock_guard lock(s.options_mutex);
      accepted = check_options(*body, s.options, errors);
    }
    if (!errors.empty()) return respond(HttpResponse::json({{"detail", errors.detail}}, 422));
    if (auto ck = accepted.find("sd_model_checkpoint"); ck != accepted.end()) {
      if (Status st = s.images.select_checkpoint(ck->get<std::string>()); !st.ok())
        return respond(validation_error("sd_model_checkpoint", st.error().message()));
    }
    // Live preview period; A1111's -1 (only after each batch) means none here.
    if (auto n = accepted.find("show_progress_every_n_steps"); n != accepted.end()) s.images.set_preview_every(n->get<int>());
    std::lock_guard lock(s.options_mutex);
    for (const auto& [k, v] : accepted.items()) s.options[k] = v;
    respond(HttpResponse::json(nullptr));
  });
  r.add("GET", "/sdapi/v1/cmd-flags", [&s](HttpRequest&, Responder respond) {
    respond(HttpResponse::json({{"api", true}, {"ckpt_dir", (s.catalog.dir() / "Stable-diffusion").string()},
                                {"vae_dir", (s.catalog.dir() / "VAE").string()}, {"nowebui", false}}));
  });
  r.add("GET", "/sdapi/v1/samplers", [](HttpRequest&, Responder respond) {
    json out = json::array();
    for (const auto& info : sampling::all_samplers()) {
      json aliases = json::array();
      for (auto a : info.aliases) aliases.push_back(std::string(a));
      json options = json::object();
      if (info.automatic != sampling::ScheduleType::Uniform)
        options["scheduler"] = std::string(sampling::schedule_label(info.automatic));
      if (info.discard_penultimate) options["discard_next_to_last_sigma"] = "True";
      out.push_back({{"name", std::string(info.name)}, {"aliases", aliases}, {"options", options}});
    }
    respond(HttpResponse::json(out));
  });
  r.add("GET", "/sdapi/v1/schedulers", [](HttpRequest&, Responder respond) {
    json out = json::array();
    for (auto type : sampling::all_schedules()) {
      std::string label(sampling::schedule_label(type)), name = label;
      for (char& c : name) c = c == ' ' ? '_' : char(std::tolower(static_cast<unsigned char>(c)));
      out.push_back({{"name", name}, {"label", label}, {"aliases", nullptr}, {"default_rho", -1}, {"need_inner_model", false}});
    }
    respond(HttpResponse::json(out));
  });
  r.add("GET", "/sdapi/v1/sd-models", [&s](HttpRequest&, Responder respond) {
    json out = json::array();
    for (const auto& e : s.catalog.checkpoints())
      out.push_back({{"title", e.title}, {"model_name", e.model_name}, {"hash", e.hash.empty() ? json(nullptr) : json(e.hash)},
                     {"sha256", nullptr}, {"filename", e.path.string()}, {"config", nullptr}});
    respond(HttpResponse::json(out));
  });
  r.add("GET", "/sdapi/v1/sd-vae", [&s](HttpRequest&, Responder respond) {
    json out = json::array();
    for (const auto& e : s.catalog.vaes()) out.push_back({{"model_name", e.name}, {"filename", e.path.string()}});
    respond(HttpResponse::json(out));
  });
  const auto refresh = [&s](HttpRequest&, Responder respond) {
    s.catalog.refresh();
    respond(HttpResponse::json(nullptr));
  };
  r.add("POST", "/sdapi/v1/refresh-checkpoints", refresh);
  r.add("POST", "/sdapi/v1/refresh-vae", refresh);
  r.add("POST", "/sdapi/v1/unload-checkpoint", [&s](HttpRequest&, Responder respond) {
    s.images.unload();
    respond(HttpResponse::json(nullptr));
  });
  r.add("POST", "/sdapi/v1/reload-checkpoint", [](HttpRequest&, Responder respond) {
    respond(HttpResponse::json(nullptr));  // the model loads on the next job
  });
  r.add("POST", "/sdapi/v1/png-info", [&s](HttpRequest& req, Responder respond) {
    auto body = parse_json_body(req, respond);
    if (!body) return;
    const json image = body->is_object() ? body->value("image", json()) : json();
    if (!image.is_string()) return respond(validation_error("image", "field required"));
    auto bytes = base64_decode(image.get<std::string>());
    if (!bytes) return respond(validation_error("image", "not valid base64"));
    auto decoded = decode_image(*bytes, "image", s.image_limits);
    if (!decoded.ok()) return respond(validation_error("image", decoded.error().message()));
    std::string text;
    json items = json::object();
    for (const auto& [key, value] : decoded->text) {
      items[key] = value;
      if (key == "parameters") text = value;
    }
    json parameters = json::object();
    if (!text.empty()) {
      const Infotext info = parse_infotext(text);
      parameters["Prompt"] = info.prompt;
      parameters["Negative prompt"] = info.negative_prompt;
      for (const auto& [k, v] : info.params) parameters[k] = v;
    }
    items.erase("parameters");
    respond(HttpResponse::json({{"info", text}, {"items", items}, {"parameters", parameters}}));
  });
  r.add("GET", "/sdapi/v1/memory", [](HttpRequest&, Responder respond) {
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const double total = double(pages) * page, free = double(avail) * page;
    respond(HttpResponse::json({{"ram", {{"free", free}, {"used", total - free}, {"total", total}}},
                                {"cuda", {{"error", "no CUDA device"}}}}));
  });
  const auto empty_list = [](HttpRequest&, Responder respond) { respond(HttpResponse::json(json::array())); };
  r.add("GET", "/sdapi/v1/upscalers", empty_list);
  r.add("GET", "/sdapi/v1/loras", empty_list);
  r.add("POST", "/sdapi/v1/refresh-loras", [](HttpRequest&, Responder respond) { respond(HttpResponse::json(nullptr)); });
  r.add("GET", "/sdapi/v1/prompt-styles", empty_list);
  r.add("GET", "/sdapi/v1/embeddings", [](HttpRequest&, Responder respond) {
    respond(HttpResponse::json({{"loaded", json::object()}, {"skipped", json::object()}}));
  });
  r.add("GET", "/sdapi/v1/scripts", [](HttpRequest&, Responder respond) {
    respond(HttpResponse::json({{"txt2img", json::array()}, {"img2img", json::array()}}));
  });
}

}  // namespace easel::server
