// Jobs of two kinds in one server, through one event stream: image generation (the real
// SdJobRunner on the tiny SD model of sd_pipeline_tiny) beside a token-job runner defined here
// ("test.echo": one text delta per step, stopping when cancelled). Both kinds are queued, run,
// cancelled (queued and running) and reported over Server-Sent Events and a WebSocket, the token
// job's text as "delta" events.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

#include "http_test_client.h"
#include "server/job_runner.h"
#include "server/server_app.h"
#include "server_test_support.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::EventClient;
using testing::http_request;

// {"steps": n, "step_ms": t}: step i writes "i " as a delta, t ms apart; the result is the whole text.
class EchoRunner : public server::JobRunner {
 public:
  std::vector<std::string> kinds() const override { return {"test.echo"}; }
  json run(const server::Job& job, server::JobControl& control) override {
    const int steps = job.request.value("steps", 1);
    const int step_ms = job.request.value("step_ms", 0);
    server::JobProgress progress;
    progress.stage = "generate";
    progress.images = 0;
    progress.steps = steps;
    std::string text;
    for (int i = 0; i < steps; ++i) {
      if (control.cancel) throw std::runtime_error("cancelled");
      const std::string piece = std::to_string(i) + " ";
      text += piece;
      control.text(piece);
      progress.step = i + 1;
      control.report(progress);
      std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
    }
    return {{"text", text}};
  }
};

json image_request(const std::string& prompt) {
  return {{"prompt", prompt}, {"steps", 2}, {"width", 32}, {"height", 32}, {"seed", 5}, {"sampler_name", "Euler"}};
}

class JobKindsServer : public ::testing::Test {
 public:
  void SetUp() override {
    root = fs::temp_directory_path() / ("easel_job_kinds_" + std::to_string(::getpid()));
    fs::remove_all(root);
    ASSERT_FALSE(testing::make_tiny_models_dir(root / "models").empty()) << "the set has no SD 1.x checkpoint";
    server::ServeOptions options = testing::test_serve_options(root);
    options.more_runners.push_back([](Runtime&) { return std::make_unique<EchoRunner>(); });
    app = std::make_unique<server::ServerApp>(options);
    const Status s = app->start();
    ASSERT_TRUE(s.ok()) << s.error().message();
    port = app->port();
  }
  void TearDown() override {
    app.reset();
    fs::remove_all(root);
  }

