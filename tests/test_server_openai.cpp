// `easel serve`'s OpenAI images API, multipart parsing and the security hooks (auth, API keys, rate
// limits, CORS) against a running server on the set's first SD 1.x tiny model.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "http_test_client.h"
#include "server_test_support.h"
#include "io/base64.h"
#include "io/image.h"
#include "server/auth.h"
#include "server/multipart.h"
#include "server/rate_limiter.h"
#include "server/server_app.h"
#include "test_data.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::http_request;

class OpenAiServer : public ::testing::Test {
 protected:
  void start(server::SecurityOptions security = {}) {
    root = fs::temp_directory_path() / ("easel_openai_" + std::to_string(::getpid()));
    fs::remove_all(root);
    model_file = testing::make_tiny_models_dir(root / "models");
    ASSERT_FALSE(model_file.empty());
    server::ServeOptions o = testing::test_serve_options(root);
    o.security = std::move(security);
    app = std::make_unique<server::ServerApp>(o);
    ASSERT_TRUE(app->start().ok());
    port = app->port();
  }
  void TearDown() override {
    app.reset();
    fs::remove_all(root);
  }
  static std::string file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::string png(const Image& image) {
    auto bytes = encode_image(image, ImageFormat::Png).value();
    return std::string(bytes.begin(), bytes.end());
  }
  static std::string multipart(const std::vector<std::tuple<std::string, std::string, std::string>>& parts) {
    std::string body;
    for (const auto& [name, filename, data] : parts) {
      body += "--XyZ\r\nContent-Disposition: form-data; name=\"" + name + "\"";
      if (!filename.empty()) body += "; filename=\"" + filename + "\"\r\nContent-Type: image/png";
      body += "\r\n\r\n" + data + "\r\n";
    }
    return body + "--XyZ--\r\n";
  }
  const std::map<std::string, std::string> form = {{"Content-Type", "multipart/form-data; boundary=XyZ"}};

