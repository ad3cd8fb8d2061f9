// Live previews: A1111's cheap approximation (modules/sd_vae_approx.py, cheap_approximation) on a
// hand-computed latent, the TAESD path on a random-weight SD-shaped decoder (the decoder itself is
// golden-tested in test_taesd.cpp), and a running server's previews in /sdapi/v1/progress, the job
// API, the events and the WebSocket's binary frames.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include "backends/runtime.h"
#include "http_test_client.h"
#include "io/base64.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "pipelines/latent_preview.h"
#include "server/message_stream.h"
#include "server/previews.h"
#include "server/server_app.h"
#include "server_test_support.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::EventClient;
using testing::http_request;

// --- the cheap approximation ---------------------------------------------------------------------

// A1111: RGB = einsum("lxy,lr -> rxy", latent, coefs), then 255 * clamp(x * 0.5 + 0.5, 0, 1)
// truncated, with coefs (rows = latent channels)
//   [ 0.298,  0.207,  0.208]
//   [ 0.187,  0.286,  0.173]
//   [-0.158,  0.189,  0.264]
//   [-0.184, -0.271, -0.473]
TEST(LatentPreview, CheapApproximationIsA1111Formula) {
  // Latent [2, 4, 2, 3]: six pixels of the first image, channels l0..l3 each; the second image is
  // noise the preview must ignore.
  const std::vector<std::array<float, 4>> pixels = {
      {1, 0, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 0}, {1, 1, 1, 1}, {10, 0, 0, 0}, {0, 0, 2, 0}};
  std::vector<float> v(2 * 4 * 6, 7.0f);
  for (int i = 0; i < 6; ++i)
    for (int l = 0; l < 4; ++l) v[l * 6 + i] = pixels[i][l];
  const Image im = cheap_approximation_preview(Tensor::from_vector(v, Shape{2, 4, 2, 3}));
  ASSERT_EQ(im.width, 3);
  ASSERT_EQ(im.height, 2);
  ASSERT_EQ(im.channels, 3);
  // By hand:
  //   (1,0,0,0):  R .298 -> .649 * 255 = 165.495 -> 165; G .207 -> 153.89 -> 153; B .208 -> 154.02 -> 154
  //   (0,0,0,1):  R -.184 -> 104.04 -> 104; G -.271 -> 92.9475 -> 92; B -.473 -> 67.1925 -> 67
  //   0:          .5 * 255 = 127.5 -> 127
  //   (1,1,1,1):  R .143 -> 145.7325 -> 145; G .411 -> 179.9025 -> 179; B .172 -> 149.43 -> 149
  //   (10,0,0,0): R 2.98, G 2.07, B 2.08 -> clamped to 1 -> 255
  //   (0,0,2,0):  R -.316 -> 87.21 -> 87; G .378 -> 175.695 -> 175; B .528 -> 194.82 -> 194
  const std::vector<uint8_t> expected = {165, 153, 154, 104, 92, 67, 127, 127, 127,
                                         145, 179, 149, 255, 255, 255, 87, 175, 194};
  EXPECT_EQ(im.pixels, expected);
}

// --- a random-weight TAESD decoder for 4-channel latents, in taesd naming ------------------------

void write_random_taesd_decoder(const fs::path& file) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.03f, 0.03f);
  std::vector<std::pair<std::string, Tensor>> tensors;
  const auto add = [&](const std::string& name, Shape shape) {
    std::vector<float> v(size_t(shape.numel()));
    for (float& x : v) x = u(rng);
    tensors.emplace_back(name, Tensor::from_vector(v, shape));
  };
  const auto conv = [&](const std::string& p, int64_t in, int64_t out, bool bias) {
    add(p + ".weight", Shape{out, in, 3, 3});
    if (bias) add(p + ".bias", Shape{out});
  };
  const auto block = [&](int i) {
    for (int c : {0, 2, 4}) conv(cat("decoder.", i, ".conv.", c), 64, 64, true);
  };
  // The reference Decoder: Clamp, conv(4, 64), ReLU, 3 blocks, Upsample, conv (no bias), ...
  conv("decoder.1", 4, 64, true);
  for (int i : {3, 4, 5, 8, 9, 10, 13, 14, 15, 18}) block(i);
  for (int i : {7, 12, 17}) conv(cat("decoder.", i), 64, 64, false);
  conv("decoder.19", 64, 3, true);
  ASSERT_TRUE(write_safetensors(file, tensors).ok());
}

