// The web UI as `easel serve` serves it from the binary: index at /, files under /web/ with their
// content types, revalidation by ETag (304), and JSON 404s for files that are not there.
#include <gtest/gtest.h>

#include "assets/assets.h"
#include "http_test_client.h"
#include "server_test_support.h"
#include "server/media_types.h"
#include "server/server_app.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using testing::http_request;

class WebUiServer : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("easel_web_" + std::to_string(::getpid()));
    server::ServeOptions o = testing::test_serve_options(root);
    app = std::make_unique<server::ServerApp>(o);
    ASSERT_TRUE(app->start().ok());
    port = app->port();
  }
  void TearDown() override {
    app.reset();
    fs::remove_all(root);
  }
  fs::path root;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

TEST_F(WebUiServer, ServesTheIndexAndItsFilesWithContentTypes) {
  const auto index = http_request(port, "GET", "/");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.headers.at("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(index.body.find("/web/js/app.js"), std::string::npos);
  EXPECT_EQ(index.headers.at("Cache-Control"), "no-cache");
  const struct { const char* path; const char* type; } files[] = {
      {"/web/style.css", "text/css; charset=utf-8"}, {"/web/js/app.js", "text/javascript; charset=utf-8"},
      {"/web/js/progress.js", "text/javascript; charset=utf-8"}};
  for (const auto& f : files) {
    const auto res = http_request(port, "GET", f.path);
    EXPECT_EQ(res.status, 200) << f.path;
    EXPECT_EQ(res.headers.at("Content-Type"), f.type) << f.path;
    EXPECT_FALSE(res.body.empty()) << f.path;
  }
  // Every file under web/ is embedded, byte for byte.
  for (const auto& f : assets::web_files()) {
    const auto res = http_request(port, "GET", "/web/" + std::string(f.path));
    EXPECT_EQ(res.body, std::string(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size())) << f.path;
  }
}

TEST_F(WebUiServer, RevalidatesByETag) {
  const auto first = http_request(port, "GET", "/web/style.css");
  const std::string etag = first.headers.at("ETag");
  ASSERT_FALSE(etag.empty());
  const auto again = http_request(port, "GET", "/web/style.css", "", {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  const auto changed = http_request(port, "GET", "/web/style.css", "", {{"If-None-Match", "\"other\""}});
  EXPECT_EQ(changed.status, 200);
}

TEST_F(WebUiServer, MissingFilesAreJson404s) {
  for (const char* path : {"/web/nope.js", "/web/../CMakeLists.txt", "/web/js/../../etc/passwd"}) {
    const auto res = http_request(port, "GET", path);
    EXPECT_EQ(res.status, 404) << path;
    EXPECT_EQ(res.headers.at("Content-Type"), "application/json") << path;
  }
}

}  // namespace
}  // namespace easel

namespace easel {
namespace {

// One table names what the server sends: web files, generated images and previews agree.
TEST(ServerMediaTypes, OneTableForWebFilesImagesAndPreviews) {
  using server::media_type_of;
  EXPECT_EQ(media_type_of("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(media_type_of("js/app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(media_type_of("2026-12-06/x-0.PNG"), "image/png");
  EXPECT_EQ(media_type_of("a.jpeg"), media_type_of(ImageFormat::Jpeg));
  EXPECT_EQ(media_type_of("a.webp"), media_type_of(ImageFormat::Webp));
  EXPECT_EQ(media_type_of("a.png"), media_type_of(ImageFormat::Png));
  EXPECT_EQ(media_type_of("notes.txt"), "application/octet-stream");
}

}  // namespace
}  // namespace easel
