// What a hostile client sends is refused before anything is queued or stored, and the server keeps
// serving (issue: "Harden easel serve"): JSON nested tens of thousands of levels deep (in a field,
// in a native job's request, in a stored option), client-named server paths (`mask_file`,
// `init_image_files`, a forged `easel_uploads`), unknown samplers and schedules, NUL characters,
// integers that would wrap, malformed query numbers; unknown fields are dropped, not stored.
// Runs against a server on the tiny SD model of sd_pipeline_tiny.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "http_test_client.h"
#include "io/base64.h"
#include "io/image.h"
#include "server/server_app.h"
#include "server_test_support.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::http_request;

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string base64_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  return base64_encode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

class ServerValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("easel_validation_" + std::to_string(::getpid()));
    fs::remove_all(root);
    ASSERT_FALSE(testing::make_tiny_models_dir(root / "models").empty()) << "the set has no SD 1.x checkpoint";
    init_png = testing::first_init_image();
    ASSERT_FALSE(init_png.empty()) << "the set has no img2img case";
    app = std::make_unique<server::ServerApp>(testing::test_serve_options(root));
    const Status s = app->start();
    ASSERT_TRUE(s.ok()) << s.error().message();
    port = app->port();
  }
  void TearDown() override {
    app.reset();
    fs::remove_all(root);
  }

  testing::HttpResult post(const std::string& path, const std::string& body) { return http_request(port, "POST", path, body); }
  bool alive() { return http_request(port, "GET", "/sdapi/v1/progress").status == 200; }
  // A request the tiny model runs in milliseconds.
  json tiny(const std::string& prompt = "a red ball") {
    return {{"prompt", prompt}, {"steps", 2}, {"width", 48}, {"height", 32}, {"seed", 5}, {"sampler_name", "Euler"}};
  }
  json img2img_request() {
    const Image init = read_image(init_png).value();
    json r = tiny();
    r["width"] = init.width;
    r["height"] = init.height;
    r["denoising_strength"] = 0.5;
    r["init_images"] = {base64_file(init_png)};
    return r;
  }
  json wait_job(const std::string& id) {
    json job;
    for (int i = 0; i < 4000; ++i) {
      job = json::parse(http_request(port, "GET", "/easel/v1/jobs/" + id).body, nullptr, false);
      const std::string state = job.value("state", "");
      if (state == "done" || state == "failed" || state == "cancelled") return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << "job " << id << " did not finish: " << job.dump();
    return job;
  }

  fs::path root, init_png;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

TEST_F(ServerValidation, DeeplyNestedJsonIsRefusedWhereverItIs) {
  const std::string deep = nested_arrays(66000);
  const std::string field = R"({"prompt":"x","steps":4,"width":48,"height":48,"x":)" + deep + "}";
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"/sdapi/v1/txt2img", field},
           {"/sdapi/v1/txt2img", nested_arrays(100000)},
           {"/sdapi/v1/img2img", field},
           {"/easel/v1/jobs", R"({"kind":"txt2img","request":)" + field + "}"},
           {"/v1/images/generations", R"({"prompt":"x","user":)" + deep + "}"},
           {"/sdapi/v1/png-info", R"({"image":)" + deep + "}"},
           {"/sdapi/v1/options", R"({"foo":)" + deep + "}"}}) {
    const auto res = post(path, body);
    EXPECT_TRUE(res.status == 422 || res.status == 400) << path << " -> " << res.status << " " << res.body.substr(0, 200);
    EXPECT_NE(res.body.find("nested deeper"), std::string::npos) << path << " -> " << res.body.substr(0, 200);
    ASSERT_TRUE(alive()) << "the server died on " << path;
  }
  // A depth that real requests have still passes.
  EXPECT_EQ(post("/sdapi/v1/options", R"({"quicksettings_list": ["sd_model_checkpoint"]})").status, 200);
}