TEST(LatentPreview, TaesdDecoderMakesAFullSizeImage) {
  const fs::path dir = fs::temp_directory_path() / ("easel_preview_taesd_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_random_taesd_decoder(dir / "taesd_decoder.safetensors");
  auto rt = Runtime::create({.threads = 1}).value();
  Context ctx = rt->context();
  auto previewer = LatentPreviewer::load_taesd(ctx, dir / "taesd_decoder.safetensors");
  ASSERT_TRUE(previewer.ok()) << previewer.error().message();
  EXPECT_STREQ(previewer->method(), "TAESD");
  std::vector<float> v(2 * 4 * 4 * 6);
  std::mt19937 rng(1);
  std::normal_distribution<float> n;
  for (float& x : v) x = n(rng);
  const Image im = previewer->preview(ctx, Tensor::from_vector(v, Shape{2, 4, 4, 6}));
  EXPECT_EQ(im.width, 48);
  EXPECT_EQ(im.height, 32);
  EXPECT_EQ(im.channels, 3);
  EXPECT_EQ(im.pixels.size(), size_t(48 * 32 * 3));
  // A 16-channel latent has no 4-channel decoder here.
  EXPECT_FALSE(LatentPreviewer::load_taesd(ctx, dir / "taesd_decoder.safetensors", 16).ok());
  fs::remove_all(dir);
}

TEST(LatentPreview, BinaryFrameHeader) {
  server::Preview p;
  p.job_id = "0123456789abcdef";
  p.format = ImageFormat::Png;
  p.bytes = "IMG";
  const std::string f = server::preview_frame(p);
  EXPECT_EQ(f, std::string("\0\0\0\1\0\0\0\2", 8) + "0123456789abcdefIMG");
}

// A slow WebSocket client holds at most one preview frame: a newer one replaces it, text stays.
TEST(LatentPreview, StreamKeepsOnlyTheLatestBinaryFrame) {
  server::MessageStream s(8);
  EXPECT_TRUE(s.push("a"));
  EXPECT_TRUE(s.push_binary("frame1"));
  EXPECT_TRUE(s.push("b"));
  EXPECT_TRUE(s.push_binary("frame2"));
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(s.push_binary("frame3"));  // never overflows the stream
  bool binary = true;
  EXPECT_EQ(*s.pop(&binary), "a");
  EXPECT_FALSE(binary);
  EXPECT_EQ(*s.pop(&binary), "b");
  EXPECT_EQ(*s.pop(&binary), "frame3");
  EXPECT_TRUE(binary);
  EXPECT_FALSE(s.pop());
  EXPECT_FALSE(s.closed());
}

// --- a running server ---------------------------------------------------------------------------

// Holds the executor at one preview until the test has looked (no sleeps: the job waits for us).
struct StepGate {
  std::mutex mutex;
  std::condition_variable cv;
  int64_t hold_at = 0;
  bool reached = false, released = false;
  server::Preview seen;

  void operator()(const server::Preview& p) {
    std::unique_lock lock(mutex);
    if (p.seq != hold_at) return;
    seen = p;
    reached = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(30), [&] { return released; });  // never hangs a failed test
  }
  bool wait_reached() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return reached; });
  }
  void release() {
    std::lock_guard lock(mutex);
    released = true;
    cv.notify_all();
  }
};