  fs::path root;
  std::string model_file;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

void expect_openai_error(const testing::HttpResult& res, int status, const std::string& param = "") {
  EXPECT_EQ(res.status, status) << res.body;
  const json body = json::parse(res.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << res.body;
  ASSERT_TRUE(body["error"].is_object()) << res.body;
  EXPECT_TRUE(body["error"]["message"].is_string());
  EXPECT_TRUE(body["error"]["type"].is_string());
  EXPECT_TRUE(body["error"].contains("code"));
  if (!param.empty()) {
    EXPECT_EQ(body["error"]["param"], param) << res.body;
  }
}

TEST_F(OpenAiServer, GenerationsAnswerOpenAiShape) {
  start();
  const json models = json::parse(http_request(port, "GET", "/v1/models").body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["owned_by"], "easel");
  const std::string id = models["data"][0]["id"];

  const json req = {{"prompt", "a red ball"}, {"n", 2}, {"size", "48x32"}, {"model", id}, {"quality", "hd"},
                    {"style", "vivid"}, {"steps", 2}};
  const auto res = http_request(port, "POST", "/v1/images/generations", req.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  const json body = json::parse(res.body);
  EXPECT_TRUE(body["created"].is_number_integer());
  ASSERT_EQ(body["data"].size(), 2u);
  for (const auto& d : body["data"]) {
    auto image = decode_image(*base64_decode(d["b64_json"].get<std::string>()), "b64_json");
    ASSERT_TRUE(image.ok());
    EXPECT_EQ(image->width, 48);
    EXPECT_EQ(image->height, 32);
  }
  const json url_req = {{"prompt", "a ball"}, {"size", "48x32"}, {"steps", 2}, {"response_format", "url"}};
  const json urls = json::parse(http_request(port, "POST", "/v1/images/generations", url_req.dump()).body);
  const std::string url = urls["data"][0]["url"];
  EXPECT_NE(url.find("/outputs/"), std::string::npos) << url;
  EXPECT_TRUE(fs::is_regular_file(root / "outputs" / url.substr(url.find("/outputs/") + 9)));
}

TEST_F(OpenAiServer, EditsTakeMultipartAndOpenAiMasks) {
  start();
  const Image init = read_image(testing::first_init_image()).value();
  // OpenAI mask: transparent = edit; the left half transparent.
  Image mask{init.width, init.height, 4, std::vector<uint8_t>(size_t(init.width) * init.height * 4, 255), {}};
  for (int y = 0; y < init.height; ++y)
    for (int x = 0; x < init.width / 2; ++x) mask.pixels[(size_t(y) * init.width + x) * 4 + 3] = 0;
  const std::string body = multipart({{"image", "init.png", png(init)}, {"mask", "mask.png", png(mask)},
                                      {"prompt", "", "a red ball"}, {"n", "", "1"}, {"steps", "", "2"}, {"seed", "", "3"}});
  const auto res = http_request(port, "POST", "/v1/images/edits", body, form);
  ASSERT_EQ(res.status, 200) << res.body;
  const json out = json::parse(res.body);
  ASSERT_EQ(out["data"].size(), 1u);
  const Image edited = decode_image(*base64_decode(out["data"][0]["b64_json"].get<std::string>()), "edit").value();
  EXPECT_EQ(edited.width, init.width / 8 * 8);
  // The opaque (kept) right half is the original; the transparent left half was repainted.
  auto diff = [&](int x0, int x1) {
    double d = 0;
    for (int y = 0; y < edited.height; ++y)
      for (int x = x0; x < x1; ++x)
        for (int c = 0; c < 3; ++c)
          d += std::abs(int(edited.pixels[(size_t(y) * edited.width + x) * edited.channels + c]) -
                        int(init.pixels[(size_t(y) * init.width + x) * init.channels + c]));
    return d / (double(edited.height) * (x1 - x0) * 3);
  };
  EXPECT_LT(diff(edited.width * 3 / 4, edited.width), diff(0, edited.width / 4));

  // A mask without alpha, a mask of another size, a missing image.
  Image rgb{init.width, init.height, 3, std::vector<uint8_t>(size_t(init.width) * init.height * 3, 0), {}};
  expect_openai_error(http_request(port, "POST", "/v1/images/edits",
                                   multipart({{"image", "i.png", png(init)}, {"mask", "m.png", png(rgb)}, {"prompt", "", "x"}}), form),
                      400, "mask");
  Image small{8, 8, 4, std::vector<uint8_t>(8 * 8 * 4, 0), {}};
  expect_openai_error(http_request(port, "POST", "/v1/images/edits",
                                   multipart({{"image", "i.png", png(init)}, {"mask", "m.png", png(small)}, {"prompt", "", "x"}}), form),
                      400, "mask");
  expect_openai_error(http_request(port, "POST", "/v1/images/edits", multipart({{"prompt", "", "x"}}), form), 400, "image");
}

TEST_F(OpenAiServer, BadRequestsGetOpenAiErrors) {
  start();
  auto post = [&](const std::string& path, const std::string& body, const std::map<std::string, std::string>& h = {}) {
    return http_request(port, "POST", path, body, h);
  };
  expect_openai_error(post("/v1/images/generations", "{nope"), 400);
  expect_openai_error(post("/v1/images/generations", R"({"n": 1})"), 400, "prompt");
  expect_openai_error(post("/v1/images/generations", R"({"prompt": "x", "n": 11})"), 400, "n");
  expect_openai_error(post("/v1/images/generations", R"({"prompt": "x", "size": "big"})"), 400, "size");
  expect_openai_error(post("/v1/images/generations", R"({"prompt": "x", "size": "100000x100000"})"), 400);
  expect_openai_error(post("/v1/images/generations", R"({"prompt": "x", "size": "50x50"})"), 400);
  expect_openai_error(post("/v1/images/generations", R"({"prompt": "x", "response_format": "jpeg"})"), 400, "response_format");
  expect_openai_error(post("/v1/images/generations", R"({"prompt": "x", "model": "missing"})"), 404, "model");
  expect_openai_error(http_request(port, "GET", "/v1/models/missing"), 404);
  // Multipart that is not: wrong type, no boundary, bad boundary, truncated, garbage.
  const std::string part = "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n";
  expect_openai_error(post("/v1/images/edits", part + "--XyZ--\r\n"), 400);  // application/json
  expect_openai_error(post("/v1/images/edits", part, {{"Content-Type", "multipart/form-data"}}), 400);
  expect_openai_error(post("/v1/images/edits", part, {{"Content-Type", "multipart/form-data; boundary=other"}}), 400);
  expect_openai_error(post("/v1/images/edits", part, form), 400);  // no closing boundary
  expect_openai_error(post("/v1/images/edits", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"", form), 400);
  expect_openai_error(post("/v1/images/edits", multipart({{"image", "i.png", "not a png"}, {"prompt", "", "x"}}), form), 400, "image");
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/progress").status, 200);
}

TEST(ParserMultipart, SurvivesTruncationsAndGarbage) {
  const std::string ct = "multipart/form-data; boundary=\"b\"";
  const std::string good = "preamble\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a;b.png\"\r\n"
                           "Content-Type: image/png\r\n\r\n\x89PNG\r\n-b-\r\n\r\n--b\r\ncontent-disposition: form-data; name=x\r\n\r\n"
                           "1\r\n--b--";
  auto parts = server::parse_multipart(good, ct);
  ASSERT_TRUE(parts.ok()) << parts.error().message();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].filename, "a;b.png");
  EXPECT_EQ((*parts)[0].content_type, "image/png");
  EXPECT_EQ((*parts)[0].data, "\x89PNG\r\n-b-\r\n");
  EXPECT_EQ((*parts)[1].name, "x");
  EXPECT_EQ((*parts)[1].data, "1");
  // Every prefix and every single-byte corruption parses or fails cleanly (the ASan run checks reads).
  for (size_t n = 0; n < good.size(); ++n) (void)server::parse_multipart(good.substr(0, n), ct);
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = char(bad[i] ^ 0x5a);
    (void)server::parse_multipart(bad, ct);
  }
  EXPECT_FALSE(server::parse_multipart(good, "multipart/form-data; boundary=").ok());
  EXPECT_FALSE(server::parse_multipart(good, "multipart/form-data; boundary=" + std::string(71, 'b')).ok());
  EXPECT_FALSE(server::parse_multipart(good, "text/plain").ok());
  server::MultipartLimits one;
  one.max_parts = 1;
  EXPECT_FALSE(server::parse_multipart(good, ct, one).ok());
}

