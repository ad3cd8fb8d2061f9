// A bounded fuzz test of `easel serve`: 10,000 requests, mutated from valid ones of every route
// family (A1111 /sdapi, OpenAI images, the native job API, outputs, the web UI), with mutations of
// JSON structure (depth, types, sizes, unknown fields, unicode, numbers that overflow), of the bytes
// on the wire, of headers (content types, transfer codings, lengths, origins, hosts) and of methods
// and paths. Every answer must be a complete HTTP response below 500 (or 503, the server's word
// for overload), and the server must keep serving. scripts/test.sh runs it again under ASan +
// UBSan, where any memory error or undefined behaviour aborts it.
//
// The seed is fixed so a failure reproduces; EASEL_FUZZ_SEED picks another.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <optional>
#include <random>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <nlohmann/json.hpp>

#include "io/base64.h"
#include "io/image.h"
#include "server/server_app.h"
#include "server_test_support.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

constexpr int kRequests = 10000;

struct Answer {
  int status = 0;  // 0: no complete response
  std::string body;
  std::string error;
};

// Sends raw bytes and reads the response (after any interim 100 Continue), giving up after
// `timeout`. A response to HEAD has no body whatever its Content-Length says.
Answer send_raw(int port, const std::string& bytes, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  Answer answer;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  const bool head = bytes.rfind("HEAD ", 0) == 0;
  std::function<void()> read = [&] {
    parser.emplace();
    parser->body_limit(size_t(1) << 30);
    parser->skip(head);
    http::async_read(stream, buffer, *parser, [&](beast::error_code ec, size_t) {
      if (ec) return void(answer.error = "read: " + ec.message());
      if (parser->get().result_int() == 100) return read();
      answer.status = parser->get().result_int();
      answer.body = parser->get().body();
    });
  };
  stream.expires_after(timeout);
  stream.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
                       [&](beast::error_code ec) {
                         if (ec) return void(answer.error = "connect: " + ec.message());
                         asio::async_write(stream, asio::buffer(bytes), [&](beast::error_code, size_t) {
                           // Nothing more comes: a request whose framing promises more bytes ends
                           // here instead of waiting for the server's timeout. The server may also
                           // have answered (and closed) before reading everything: read anyway.
                           beast::error_code ignored;
                           stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                           read();
                         });
                       });
  io.run();
  return answer;
}

struct Request {
  std::string method = "GET";
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

std::string serialize(const Request& r, bool content_length = true) {
  std::string out = r.method + " " + r.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  if (content_length) out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  return out + r.body;
}

class Mutator {
 public:
  explicit Mutator(uint32_t seed) : rng_(seed) {}

  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[size_t(below(int(v.size())))]; }

  // Text that stresses decoders: control characters, NUL, multi-byte and astral code points,
  // lone surrogates as JSON escapes (written raw by the serializer below), long runs.
  std::string text() {
    static const std::vector<std::string> pieces = {"a", "red ball", "(word:1.5)", "[a:b:3]", "BREAK", "\xe2\x80\x94",
                                                    "\xf0\x9f\x98\x80", "\xd7\xa9\xd7\x9c", "\x01", std::string(1, '\0'),
                                                    "\"", "\\", "%00", "../../etc/passwd", "<script>", "\r\n", "\xef\xbf\xbf"};
    std::string s;
    const int n = chance(0.05) ? 2000 : below(6);
    for (int i = 0; i < n; ++i) s += pick(pieces);
    return s;
  }

  json value(int depth = 0) {
    switch (below(depth > 2 ? 9 : 11)) {
      case 0: return nullptr;
      case 1: return chance(0.5);
      case 2: return pick(std::vector<int64_t>{0, -1, 1, 8, 48, 64, 2147483647, -2147483648LL, 4294967296LL, 4294967344LL,
                                               INT64_MAX, INT64_MIN});
      case 3: return pick(std::vector<double>{0.5, -0.0, 1e308, -1e308, 1e-320, 3.14159, 7.0});
      case 4: return uint64_t(18446744073709551615ull);
      case 5: return text();
      case 6: return pick(std::vector<std::string>{"20", "1e3", "-1", "0x10", " 8", "NaN", "Infinity", "true", ""});
      case 7: return pick(std::vector<std::string>{"Euler", "Euler a", "DPM++ 2M Karras", "Karras", "nope", "LMS"});
      case 8: return std::string(size_t(1) << below(17), 'x');
      case 9: {
        json a = json::array();
        for (int i = below(4); i > 0; --i) a.push_back(value(depth + 1));
        return a;
      }
      default: {
        json o = json::object();
        for (int i = below(4); i > 0; --i) o[text()] = value(depth + 1);
        return o;
      }
    }
  }

