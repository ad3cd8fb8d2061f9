// OpenAI images API (`/v1/images/generations`, `/v1/images/edits`, `/v1/models`): the request and
// response shapes of OpenAI's API reference, so the openai SDKs work with `base_url` pointed here.
// Each request becomes an A1111 request (20 steps, "Euler a", a random seed) run through the same
// job queue as `/sdapi/v1`; easel extensions (`negative_prompt`, `steps`, `seed`, `cfg_scale`,
// `sampler_name`, `scheduler`, `strength`; the SDKs' `extra_body`) pass through.
#include <climits>
#include <ctime>

#include "io/base64.h"
#include "server/a1111_request.h"
#include "server/client_json.h"
#include "server/generation_request.h"
#include "server/header_text.h"
#include "server/job_files.h"
#include "server/multipart.h"
#include "server/openai_error.h"
#include "server/server_state.h"

namespace easel::server {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kMaxImages = 10;  // OpenAI's limit on n
constexpr int kDefaultSide = 512;
const char* const kPassThrough[] = {"negative_prompt", "steps", "seed", "cfg_scale", "sampler_name", "scheduler"};

HttpResponse bad_request(const std::string& message, const json& param = nullptr) {
  return openai_error(400, message, "invalid_request_error", param);
}

// OpenAI's own model names mean "the server's model", so unmodified clients that send them work.
bool is_openai_model_name(const std::string& name) {
  return name.rfind("dall-e", 0) == 0 || name.rfind("gpt-image", 0) == 0;
}

struct ImageRequest {
  json a1111 = json::object();  // the A1111 body the job runs
  std::string response_format = "b64_json";
};

// The whole text is one int that fits: "5abc", "" and "4294967344" are not.
bool whole_int(std::string_view text, int& out) {
  const auto v = whole_integer(text);
  if (!v || *v < INT_MIN || *v > INT_MAX) return false;
  out = int(*v);
  return true;
}

// The fields both endpoints share, from JSON (generations) or form fields as strings (edits).
// Returns an error response, or nothing when `out` is ready.
std::optional<HttpResponse> read_common(ServerState& s, const json& body, ImageRequest& out, int default_w, int default_h) {
  const json prompt = body.value("prompt", json());
  if (!prompt.is_string() || prompt.get<std::string>().empty()) return bad_request("'prompt' is required", "prompt");
  out.a1111["prompt"] = prompt;

  int n = 1;
  if (const json v = body.value("n", json()); !v.is_null()) {
    bool ok = false;
    if (v.is_number_integer()) {
      ok = v.get<int64_t>() >= 1 && v.get<int64_t>() <= kMaxImages;  // checked before it narrows
      if (ok) n = int(v.get<int64_t>());
    } else if (v.is_string()) {
      ok = whole_int(v.get<std::string>(), n);
    }
    if (!ok || n < 1 || n > kMaxImages) return bad_request("'n' must be an integer from 1 to " + std::to_string(kMaxImages), "n");
  }

  int w = default_w, h = default_h;
  if (const json v = body.value("size", json()); !v.is_null() && v != "auto") {
    const std::string t = v.is_string() ? v.get<std::string>() : "";
    const size_t x = t.find('x');
    const bool ok = x != std::string::npos && whole_int(std::string_view(t).substr(0, x), w) &&
                    whole_int(std::string_view(t).substr(x + 1), h);
    if (!ok) return bad_request("'size' must be 'WIDTHxHEIGHT' (for example '512x512') or 'auto'", "size");
  }

  if (const json v = body.value("response_format", json()); !v.is_null()) {
    if (v != "b64_json" && v != "url") return bad_request("'response_format' must be 'b64_json' or 'url'", "response_format");
    out.response_format = v.get<std::string>();
  }

  if (const json v = body.value("model", json()); !v.is_null()) {
    const std::string model = v.is_string() ? v.get<std::string>() : "";
    if (!is_openai_model_name(model)) {
      if (!s.catalog.find_checkpoint(model))
        return openai_error(404, "The model '" + model + "' does not exist; GET /v1/models lists the models",
                            "invalid_request_error", "model", "model_not_found");
      out.a1111["override_settings"] = {{"sd_model_checkpoint", model}};
    }
  }
  if (!out.a1111.contains("override_settings") && s.images.current_checkpoint().empty())
    return openai_error(503, "no Stable Diffusion checkpoint: put one in " + (s.catalog.dir() / "Stable-diffusion").string() +
                                 " and call /sdapi/v1/refresh-checkpoints", "server_error");

  out.a1111.update({{"batch_size", n}, {"width", w}, {"height", h}, {"steps", 20}, {"sampler_name", "Euler a"}, {"seed", -1}});
  for (const char* key : kPassThrough)
    if (body.contains(key) && !body[key].is_null()) out.a1111[key] = body[key];
  return std::nullopt;
}

// The A1111 checks (ranges, multiples of 8, limits) with the first problem as an OpenAI 400. On
// success the request is reduced to the fields easel reads (a1111_request.h).
std::optional<HttpResponse> check_a1111(ServerState& s, json& a1111, bool img2img) {
  ValidationErrors errors;
  A1111Request parsed = parse_a1111_request(a1111, img2img, errors);
  if (!errors.empty()) {
    const json& e = errors.detail[0];
    const std::string field = e["loc"].size() > 1 ? e["loc"][1].get<std::string>() : "";
    return bad_request(field + ": " + e["msg"].get<std::string>(), field.empty() ? json() : json(field));
  }
  if (Status v = validate(parsed.params, s.limits); !v.ok()) return bad_request(v.error().message());
  a1111 = std::move(parsed.fields);
  return std::nullopt;
}

void submit(ServerState& s, const HttpRequest& req, const std::string& kind, ImageRequest r, const Responder& respond) {
  if (auto full = queue_full(s)) {
    remove_uploads(r.a1111, s.uploads_dir);
    return respond(overloaded(openai_error(503, *full, "server_error")));
  }
  const fs::path outputs = s.images.outputs_dir();
  // Absolute URLs, as OpenAI returns them: from --public-url, else from the address the
  // connection reached, never from the Host header (a client could point the links anywhere).
  std::string base = s.public_url.empty() ? "http://" + req.local_address : s.public_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  base += "/outputs/";
  const auto queued = submit_job(s, kind, std::move(r.a1111), 0, [respond, outputs, base, format = r.response_format](const Job& job) {
    if (job.state == JobState::Cancelled) return respond(openai_error(409, "the job was cancelled", "server_error"));
    if (job.state != JobState::Done) return respond(openai_error(500, job.error, "server_error"));
    json data = json::array();
    for (const auto& rel : job.result["images"]) {
      const std::string file = rel.get<std::string>();
      if (format == "url") {
        data.push_back({{"url", base + file}});
      } else {
        const std::string png = read_whole_file(outputs / file);
        data.push_back({{"b64_json", base64_encode({reinterpret_cast<const uint8_t*>(png.data()), png.size()})}});
      }
    }
    respond(HttpResponse::json({{"created", int64_t(std::time(nullptr))}, {"data", data}}));
  });
  if (!queued.ok()) respond(openai_error(503, queued.error().message(), "server_error"));
}

void generations(ServerState& s, HttpRequest& req, const Responder& respond) {
  const auto parsed = parse_client_json(req.body);
  if (!parsed.ok()) return respond(bad_request(parsed.error().message()));
  const json& body = *parsed;
  if (!body.is_object()) return respond(bad_request("the request body is not a JSON object"));
  ImageRequest r;
  if (auto e = read_common(s, body, r, kDefaultSide, kDefaultSide)) return respond(*e);
  if (auto e = check_a1111(s, r.a1111, false)) return respond(*e);
  submit(s, req, "txt2img", std::move(r), respond);
}

// OpenAI's mask: transparent = edit. Ours: white = repaint. Partial transparency maps to grey.
Image repaint_mask_from_alpha(const Image& rgba) {
  Image mask;
  mask.width = rgba.width;
  mask.height = rgba.height;
  mask.channels = 3;
  mask.pixels.resize(size_t(rgba.width) * rgba.height * 3);
  for (size_t i = 0, n = size_t(rgba.width) * rgba.height; i < n; ++i) {
    const uint8_t v = uint8_t(255 - rgba.pixels[i * 4 + 3]);
    mask.pixels[i * 3] = mask.pixels[i * 3 + 1] = mask.pixels[i * 3 + 2] = v;
  }
  return mask;
}

bool has_transparency(const Image& image) {
  if (image.channels != 4) return false;
  for (size_t i = 3; i < image.pixels.size(); i += 4)
    if (image.pixels[i] != 255) return true;
  return false;
}

void edits(ServerState& s, HttpRequest& req, const Responder& respond) {
  auto parts = parse_multipart(req.body, req.header("content-type"));
  if (!parts.ok()) return respond(bad_request(parts.error().message()));
  json fields = json::object();
  std::optional<std::string_view> image_bytes, mask_bytes;
  for (const MultipartPart& p : *parts) {
    // The SDK sends one image as `image`, a list as `image[]`; the first one is used.
    if ((p.name == "image" || p.name == "image[]") && !image_bytes) image_bytes = p.data;
    else if (p.name == "mask") mask_bytes = p.data;
    else if (p.filename.empty()) fields[p.name] = std::string(p.data);
  }
  // Numeric extensions arrive as form strings; A1111's reader coerces numeric strings.
  if (!image_bytes) return respond(bad_request("'image' is required (a PNG, JPEG or WebP file)", "image"));
  const auto as_span = [](std::string_view v) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size()); };
  auto image = decode_image(as_span(*image_bytes), "image", s.image_limits);
  if (!image.ok()) return respond(bad_request(image.error().message(), "image"));

  std::optional<Image> mask;
  if (mask_bytes) {
    auto m = decode_image(as_span(*mask_bytes), "mask", s.image_limits);
    if (!m.ok()) return respond(bad_request(m.error().message(), "mask"));
    if (m->channels != 4) return respond(bad_request("'mask' must be a PNG with an alpha channel (its transparent areas are edited)", "mask"));
    if (m->width != image->width || m->height != image->height)
      return respond(bad_request("'mask' must have the same size as 'image'", "mask"));
    mask = repaint_mask_from_alpha(*m);
  } else if (has_transparency(*image)) {
    mask = repaint_mask_from_alpha(*image);  // as OpenAI: the image's own transparency is the mask
  }

  ImageRequest r;
  // Default size: the image's, down to a multiple of 8 (the latent grid).
  if (auto e = read_common(s, fields, r, std::max(8, image->width / 8 * 8), std::max(8, image->height / 8 * 8))) return respond(*e);
  // A mask means "repaint this area" (strength 1, starting from the original); without one the
  // whole image is reworked at A1111's default strength.
  r.a1111["denoising_strength"] = mask ? 1.0 : 0.75;
  if (mask) r.a1111["inpainting_fill"] = 1;
  if (fields.contains("strength")) r.a1111["denoising_strength"] = fields["strength"];
  if (auto e = check_a1111(s, r.a1111, true)) return respond(*e);

  JobUploads uploads;
  auto init_file = store_upload(s, *image);
  if (!init_file.ok()) return respond(openai_error(500, init_file.error().message(), "server_error"));
  uploads.init_images.push_back(*init_file);
  if (mask) {
    auto mask_file = store_upload(s, *mask);
    if (!mask_file.ok()) {
      remove_uploads(uploads, s.uploads_dir);
      return respond(openai_error(500, mask_file.error().message(), "server_error"));
    }
    uploads.mask = *mask_file;
  }
  attach_uploads(r.a1111, uploads);
  submit(s, req, "img2img", std::move(r), respond);
}