TEST_F(OpenAiServer, AuthWantsBasicOrBearer) {
  start({.auth = {"alice:s3cret", "bob:pw"}, .api_keys = {"key-1"}});
  const auto none = http_request(port, "GET", "/sdapi/v1/options");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.headers.at("WWW-Authenticate"), "Basic realm=\"easel\"");
  EXPECT_TRUE(json::parse(none.body).contains("detail"));
  expect_openai_error(http_request(port, "GET", "/v1/models"), 401);
  auto basic = [](const std::string& up) {
    return std::map<std::string, std::string>{
        {"Authorization", "Basic " + base64_encode({reinterpret_cast<const uint8_t*>(up.data()), up.size()})}};
  };
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", basic("alice:s3cret")).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", basic("bob:pw")).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", basic("alice:s3cre")).status, 401);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", basic("alice:s3cret!")).status, 401);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", {{"Authorization", "Basic %%%"}}).status, 401);
  EXPECT_EQ(http_request(port, "GET", "/v1/models", "", {{"Authorization", "Bearer key-1"}}).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/v1/models", "", {{"Authorization", "Bearer key-2"}}).status, 401);
  EXPECT_EQ(http_request(port, "GET", "/no-such-page", "", {{"Authorization", "Bearer key-1"}}).status, 404);
  EXPECT_FALSE(server::Authenticator::create({"nocolon"}, {}).ok());
  EXPECT_TRUE(server::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(server::constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(server::constant_time_equal("", "a"));
}

TEST_F(OpenAiServer, RateLimitAnswers429WithRetryAfter) {
  start({.rate_limit = 6});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/progress").status, 200);  // free
  for (int i = 0; i < 6; ++i) EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options").status, 200);
  const auto limited = http_request(port, "GET", "/sdapi/v1/options");
  EXPECT_EQ(limited.status, 429);
  EXPECT_GE(std::stoi(limited.headers.at("Retry-After")), 1);
  EXPECT_TRUE(json::parse(limited.body).contains("detail"));
  expect_openai_error(http_request(port, "GET", "/v1/models"), 429);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/progress").status, 200);
}

TEST(RateLimiter, SlidingWindowWithCosts) {
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  server::RateLimiter limiter(10, [&] { return t; });
  EXPECT_FALSE(limiter.spend("a", 5));
  t += std::chrono::seconds(30);
  EXPECT_FALSE(limiter.spend("a", 5));
  EXPECT_EQ(limiter.spend("a", 1), 30);  // the first 5 leave the window 30 s later
  EXPECT_FALSE(limiter.spend("b", 5));   // another client has its own budget
  t += std::chrono::seconds(30);
  EXPECT_FALSE(limiter.spend("a", 5));
  EXPECT_FALSE(limiter.spend("a", 0));
  EXPECT_EQ(limiter.spend("a", 11), 60);  // never fits
  EXPECT_EQ(server::request_cost("POST", "/sdapi/v1/txt2img"), 5);
  EXPECT_EQ(server::request_cost("POST", "/v1/images/edits"), 5);
  EXPECT_EQ(server::request_cost("GET", "/sdapi/v1/progress"), 0);
  EXPECT_EQ(server::request_cost("GET", "/app.js"), 0);
  EXPECT_EQ(server::request_cost("GET", "/sdapi/v1/options"), 1);
}

TEST_F(OpenAiServer, CorsOnlyForConfiguredOrigins) {
  start({.auth = {"u:p"}, .cors_origins = {"http://good.example"}});
  const auto pre = http_request(port, "OPTIONS", "/sdapi/v1/txt2img", "",
                                {{"Origin", "http://good.example"}, {"Access-Control-Request-Method", "POST"},
                                 {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(pre.status, 204);  // without credentials
  EXPECT_EQ(pre.headers.at("Access-Control-Allow-Origin"), "http://good.example");
  EXPECT_EQ(pre.headers.at("Access-Control-Allow-Headers"), "authorization, content-type");
  const auto bad = http_request(port, "OPTIONS", "/sdapi/v1/txt2img", "",
                                {{"Origin", "http://evil.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(bad.status, 403);
  EXPECT_EQ(bad.headers.count("Access-Control-Allow-Origin"), 0u);
  // Ordinary responses (a 401 too, so the page can read it) carry the header for allowed origins only.
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", {{"Origin", "http://good.example"}})
                .headers.at("Access-Control-Allow-Origin"), "http://good.example");
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", {{"Origin", "http://evil.example"}})
                .headers.count("Access-Control-Allow-Origin"), 0u);
}

TEST_F(OpenAiServer, NoCorsByDefault) {
  start();
  const auto pre = http_request(port, "OPTIONS", "/sdapi/v1/txt2img", "",
                                {{"Origin", "http://good.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(pre.status, 405);
  EXPECT_EQ(pre.headers.count("Access-Control-Allow-Origin"), 0u);
}

}  // namespace
}  // namespace easel