TEST_F(ServerValidation, StoredOptionsAreBoundedSoReadingThemBackIsSafe) {
  for (const std::string& body : {std::string(R"({"foo": {"a": {"b": 1}}})"), std::string(R"({"foo": [[1]]})"),
                                  R"({"foo": ")" + std::string(5000, 'x') + "\"}", std::string(R"({"bad name!": 1})"),
                                  std::string(R"({"CLIP_stop_at_last_layers": 40})"),
                                  std::string(R"({"show_progress_every_n_steps": "often"})"),
                                  std::string(R"({"foo": "a\u0000b"})")}) {
    const auto res = post("/sdapi/v1/options", body);
    EXPECT_EQ(res.status, 422) << body.substr(0, 80) << " -> " << res.body;
  }
  // A refused request stores none of its options, not even the valid ones.
  EXPECT_EQ(post("/sdapi/v1/options", R"({"samples_format": "jpg", "foo": [[1]]})").status, 422);
  auto options = json::parse(http_request(port, "GET", "/sdapi/v1/options").body);
  EXPECT_NE(options["samples_format"], "jpg");
  // Scalars and short lists are kept and read back; the count is bounded.
  ASSERT_EQ(post("/sdapi/v1/options", R"({"samples_format": "jpg", "my_list": [1, "a", true, null]})").status, 200);
  options = json::parse(http_request(port, "GET", "/sdapi/v1/options").body);
  EXPECT_EQ(options["samples_format"], "jpg");
  EXPECT_EQ(options["my_list"], json::parse(R"([1, "a", true, null])"));
  int refused = 0;
  for (int i = 0; i < 300; ++i) refused += post("/sdapi/v1/options", json{{"opt_" + std::to_string(i), i}}.dump()).status == 422;
  EXPECT_GT(refused, 0);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options").status, 200);
}

TEST_F(ServerValidation, ClientsCannotNameServerFiles) {
  // A PNG of the init image's size outside the server's folders: were it used as the mask, the
  // whole image would be repainted and the output would differ.
  const Image init = read_image(init_png).value();
  Image white{init.width, init.height, 3, std::vector<uint8_t>(size_t(init.width) * init.height * 3, 255), {}};
  const fs::path outside = root / "outside";
  fs::create_directories(outside);
  ASSERT_TRUE(write_image(outside / "mask.png", white).ok());
  ASSERT_TRUE(write_image(outside / "init.png", white).ok());

  const auto plain = post("/sdapi/v1/img2img", img2img_request().dump());
  ASSERT_EQ(plain.status, 200) << plain.body;
  json hostile = img2img_request();
  hostile["mask_file"] = (outside / "mask.png").string();
  hostile["init_image_files"] = {(outside / "init.png").string()};
  hostile["easel_uploads"] = {{"init_images", {"0123456789abcdef"}}, {"mask", "../../outside/mask"}};
  const auto attacked = post("/sdapi/v1/img2img", hostile.dump());
  ASSERT_EQ(attacked.status, 200) << attacked.body;
  EXPECT_EQ(json::parse(attacked.body)["images"], json::parse(plain.body)["images"]) << "a client-named file was used";
  EXPECT_FALSE(json::parse(attacked.body)["parameters"].contains("mask_file"));

  // /etc/passwd as a mask: ignored, and nothing of it comes back.
  json passwd = tiny();
  passwd["mask_file"] = "/etc/passwd";
  passwd["init_image_files"] = {"/etc/passwd"};
  const auto res = post("/sdapi/v1/txt2img", passwd.dump());
  EXPECT_EQ(res.status, 200) << res.body.substr(0, 300);
  EXPECT_EQ(res.body.find("root:"), std::string::npos);
  EXPECT_TRUE(fs::exists(outside / "mask.png"));
  EXPECT_TRUE(fs::exists(outside / "init.png"));
}