  std::string submit(const std::string& kind, const json& request) {
    const auto res = http_request(port, "POST", "/easel/v1/jobs", json{{"kind", kind}, {"request", request}}.dump());
    EXPECT_EQ(res.status, 202) << res.body;
    return json::parse(res.body, nullptr, false).value("id", "");
  }
  json get(const std::string& id) { return json::parse(http_request(port, "GET", "/easel/v1/jobs/" + id).body, nullptr, false); }
  int cancel(const std::string& id) { return http_request(port, "DELETE", "/easel/v1/jobs/" + id).status; }
  void wait_state(const std::string& id, const std::string& state) {
    for (int i = 0; i < 4000; ++i) {
      if (get(id).value("state", "") == state) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << "job " << id << " never " << state << ": " << get(id).dump();
  }

  fs::path root;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

// The text deltas of a job, in order, and whether any came after the job's last "job" event.
struct Deltas {
  std::string text;
  bool after_end = false;
};
Deltas deltas_of(const std::vector<json>& messages, const std::string& id) {
  Deltas d;
  bool ended = false;
  for (const auto& m : messages) {
    if (m["type"] == "delta" && m["job"] == id) {
      d.text += m["text"].get<std::string>();
      d.after_end |= ended;
    }
    if (m["type"] == "job" && m["job"]["id"] == id) {
      const std::string state = m["job"]["state"];
      ended = state == "done" || state == "failed" || state == "cancelled";
    }
  }
  return d;
}

void both_kinds_through_one_stream(JobKindsServer& t, EventClient& events) {
  ASSERT_TRUE(events.wait_for([](const std::vector<json>& ms) { return !ms.empty(); }));
  // An image job holds the executor while the others queue behind it.
  const std::string image_running =
      t.submit("txt2img", {{"prompt", "held"}, {"steps", 500}, {"batch_size", 4}, {"width", 256}, {"height", 256}});
  t.wait_state(image_running, "running");
  const std::string echo_queued = t.submit("test.echo", {{"steps", 3}});
  const std::string echo_running = t.submit("test.echo", {{"steps", 100000}, {"step_ms", 2}});
  const std::string image_queued = t.submit("txt2img", image_request("never runs"));
  const std::string image = t.submit("txt2img", image_request("runs"));
  const std::string echo = t.submit("test.echo", {{"steps", 5}});

  EXPECT_EQ(t.cancel(echo_queued), 200);
  EXPECT_EQ(t.cancel(image_queued), 200);
  EXPECT_EQ(t.cancel(image_running), 202);
  // The long token job runs once the image job stops; it is cancelled after its first deltas.
  ASSERT_TRUE(events.wait_for([&](const std::vector<json>& ms) { return !deltas_of(ms, echo_running).text.empty(); }))
      << json(events.messages()).dump();
  EXPECT_EQ(t.cancel(echo_running), 202);
  t.wait_state(echo, "done");
  t.wait_state(image, "done");
  ASSERT_TRUE(events.wait_for([&](const std::vector<json>&) {
    const auto s = events.states_of(echo);
    return !s.empty() && s.back() == "done";
  })) << json(events.messages()).dump();

  const std::vector<std::string> ran = {"queued", "running", "done"}, stopped = {"queued", "running", "cancelled"},
                                 dropped = {"queued", "cancelled"};
  EXPECT_EQ(events.states_of(image_running), stopped);
  EXPECT_EQ(events.states_of(echo_queued), dropped);
  EXPECT_EQ(events.states_of(echo_running), stopped);
  EXPECT_EQ(events.states_of(image_queued), dropped);
  EXPECT_EQ(events.states_of(image), ran);
  EXPECT_EQ(events.states_of(echo), ran);

  const auto messages = events.messages();
  std::map<std::string, std::string> kinds;
  bool image_sampled = false, echo_stepped = false;
  for (const auto& m : messages) {
    if (m["type"] != "job") continue;
    kinds[m["job"]["id"]] = m["job"]["kind"];
    const json& p = m["job"]["progress"];
    image_sampled |= m["job"]["id"] == image && p["stage"] == "sample" && p["steps"] == 2;
    echo_stepped |= m["job"]["id"] == echo && p["stage"] == "generate" && p["steps"] == 5;
  }
  for (const auto& id : {image_running, image_queued, image}) EXPECT_EQ(kinds[id], "txt2img") << id;
  for (const auto& id : {echo_queued, echo_running, echo}) EXPECT_EQ(kinds[id], "test.echo") << id;
  EXPECT_TRUE(image_sampled) << "no step progress for the image job";
  EXPECT_TRUE(echo_stepped) << "no step progress for the token job";

  // Every delta of the token job, in order and before its end: the text its result holds.
  const Deltas done = deltas_of(messages, echo);
  EXPECT_EQ(done.text, "0 1 2 3 4 ");
  EXPECT_FALSE(done.after_end);
  EXPECT_EQ(t.get(echo)["result"]["text"], done.text) << "the job's result is the text of its deltas";
  const Deltas cancelled = deltas_of(messages, echo_running);
  EXPECT_FALSE(cancelled.text.empty());
  std::string counted;  // "0 1 ... k-1 ": the steps it ran before it stopped, every one
  while (counted.size() < cancelled.text.size()) counted += std::to_string(std::count(counted.begin(), counted.end(), ' ')) + " ";
  EXPECT_EQ(cancelled.text, counted);
  EXPECT_FALSE(cancelled.after_end);
  EXPECT_TRUE(deltas_of(messages, echo_queued).text.empty()) << "a job cancelled while queued never ran";
  for (const auto& id : {image_running, image_queued, image}) EXPECT_TRUE(deltas_of(messages, id).text.empty());
}

TEST_F(JobKindsServer, BothKindsThroughServerSentEvents) {
  EventClient events(port, false);
  both_kinds_through_one_stream(*this, events);
}

TEST_F(JobKindsServer, BothKindsThroughAWebSocket) {
  EventClient events(port, true);
  both_kinds_through_one_stream(*this, events);
}

TEST_F(JobKindsServer, AKindNoRunnerRunsIsRefusedAndNothingQueued) {
  const auto res = http_request(port, "POST", "/easel/v1/jobs", json{{"kind", "chat"}, {"request", json::object()}}.dump());
  EXPECT_EQ(res.status, 422) << res.body;
  EXPECT_NE(res.body.find("txt2img"), std::string::npos) << "the answer lists the kinds the server runs: " << res.body;
  EXPECT_NE(res.body.find("test.echo"), std::string::npos) << res.body;
  const json list = json::parse(http_request(port, "GET", "/easel/v1/jobs").body);
  EXPECT_EQ(list["total"], 0);
}

}  // namespace
}  // namespace easel