json model_json(const ModelEntry& e) {
  std::error_code ec;
  const auto mtime = fs::last_write_time(e.path, ec);
  // g++ 12 has no clock_cast: shift by the two clocks' current offset.
  const auto sys = std::chrono::system_clock::now() +
                   std::chrono::duration_cast<std::chrono::system_clock::duration>(mtime - fs::file_time_type::clock::now());
  const int64_t created = ec ? 0 : std::chrono::duration_cast<std::chrono::seconds>(sys.time_since_epoch()).count();
  return {{"id", e.model_name}, {"object", "model"}, {"created", created}, {"owned_by", "easel"}};
}

}  // namespace

void add_openai_routes(Router& r, ServerState& s) {
  r.add("POST", "/v1/images/generations", [&s](HttpRequest& req, Responder respond) { generations(s, req, respond); });
  r.add("POST", "/v1/images/edits", [&s](HttpRequest& req, Responder respond) { edits(s, req, respond); });
  r.add("GET", "/v1/models", [&s](HttpRequest&, Responder respond) {
    json data = json::array();
    for (const auto& e : s.catalog.checkpoints()) data.push_back(model_json(e));
    respond(HttpResponse::json({{"object", "list"}, {"data", data}}));
  });
  r.add("GET", "/v1/models/{id}", [&s](HttpRequest& req, Responder respond) {
    const auto e = s.catalog.find_checkpoint(req.params["id"]);
    if (!e) return respond(openai_error(404, "The model '" + req.params["id"] + "' does not exist", "invalid_request_error", "model", "model_not_found"));
    respond(HttpResponse::json(model_json(*e)));
  });
}

}  // namespace easel::server