TEST_F(ServerValidation, FinishedJobsDeleteOnlyTheirOwnUploads) {
  // Files in the uploads folder that other jobs (or nobody) put there, one named like an upload id.
  const fs::path uploads = root / "data" / "uploads";
  fs::create_directories(uploads);
  for (const char* name : {"victim.png", "0123456789abcdef.png"}) std::ofstream(uploads / name) << "keep me";
  json request = img2img_request();
  request["init_image_files"] = {(uploads / "victim.png").string()};
  request["mask_file"] = (uploads / "0123456789abcdef.png").string();
  request["easel_uploads"] = {{"init_images", {"0123456789abcdef"}}, {"mask", "0123456789abcdef"}};
  const auto res = post("/easel/v1/jobs", json{{"kind", "img2img"}, {"request", request}}.dump());
  ASSERT_EQ(res.status, 202) << res.body;
  const json job = wait_job(json::parse(res.body)["id"]);
  EXPECT_EQ(job["state"], "done") << job.dump().substr(0, 400);
  EXPECT_TRUE(fs::exists(uploads / "victim.png"));
  EXPECT_TRUE(fs::exists(uploads / "0123456789abcdef.png"));
  // The job's own upload is gone; what is shown of its request names no upload at all.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(uploads)) ++files;
  EXPECT_EQ(files, 2u);
  for (const char* field : {"mask_file", "init_image_files", "easel_uploads", "init_images"})
    EXPECT_FALSE(job["request"].contains(field)) << field;
}

TEST_F(ServerValidation, UnknownFieldsAreDroppedNotStored) {
  json request = tiny();
  request["junk"] = std::string(100000, 'j');
  request["styles"] = {"a", "b"};
  request["steps"] = "2";  // A1111 coerces numeric strings
  request["override_settings"] = {{"CLIP_stop_at_last_layers", 2}, {"something_else", std::string(1000, 'x')}};
  const auto res = post("/easel/v1/jobs", json{{"kind", "txt2img"}, {"request", request}, {"extra", 1}}.dump());
  ASSERT_EQ(res.status, 202) << res.body;
  const json job = wait_job(json::parse(res.body)["id"]);
  EXPECT_EQ(job["state"], "done");
  EXPECT_FALSE(job["request"].contains("junk"));
  EXPECT_FALSE(job["request"].contains("styles"));
  EXPECT_EQ(job["request"]["steps"], 2);
  EXPECT_EQ(job["request"]["override_settings"], json({{"CLIP_stop_at_last_layers", 2}}));
  const auto sync = post("/sdapi/v1/txt2img", request.dump());
  ASSERT_EQ(sync.status, 200);
  EXPECT_FALSE(json::parse(sync.body)["parameters"].contains("junk"));
}

TEST_F(ServerValidation, WrongValuesAreRefusedBeforeTheyAreQueued) {
  const auto expect_refused = [&](const std::string& path, const json& body, const std::string& says) {
    const auto res = post(path, body.dump());
    EXPECT_TRUE(res.status == 422 || res.status == 400) << path << " " << body.dump().substr(0, 100) << " -> " << res.status;
    EXPECT_NE(res.body.find(says), std::string::npos) << res.body;
    EXPECT_EQ(res.body.find(root.string()), std::string::npos) << "the answer names a server path: " << res.body;
  };
  json bad_sampler = tiny(), bad_schedule = tiny(), nul = tiny(), wide = tiny();
  bad_sampler["sampler_name"] = "Nonexistent";
  bad_schedule["scheduler"] = "sometimes";
  nul["prompt"] = std::string("a\0b", 3);
  wide["width"] = 4294967344;
  for (const char* path : {"/sdapi/v1/txt2img", "/v1/images/generations"}) {
    expect_refused(path, bad_sampler, "sampler_name");
    expect_refused(path, nul, "NUL");
  }
  expect_refused("/sdapi/v1/txt2img", bad_schedule, "scheduler");
  expect_refused("/sdapi/v1/txt2img", wide, "width");
  expect_refused("/easel/v1/jobs", {{"kind", "txt2img"}, {"request", bad_sampler}}, "sampler_name");
  expect_refused("/easel/v1/jobs", {{"kind", "txt2img"}, {"request", tiny()}, {"priority", 4294967297}}, "priority");
  expect_refused("/v1/images/generations", {{"prompt", "x"}, {"n", 4294967297}}, "'n'");
  expect_refused("/v1/images/generations", {{"prompt", "x"}, {"size", "4294967344x32"}}, "'size'");
  EXPECT_EQ(http_request(port, "GET", "/easel/v1/jobs?limit=5abc").status, 400);
  EXPECT_EQ(http_request(port, "GET", "/easel/v1/jobs?limit=5").status, 200);
  // Nothing was queued.
  EXPECT_EQ(json::parse(http_request(port, "GET", "/easel/v1/jobs").body)["total"], 0);
}

}  // namespace
}  // namespace easel
