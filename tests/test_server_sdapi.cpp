// `easel serve`'s A1111 API against a running server on the tiny SD models of sd_pipeline_tiny:
// the answers' shapes, the images they carry, and the errors bad requests get.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "http_test_client.h"
#include "server_test_support.h"
#include "io/base64.h"
#include "io/image.h"
#include "pipelines/infotext.h"
#include "server/server_app.h"
#include "test_data.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::http_request;

// A server on a models folder holding the set's first SD 1.x text-to-image checkpoint.
class SdApiServer : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("easel_sdapi_" + std::to_string(::getpid()));
    fs::remove_all(root);
    model_file = testing::make_tiny_models_dir(root / "models");
    ASSERT_FALSE(model_file.empty()) << "the set has no SD 1.x single-file checkpoint";
    init_png = testing::first_init_image();
    ASSERT_FALSE(init_png.empty()) << "the set has no img2img case";
    server::ServeOptions o = testing::test_serve_options(root);
    app = std::make_unique<server::ServerApp>(o);
    ASSERT_TRUE(app->start().ok());
    port = app->port();
  }
  void TearDown() override {
    app.reset();
    fs::remove_all(root);
  }
  json get(const std::string& path) { return json::parse(http_request(port, "GET", path).body); }

  fs::path root, init_png;
  std::string model_file;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

TEST_F(SdApiServer, ListsModelsSamplersAndSchedulers) {
  const json models = get("/sdapi/v1/sd-models");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0]["title"], model_file);
  const json samplers = get("/sdapi/v1/samplers");
  ASSERT_GE(samplers.size(), 13u);
  bool euler_a = false;
  for (const auto& s : samplers) euler_a |= s["name"] == "Euler a";
  EXPECT_TRUE(euler_a);
  EXPECT_FALSE(get("/sdapi/v1/schedulers").empty());
  EXPECT_EQ(get("/sdapi/v1/options")["sd_model_checkpoint"], model_file);
  const json progress = get("/sdapi/v1/progress");
  EXPECT_EQ(progress["progress"], 0.0);
  EXPECT_TRUE(progress["state"].contains("sampling_steps"));
}

TEST_F(SdApiServer, Txt2ImgAnswersA1111Shape) {
  const json req = {{"prompt", "a red ball"}, {"negative_prompt", "blurry"}, {"steps", 3}, {"width", 48},
                    {"height", 32}, {"seed", 7}, {"batch_size", 2}, {"sampler_name", "Euler a"}};
  const auto res = http_request(port, "POST", "/sdapi/v1/txt2img", req.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  const json body = json::parse(res.body);
  ASSERT_EQ(body["images"].size(), 2u);
  EXPECT_EQ(body["parameters"]["prompt"], "a red ball");
  const json info = json::parse(body["info"].get<std::string>());
  EXPECT_EQ(info["all_seeds"], json::array({7, 8}));
  EXPECT_EQ(info["infotexts"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto bytes = base64_decode(body["images"][i].get<std::string>());
    ASSERT_TRUE(bytes);
    auto image = decode_image(*bytes, "image");
    ASSERT_TRUE(image.ok()) << image.error().message();
    EXPECT_EQ(image->width, 48);
    EXPECT_EQ(image->height, 32);
    ASSERT_FALSE(image->text.empty());
    const Infotext parsed = parse_infotext(image->text[0].second);
    EXPECT_EQ(parsed.prompt, "a red ball");
    EXPECT_EQ(*parsed.find("Seed"), std::to_string(7 + i));
    EXPECT_EQ(*parsed.find("Sampler"), "Euler a");
  }
  // png-info reads the parameters back.
  const auto info_res = http_request(port, "POST", "/sdapi/v1/png-info", json{{"image", body["images"][0]}}.dump());
  ASSERT_EQ(info_res.status, 200);
  EXPECT_EQ(json::parse(info_res.body)["parameters"]["Seed"], "7");
}

TEST_F(SdApiServer, Img2ImgTakesBase64AndDataUris) {
  std::ifstream in(init_png, std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(in)), {});
  const std::string b64 = base64_encode({reinterpret_cast<const uint8_t*>(png.data()), png.size()});
  const auto image = read_image(init_png).value();
  const json req = {{"prompt", "a red ball"}, {"steps", 4}, {"width", image.width}, {"height", image.height},
                    {"seed", 3}, {"denoising_strength", 0.5}, {"init_images", {"data:image/png;base64," + b64}}};
  const auto res = http_request(port, "POST", "/sdapi/v1/img2img", req.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  const json info = json::parse(json::parse(res.body)["info"].get<std::string>());
  EXPECT_EQ(info["denoising_strength"], 0.5);
  // The stored upload went away with the finished job.
  size_t uploads = 0;
  if (fs::is_directory(root / "data" / "uploads"))
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(root / "data" / "uploads")) ++uploads;
  EXPECT_EQ(uploads, 0u);
}

TEST_F(SdApiServer, BadRequestsGetJsonErrorsAndTheServerKeepsServing) {
  auto expect = [&](const std::string& method, const std::string& path, const std::string& body, int status) {
    const auto res = http_request(port, method, path, body);
    EXPECT_EQ(res.status, status) << method << " " << path << " " << body << " -> " << res.body;
    EXPECT_FALSE(json::parse(res.body, nullptr, false).is_discarded()) << res.body;
  };
  expect("POST", "/sdapi/v1/txt2img", "{not json", 422);
  expect("POST", "/sdapi/v1/txt2img", R"({"steps": "many"})", 422);
  expect("POST", "/sdapi/v1/txt2img", R"({"width": 100000, "height": 100000})", 422);
  expect("POST", "/sdapi/v1/txt2img", R"({"width": 50})", 422);
  expect("POST", "/sdapi/v1/txt2img", R"({"width": 4096, "height": 4096})", 422);  // past the server's limits
  expect("POST", "/sdapi/v1/txt2img", R"({"batch_size": 1000})", 422);
  expect("POST", "/sdapi/v1/txt2img", R"({"steps": 100000})", 422);
  expect("POST", "/sdapi/v1/txt2img", R"({"override_settings": {"sd_model_checkpoint": "missing.safetensors"}})", 422);
  expect("POST", "/sdapi/v1/img2img", R"({"init_images": ["not base64!"]})", 422);
  expect("POST", "/sdapi/v1/img2img", R"({"init_images": ["aGVsbG8="]})", 422);  // "hello": not an image
  expect("POST", "/sdapi/v1/options", R"({"sd_model_checkpoint": "nope"})", 422);
  expect("GET", "/sdapi/v1/nothing-here", "", 404);
  expect("GET", "/sdapi/v1/txt2img", "", 405);
  expect("POST", "/sdapi/v1/txt2img", std::string(2 << 20, ' '), 413);
  // Still serving.
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/progress").status, 200);
}

}  // namespace
}  // namespace easel
