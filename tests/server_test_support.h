// Shared by the server tests: a models folder with the tiny SD 1.x checkpoint of
// sd_pipeline_tiny, and a client that collects the server's job events (SSE or WebSocket).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "server/server_app.h"
#include "test_data.h"

namespace easel::testing {

// The `.easel.json` sidecar of one model of sd_pipeline_tiny's info.json: what its shapes do not
// show (head and group counts) and what it predicts.
inline nlohmann::json sd_sidecar(const nlohmann::json& model) {
  nlohmann::json sidecar = {{"text_encoder_heads", model["text_encoder"]["heads"]},
                            {"unet", {{"norm_groups", model["unet"]["norm_groups"]}}},
                            {"vae_norm_groups", model["vae"]["norm_groups"]}};
  const nlohmann::json& att = model["unet"]["attention"];
  if (!att["num_heads"].is_null()) sidecar["unet"]["num_heads"] = att["num_heads"];
  else sidecar["unet"]["head_dim"] = att["head_dim"];
  if (model.value("prediction_type", "") == "v") sidecar["prediction"] = "v";
  return sidecar;
}

// Copies the set's first SD 1.x text-to-image checkpoint into <models>/Stable-diffusion with the
// sidecar that gives the head counts its shapes do not show; returns its file name ("" if none).
inline std::string make_tiny_models_dir(const std::filesystem::path& models) {
  namespace fs = std::filesystem;
  const fs::path set = set_dir("sd_pipeline_tiny");
  std::ifstream in(set / "info.json");
  const nlohmann::json info = nlohmann::json::parse(in);
  fs::create_directories(models / "Stable-diffusion");
  for (const auto& [file, model] : info["models"].items()) {
    if (model["family"] != "sd1" || model["unet"]["diffusers_config"]["in_channels"] != 4 ||
        !fs::is_regular_file(set / file))
      continue;
    fs::copy_file(set / file, models / "Stable-diffusion" / file, fs::copy_options::overwrite_existing);
    std::ofstream(models / "Stable-diffusion" / (file + ".easel.json")) << sd_sidecar(model).dump();
    return file;
  }
  return "";
}

// An init image of sd_pipeline_tiny: that of the set's first case with one ("" if none).
inline std::filesystem::path first_init_image() {
  const std::filesystem::path set = set_dir("sd_pipeline_tiny");
  std::ifstream in(set / "cases.json");
  const nlohmann::json cases = nlohmann::json::parse(in)["cases"];
  for (const auto& [name, c] : cases.items())
    if (c["request"].contains("init_images")) return set / c["request"]["init_images"][0].get<std::string>();
  return {};
}

// A server under `root` (models, outputs, data) on any free port, one compute thread, 1 MiB bodies.
inline server::ServeOptions test_serve_options(const std::filesystem::path& root) {
  server::ServeOptions o;
  o.port = 0;
  o.threads = 1;
  o.models_dir = root / "models";
  o.outputs_dir = root / "outputs";
  o.data_dir = root / "data";
  o.max_body_bytes = 1 << 20;
  return o;
}

// Reads /easel/v1/events (Server-Sent Events) or /easel/v1/ws (WebSocket) on its own thread and
// keeps every JSON message it receives.
class EventClient {
 public:
  EventClient(int port, bool websocket) : stream_(io_), ws_(io_) {
    namespace http = boost::beast::http;
    boost::asio::ip::tcp::resolver resolver(io_);
    const auto endpoints = resolver.resolve("127.0.0.1", std::to_string(port));
    if (websocket) {
      boost::beast::get_lowest_layer(ws_).connect(endpoints);
      ws_.handshake("127.0.0.1", "/easel/v1/ws");
      websocket_ = true;
      read_ws();
    } else {
      stream_.connect(endpoints);
      http::request<http::empty_body> req(http::verb::get, "/easel/v1/events", 11);
      req.set(http::field::host, "127.0.0.1");
      http::write(stream_, req);
      read_sse();
    }
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EventClient() {
    boost::asio::post(io_, [this] {
      boost::beast::error_code ec;
      if (websocket_) boost::beast::get_lowest_layer(ws_).socket().close(ec);
      else stream_.socket().close(ec);
    });
    thread_.join();
  }

  std::vector<nlohmann::json> messages() {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  bool closed() {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  // The binary WebSocket frames (live previews), as received.
  std::vector<std::string> binary_frames() {
    std::lock_guard lock(mutex_);
    return binary_;
  }
  bool wait_for(const std::function<bool(const std::vector<nlohmann::json>&)>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (done(messages())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done(messages());
  }
  // The states one job went through, in order, without repeats (progress events repeat them).
  std::vector<std::string> states_of(const std::string& id) {
    std::vector<std::string> states;
    for (const auto& m : messages())
      if (m.value("type", "") == "job" && m["job"]["id"] == id) {
        const std::string s = m["job"]["state"];
        if (states.empty() || states.back() != s) states.push_back(s);
      }
    return states;
  }

 private:
  void add(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    std::lock_guard lock(mutex_);
    messages_.push_back(j.is_discarded() ? nlohmann::json{{"type", "unparsable"}, {"text", text}} : j);
  }
  void read_ws() {
    ws_.async_read(ws_buffer_, [this](boost::beast::error_code ec, size_t) {
      if (ec) {
        std::lock_guard lock(mutex_);
        closed_ = true;
        return;
      }
      if (ws_.got_binary()) {
        std::lock_guard lock(mutex_);
        binary_.push_back(boost::beast::buffers_to_string(ws_buffer_.data()));
      } else {
        add(boost::beast::buffers_to_string(ws_buffer_.data()));
      }
      ws_buffer_.clear();
      read_ws();
    });
  }
  void read_sse() {
    stream_.async_read_some(boost::asio::buffer(chunk_), [this](boost::beast::error_code ec, size_t n) {
      if (ec) {
        std::lock_guard lock(mutex_);
        closed_ = true;
        return;
      }
      sse_.append(chunk_.data(), n);
      // Skip the HTTP header, then take every complete "data: ...\n\n" event.
      if (!header_done_) {
        const size_t end = sse_.find("\r\n\r\n");
        if (end == std::string::npos) return read_sse();
        header_done_ = true;
        sse_.erase(0, end + 4);
      }
      for (size_t end; (end = sse_.find("\n\n")) != std::string::npos;) {
        const std::string event = sse_.substr(0, end);
        sse_.erase(0, end + 2);
        if (event.rfind("data: ", 0) == 0) add(event.substr(6));
      }
      read_sse();
    });
  }

  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  bool websocket_ = false;
  boost::beast::flat_buffer ws_buffer_;
  std::array<char, 4096> chunk_{};
  std::string sse_;
  bool header_done_ = false;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<nlohmann::json> messages_;
  std::vector<std::string> binary_;
  bool closed_ = false;
};

}  // namespace easel::testing