class PreviewServer : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("easel_previews_" + std::to_string(::getpid()));
    fs::remove_all(root);
    ASSERT_FALSE(testing::make_tiny_models_dir(root / "models").empty()) << "the set has no SD 1.x checkpoint";
  }
  void start(int preview_every, int hold_at) {
    gate.hold_at = hold_at;
    server::ServeOptions o = testing::test_serve_options(root);
    o.preview_every = preview_every;
    o.preview_time_share = 0;  // every preview, however slow next to the tiny model's steps
    o.after_preview = [this](const server::Preview& p) { gate(p); };
    app = std::make_unique<server::ServerApp>(o);
    const Status s = app->start();
    ASSERT_TRUE(s.ok()) << s.error().message();
    port = app->port();
  }
  void TearDown() override {
    gate.release();
    app.reset();
    fs::remove_all(root);
  }
  std::string submit_20_steps() {
    const json request = {{"prompt", "a red ball"}, {"steps", 20}, {"width", 48}, {"height", 32},
                          {"seed", 3}, {"sampler_name", "Euler"}};
    const auto res = http_request(port, "POST", "/easel/v1/jobs", json{{"kind", "txt2img"}, {"request", request}}.dump());
    EXPECT_EQ(res.status, 202) << res.body;
    return json::parse(res.body).value("id", "");
  }
  json get(const std::string& path) { return json::parse(http_request(port, "GET", path).body, nullptr, false); }
  json wait_done(const std::string& id) {
    json job;
    for (int i = 0; i < 4000; ++i) {
      job = get("/easel/v1/jobs/" + id);
      if (job.value("state", "") == "done" || job.value("state", "") == "failed") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return job;
  }

  fs::path root;
  StepGate gate;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

Image decode_b64(const json& value) {
  EXPECT_TRUE(value.is_string());
  if (!value.is_string()) return {};
  auto bytes = base64_decode(value.get<std::string>());
  EXPECT_TRUE(bytes.has_value());
  if (!bytes) return {};
  auto im = decode_image(*bytes, "current_image");
  EXPECT_TRUE(im.ok()) << im.error().message();
  return im.ok() ? *im : Image{};
}

TEST_F(PreviewServer, ProgressJobApiAndWebSocketCarryTheCheapPreview) {
  start(/*preview_every=*/1, /*hold_at=*/5);
  EventClient ws(port, /*websocket=*/true);
  EventClient sse(port, /*websocket=*/false);
  // Subscribed (its first message, the queue state, is in) before the job can publish anything.
  ASSERT_TRUE(sse.wait_for([](const std::vector<json>& ms) { return !ms.empty(); }));
  const std::string id = submit_20_steps();
  ASSERT_TRUE(gate.wait_reached()) << "no 5th preview";
  EXPECT_EQ(gate.seen.step, 5);
  EXPECT_EQ(gate.seen.steps, 20);
  EXPECT_EQ(gate.seen.method, "Approx cheap");

  // A1111 progress, held at step 5 of 20.
  const json progress = get("/sdapi/v1/progress");
  EXPECT_EQ(progress["state"]["sampling_step"], 5) << progress;
  const Image im = decode_b64(progress["current_image"]);
  EXPECT_EQ(im.width, 6);  // latent size: 48x32 / 8
  EXPECT_EQ(im.height, 4);
  const json skipped = get("/sdapi/v1/progress?skip_current_image=true");
  EXPECT_TRUE(skipped["current_image"].is_null()) << skipped;

  // The job API.
  const json job = get("/easel/v1/jobs/" + id);
  EXPECT_EQ(job["preview_seq"], 5) << job;
  EXPECT_EQ(job["preview_url"], "/easel/v1/jobs/" + id + "/preview");
  auto image = http_request(port, "GET", "/easel/v1/jobs/" + id + "/preview");
  EXPECT_EQ(image.status, 200);
  EXPECT_EQ(image.headers["Content-Type"], "image/jpeg");
  EXPECT_EQ(image.headers["X-Preview-Seq"], "5");
  EXPECT_TRUE(decode_image({reinterpret_cast<const uint8_t*>(image.body.data()), image.body.size()}, "preview").ok());
  EXPECT_EQ(http_request(port, "GET", "/easel/v1/jobs/ffffffffffffffff/preview").status, 404);

  // Events: a JSON preview event for everyone, and the image as a binary WebSocket frame.
  const auto has_preview_event = [&](const std::vector<json>& ms) {
    for (const auto& m : ms)
      if (m.value("type", "") == "preview" && m["job"] == id && m["seq"] == 5) return true;
    return false;
  };
  EXPECT_TRUE(sse.wait_for(has_preview_event));
  EXPECT_TRUE(ws.wait_for(has_preview_event));
  std::string frame;
  for (int i = 0; i < 4000 && frame.empty(); ++i) {
    for (const auto& f : ws.binary_frames())
      if (f.size() > 24 && f.substr(8, 16) == id) frame = f;
    if (frame.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(frame.empty()) << "no binary preview frame";
  EXPECT_EQ(frame.substr(0, 8), std::string("\0\0\0\1\0\0\0\1", 8));  // preview, JPEG
  auto decoded = decode_image({reinterpret_cast<const uint8_t*>(frame.data()) + 24, frame.size() - 24}, "frame");
  ASSERT_TRUE(decoded.ok()) << decoded.error().message();
  EXPECT_EQ(decoded->width, 6);

  gate.release();
  EXPECT_EQ(wait_done(id)["state"], "done");
  EXPECT_TRUE(get("/sdapi/v1/progress")["current_image"].is_null());  // nothing running
  EXPECT_EQ(get("/easel/v1/jobs/" + id)["preview_seq"], 20);
}

TEST_F(PreviewServer, TaesdFromVaeApproxFolder) {
  fs::create_directories(root / "models" / "VAE-approx");
  write_random_taesd_decoder(root / "models" / "VAE-approx" / "taesd_decoder.safetensors");
  start(/*preview_every=*/5, /*hold_at=*/2);  // previews at steps 5, 10, 15, 20
  const std::string id = submit_20_steps();
  ASSERT_TRUE(gate.wait_reached());
  EXPECT_EQ(gate.seen.step, 10);
  EXPECT_EQ(gate.seen.method, "TAESD");
  const Image im = decode_b64(get("/sdapi/v1/progress")["current_image"]);
  EXPECT_EQ(im.width, 48);
  EXPECT_EQ(im.height, 32);
  gate.release();
  EXPECT_EQ(wait_done(id)["state"], "done");
}

TEST_F(PreviewServer, PreviewEveryZeroMakesNone) {
  start(/*preview_every=*/0, /*hold_at=*/1);
  const std::string id = submit_20_steps();
  EXPECT_EQ(wait_done(id)["state"], "done");
  EXPECT_FALSE(get("/easel/v1/jobs/" + id).contains("preview_seq"));
  EXPECT_EQ(http_request(port, "GET", "/easel/v1/jobs/" + id + "/preview").status, 404);
}

TEST_F(PreviewServer, A1111OptionSetsThePeriod) {
  start(/*preview_every=*/1, /*hold_at=*/0);
  EXPECT_EQ(get("/sdapi/v1/options")["show_progress_every_n_steps"], 1);
  EXPECT_EQ(http_request(port, "POST", "/sdapi/v1/options", R"({"show_progress_every_n_steps": "x"})").status, 422);
  EXPECT_EQ(http_request(port, "POST", "/sdapi/v1/options", R"({"show_progress_every_n_steps": -1})").status, 200);
  EXPECT_EQ(get("/sdapi/v1/options")["show_progress_every_n_steps"], 0);
  std::string id = submit_20_steps();
  EXPECT_EQ(wait_done(id)["state"], "done");
  EXPECT_FALSE(get("/easel/v1/jobs/" + id).contains("preview_seq"));
  EXPECT_EQ(http_request(port, "POST", "/sdapi/v1/options", R"({"show_progress_every_n_steps": 10})").status, 200);
  id = submit_20_steps();
  EXPECT_EQ(wait_done(id)["state"], "done");
  EXPECT_EQ(get("/easel/v1/jobs/" + id)["preview_seq"], 2);  // steps 10 and 20
}

}  // namespace
}  // namespace easel