  // One structural change somewhere in the document.
  void mutate(json& doc) {
    if (!doc.is_object() || doc.empty() || chance(0.05)) {
      doc = value();
      return;
    }
    auto it = doc.begin();
    std::advance(it, below(int(doc.size())));
    const std::string key = it.key();
    switch (below(7)) {
      case 0: doc[key] = value(); break;
      case 1: doc.erase(key); break;
      case 2: doc[text()] = value(); break;
      case 3: if (doc[key].is_object() || doc[key].is_array()) mutate(doc[key]); else doc[key] = value(); break;
      case 4: doc[key] = json::array({doc[key]}); break;
      case 5: doc[key] = pick(std::vector<std::string>{"/etc/passwd", "../../../../etc/passwd", "data:image/png;base64,AAAA",
                                                        "data:,", "not base64 ***", ""}); break;
      default: doc[pick(std::vector<std::string>{"mask_file", "init_image_files", "easel_uploads", "override_settings",
                                                 "priority", "kind", "request", "n", "size"})] = value(); break;
    }
  }

  // Nesting spliced into the text, past any depth the parsers accept.
  std::string nest(const std::string& body) {
    const size_t depth = pick(std::vector<size_t>{30, 40, 1000, 66000});
    const std::string deep = std::string(depth, '[') + std::string(depth, ']');
    const size_t brace = body.find('{');
    if (brace == std::string::npos) return deep;
    return body.substr(0, brace + 1) + "\"deep\":" + deep + (body.size() > brace + 2 ? "," : "") + body.substr(brace + 1);
  }

  // Bytes flipped, cut, inserted or repeated.
  std::string bytes(std::string s) {
    for (int i = 1 + below(4); i > 0 && !s.empty(); --i) {
      const size_t at = size_t(below(int(s.size())));
      switch (below(4)) {
        case 0: s[at] = char(below(256)); break;
        case 1: s.resize(at); break;
        case 2: s.insert(at, std::string(1 + below(8), char(below(256)))); break;
        default: s.insert(at, s.substr(at, std::min<size_t>(64, s.size() - at))); break;
      }
    }
    return s;
  }

 private:
  std::mt19937 rng_;
};

std::string multipart(const std::vector<std::tuple<std::string, std::string, std::string>>& parts, const std::string& boundary) {
  std::string body;
  for (const auto& [name, filename, data] : parts) {
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"";
    if (!filename.empty()) body += "; filename=\"" + filename + "\"\r\nContent-Type: image/png";
    body += "\r\n\r\n" + data + "\r\n";
  }
  return body + "--" + boundary + "--\r\n";
}

TEST(ServerFuzz, TenThousandMutatedRequestsAcrossEveryRouteFamily) {
  const fs::path root = fs::temp_directory_path() / ("easel_fuzz_" + std::to_string(::getpid()));
  fs::remove_all(root);
  ASSERT_FALSE(testing::make_tiny_models_dir(root / "models").empty()) << "the set has no SD 1.x checkpoint";
  server::ServeOptions o = testing::test_serve_options(root);
  // Jobs that pass validation stay tiny, and the queue short, so the run is bounded in time.
  o.limits.max_side = 64;
  o.limits.max_pixels = 64 * 64;
  o.limits.max_steps = 3;
  o.limits.max_batch_size = 2;
  o.limits.max_n_iter = 2;
  o.max_queued_jobs = 4;
  o.upload_limits = ImageLimits{256 * 256, 1 << 20};
  o.preview_every = 0;
  auto app = std::make_unique<server::ServerApp>(o);
  ASSERT_TRUE(app->start().ok());
  const int port = app->port();

  // A 32x32 PNG, as base64, for img2img, masks, png-info and edits.
  Image image{32, 32, 4, std::vector<uint8_t>(32 * 32 * 4, 200), {}};
  for (size_t i = 3; i < image.pixels.size(); i += 64) image.pixels[i] = 0;  // some transparency: an edit mask
  const auto png = encode_image(image, ImageFormat::Png).value();
  const std::string png_bytes(png.begin(), png.end());
  const std::string png_b64 = base64_encode(png);

  const json t2i = {{"prompt", "a red ball"}, {"negative_prompt", "blurry"}, {"steps", 2}, {"width", 32}, {"height", 32},
                    {"seed", 1}, {"sampler_name", "Euler a"}, {"batch_size", 1}, {"cfg_scale", 7},
                    {"override_settings", {{"CLIP_stop_at_last_layers", 2}}}};
  json i2i = t2i;
  i2i["init_images"] = {png_b64};
  i2i["mask"] = "data:image/png;base64," + png_b64;
  i2i["denoising_strength"] = 0.5;
  i2i["inpainting_fill"] = 1;
  const std::vector<std::pair<std::string, json>> json_routes = {
      {"/sdapi/v1/txt2img", t2i},
      {"/sdapi/v1/img2img", i2i},
      {"/sdapi/v1/png-info", {{"image", png_b64}}},
      {"/sdapi/v1/options", {{"sd_model_checkpoint", "x"}, {"samples_format", "png"}, {"show_progress_every_n_steps", 2}}},
      {"/easel/v1/jobs", {{"kind", "txt2img"}, {"request", t2i}, {"priority", 1}}},
      {"/easel/v1/jobs", {{"kind", "img2img"}, {"request", i2i}}},
      {"/v1/images/generations", {{"prompt", "a red ball"}, {"n", 1}, {"size", "32x32"}, {"steps", 2}, {"response_format", "url"}}},
      {"/sdapi/v1/interrupt", json::object()},
      {"/sdapi/v1/skip", json::object()},
      {"/sdapi/v1/refresh-checkpoints", json::object()},
  };
  const std::vector<std::string> get_targets = {
      "/sdapi/v1/progress", "/sdapi/v1/progress?skip_current_image=true", "/sdapi/v1/options", "/sdapi/v1/samplers",
      "/sdapi/v1/schedulers", "/sdapi/v1/sd-models", "/sdapi/v1/sd-vae", "/sdapi/v1/memory", "/sdapi/v1/cmd-flags",
      "/sdapi/v1/loras", "/easel/v1/jobs", "/easel/v1/jobs?state=done&limit=3&q=red", "/easel/v1/jobs?limit=5abc",
      "/easel/v1/ws", "/v1/models", "/v1/models/nope", "/", "/web/style.css", "/web/../../etc/passwd",
      "/outputs/../../etc/passwd", "/outputs/%2e%2e/%2e%2e/etc/passwd", "/outputs/x.png", "/%00", "/sdapi/v1/progress?%zz=%"};
  const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW", "G ET"};
  const std::vector<std::pair<std::string, std::string>> odd_headers = {
      {"Content-Type", "text/plain"}, {"Content-Type", "application/json; charset=utf-8"}, {"Content-Type", ""},
      {"Content-Type", "multipart/form-data; boundary="}, {"Content-Type", "multipart/form-data; boundary=zz"},
      {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked, identity"},
      {"Transfer-Encoding", "identity"}, {"Content-Length", "5"}, {"Content-Length", "-1"},
      {"Content-Length", "99999999999999999999"}, {"Origin", "http://evil.example"}, {"Origin", "null"},
      {"Origin", "http://127.0.0.1"}, {"Host", "evil.example"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"},
      {"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
      {"Authorization", "Basic !!!"}, {"Authorization", "Bearer"}, {"Expect", "100-continue"},
      {"X-Long", std::string(9000, 'h')}, {"Range", "bytes=0-1"}, {"If-None-Match", "*"}};

  uint32_t seed = 20261206;
  if (const char* s = std::getenv("EASEL_FUZZ_SEED")) seed = uint32_t(std::strtoul(s, nullptr, 10));
  Mutator m(seed);
  std::vector<std::string> job_ids = {"0123456789abcdef", "nope", "../../x"};
  std::map<int, int> statuses;
  int incomplete = 0, raw_sent = 0;
  for (int i = 0; i < kRequests; ++i) {
    Request r;
    bool content_length = true, raw = false;
    const int family = m.below(10);
    if (family < 6) {  // JSON bodies, the most exposed surface
      const auto& [target, base] = m.pick(json_routes);
      json doc = base;
      for (int k = m.below(4); k > 0; --k) m.mutate(doc);
      r.method = "POST";
      r.target = target;
      r.body = doc.dump(-1, ' ', false, json::error_handler_t::replace);
      if (m.chance(0.05)) r.body = m.nest(r.body);
      r.headers.emplace_back("Content-Type", "application/json");
    } else if (family == 6) {  // multipart edits
      std::vector<std::tuple<std::string, std::string, std::string>> parts = {
          {"prompt", "", m.chance(0.8) ? "a red ball" : m.text()}, {"image", "i.png", m.chance(0.8) ? png_bytes : m.bytes(png_bytes)},
          {"size", "", m.chance(0.7) ? "32x32" : m.value().dump()}, {"steps", "", "2"}, {"n", "", m.chance(0.8) ? "1" : m.text()}};
      if (m.chance(0.5)) parts.emplace_back("mask", "m.png", png_bytes);
      if (m.chance(0.2)) parts.emplace_back(m.text(), m.chance(0.5) ? m.text() : "", m.text());
      r.method = "POST";
      r.target = "/v1/images/edits";
      r.body = multipart(parts, "b0undary");
      r.headers.emplace_back("Content-Type", m.chance(0.9) ? "multipart/form-data; boundary=b0undary" : m.text());
    } else if (family == 7) {  // job lookups and cancels
      r.method = m.pick(std::vector<std::string>{"GET", "DELETE", "GET"});
      r.target = "/easel/v1/jobs/" + m.pick(job_ids) + (m.chance(0.2) ? "/preview" : "");
    } else {  // everything else that is read
      r.target = m.pick(get_targets);
    }
    // Methods, paths, headers and bytes on top.
    if (m.chance(0.05)) r.method = m.pick(methods);
    if (m.chance(0.03)) r.target += m.pick(std::vector<std::string>{"/x", "?a=%", "%ff%fe", "/" + std::string(3000, 'p')});
    for (int k = m.chance(0.15) ? 1 + m.below(3) : 0; k > 0; --k) {
      const auto& h = m.pick(odd_headers);
      if (h.first == "Content-Length" || h.first == "Transfer-Encoding") content_length = m.chance(0.5);
      r.headers.push_back(h);
    }
    std::string wire = serialize(r, content_length);
    if (m.chance(0.04)) {
      wire = m.bytes(wire);
      raw = true;
      ++raw_sent;
    }
    const Answer a = send_raw(port, wire);
    if (a.status == 0) {
      // A garbled request may end without an answer once the server gave up on it; anything
      // well-formed must be answered.
      ++incomplete;
      if (!raw) ADD_FAILURE() << "request " << i << " got no answer (" << a.error << "): " << wire.substr(0, 300);
    } else {
      ++statuses[a.status];
      EXPECT_TRUE(a.status < 500 || a.status == 503) << "request " << i << " -> " << a.status << " " << a.body.substr(0, 300)
                                                     << "\n" << wire.substr(0, 300);
      if (a.status == 202 && r.target == "/easel/v1/jobs") {
        const json answer = json::parse(a.body, nullptr, false);
        if (answer.is_object() && answer.contains("id")) job_ids.push_back(answer["id"]);
      }
    }
    if (HasFailure()) break;  // the first failure, with its request, is what a reader needs
    if (i % 1000 == 999) {
      ASSERT_EQ(send_raw(port, serialize({"GET", "/sdapi/v1/progress", {}, ""})).status, 200) << "after " << i + 1 << " requests";
    }
  }
  std::string summary;
  for (const auto& [status, n] : statuses) summary += " " + std::to_string(status) + ":" + std::to_string(n);
  std::printf("fuzz: %d requests (%d with garbled bytes, %d of those unanswered); statuses%s\n", kRequests, raw_sent,
              incomplete, summary.c_str());
  EXPECT_EQ(send_raw(port, serialize({"GET", "/sdapi/v1/progress", {}, ""})).status, 200);
  app.reset();
  fs::remove_all(root);
}

}  // namespace
}  // namespace easel
