// easel's native job API, events and persistence against running servers on the tiny SD model of
// sd_pipeline_tiny: submit / list / get / cancel, priority order, SSE and WebSocket events,
// /outputs without path traversal, a restart mid-queue, and many clients at once.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "http_test_client.h"
#include "io/base64.h"
#include "io/image.h"
#include "server/job_queue.h"
#include "server/job_store_sqlite.h"
#include "server/server_app.h"
#include "server_test_support.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::EventClient;
using testing::http_request;

// 2 steps at 48x32: a job takes milliseconds on the tiny model.
json tiny_request(const std::string& prompt, int steps = 2) {
  return {{"prompt", prompt}, {"steps", steps}, {"width", 48}, {"height", 32}, {"seed", 11}, {"sampler_name", "Euler"}};
}

class JobsServer : public ::testing::Test {
 public:
  void SetUp() override {
    root = fs::temp_directory_path() / ("easel_jobs_" + std::to_string(::getpid()));
    fs::remove_all(root);
    ASSERT_FALSE(testing::make_tiny_models_dir(root / "models").empty()) << "the set has no SD 1.x checkpoint";
    start();
  }
  void TearDown() override {
    app.reset();
    fs::remove_all(root);
  }
  server::ServeOptions options() const { return testing::test_serve_options(root); }
  void start() {
    app = std::make_unique<server::ServerApp>(options());
    const Status s = app->start();
    ASSERT_TRUE(s.ok()) << s.error().message();
    port = app->port();
  }

  json get(const std::string& path) {
    const auto res = http_request(port, "GET", path);
    EXPECT_EQ(res.status, 200) << path << " -> " << res.body;
    return json::parse(res.body, nullptr, false);
  }
  std::string submit(const json& request, int priority = 0, const std::string& kind = "txt2img") {
    const auto res = http_request(port, "POST", "/easel/v1/jobs",
                                  json{{"kind", kind}, {"request", request}, {"priority", priority}}.dump());
    EXPECT_EQ(res.status, 202) << res.body;
    return json::parse(res.body).value("id", "");
  }
  // Polls the job until `state` (or any finished state when empty); returns its last JSON.
  json wait_job(const std::string& id, const std::string& state = "", int seconds = 20) {
    json job;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      job = get("/easel/v1/jobs/" + id);
      if (!job.is_object() || !job.contains("state")) break;  // unknown job: get() reported it
      const std::string s = job.value("state", "");
      if (state.empty() ? (s == "done" || s == "failed" || s == "cancelled") : s == state) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << "job " << id << " did not reach " << (state.empty() ? "the end" : state) << ": " << job.dump();
    return job;
  }
  // A job that runs long enough to hold the executor while a test queues others; cancelled at the end.
  std::string blocker() {
    const std::string id =
        submit({{"prompt", "blocker"}, {"steps", 500}, {"batch_size", 4}, {"width", 256}, {"height", 256}});
    wait_job(id, "running");
    return id;
  }
  size_t output_files() const {
    size_t n = 0;
    if (fs::is_directory(root / "outputs"))
      for (const auto& e : fs::recursive_directory_iterator(root / "outputs")) n += e.path().extension() == ".png";
    return n;
  }

  fs::path root;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

TEST_F(JobsServer, SubmitGetListAndFetchTheImage) {
  const auto res = http_request(port, "POST", "/easel/v1/jobs",
                                json{{"kind", "txt2img"}, {"request", tiny_request("a red ball")}}.dump());
  ASSERT_EQ(res.status, 202) << res.body;
  const json accepted = json::parse(res.body);
  const std::string id = accepted["id"];
  EXPECT_TRUE(accepted["state"] == "queued" || accepted["state"] == "running") << accepted;

  const json job = wait_job(id);
  ASSERT_EQ(job["state"], "done") << job;
  EXPECT_EQ(job["kind"], "txt2img");
  EXPECT_EQ(job["request"]["prompt"], "a red ball");
  EXPECT_LE(job["created_ms"].get<int64_t>(), job["started_ms"].get<int64_t>());
  EXPECT_LE(job["started_ms"].get<int64_t>(), job["finished_ms"].get<int64_t>());
  EXPECT_EQ(job["result"]["info"]["seed"], 11);
  ASSERT_EQ(job["result"]["images"].size(), 1u);
  const std::string url = job["result"]["images"][0];
  ASSERT_EQ(url.rfind("/outputs/", 0), 0u) << url;
  const auto png = http_request(port, "GET", url);
  ASSERT_EQ(png.status, 200);
  EXPECT_EQ(png.headers.at("Content-Type"), "image/png");
  auto image = decode_image({reinterpret_cast<const uint8_t*>(png.body.data()), png.body.size()}, "png");
  ASSERT_TRUE(image.ok()) << image.error().message();
  EXPECT_EQ(image->width, 48);
  EXPECT_EQ(image->height, 32);

  // img2img with a base64 upload; the stored file's path is not shown back.
  std::ifstream in(testing::first_init_image(), std::ios::binary);
  const std::string init((std::istreambuf_iterator<char>(in)), {});
  json req = tiny_request("a blue ball");
  const auto init_image = read_image(testing::first_init_image()).value();
  req["width"] = init_image.width;
  req["height"] = init_image.height;
  req["init_images"] = {base64_encode({reinterpret_cast<const uint8_t*>(init.data()), init.size()})};
  const json i2i = wait_job(submit(req, 0, "img2img"));
  EXPECT_EQ(i2i["state"], "done") << i2i;
  EXPECT_FALSE(i2i["request"].contains("init_image_files"));

  // Listing: newest first, filters.
  const json all = get("/easel/v1/jobs")["jobs"];
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]["id"], i2i["id"]);
  EXPECT_EQ(all[1]["id"], id);
  const json limited = get("/easel/v1/jobs?limit=1");
  EXPECT_EQ(limited["jobs"].size(), 1u);
  EXPECT_EQ(limited["total"], 2);
  EXPECT_EQ(get("/easel/v1/jobs?state=done")["jobs"].size(), 2u);
  EXPECT_EQ(get("/easel/v1/jobs?state=queued")["jobs"].size(), 0u);
  const json red = get("/easel/v1/jobs?q=RED%20ball")["jobs"];
  ASSERT_EQ(red.size(), 1u);
  EXPECT_EQ(red[0]["id"], id);
  EXPECT_EQ(get("/easel/v1/jobs?q=zebra")["jobs"].size(), 0u);

  // Bad requests get JSON errors.
  auto expect = [&](const std::string& method, const std::string& path, const std::string& body, int status) {
    const auto r = http_request(port, method, path, body);
    EXPECT_EQ(r.status, status) << method << " " << path << " " << body << " -> " << r.body;
    EXPECT_FALSE(json::parse(r.body, nullptr, false).is_discarded()) << r.body;
  };
  expect("POST", "/easel/v1/jobs", "{oops", 422);
  expect("POST", "/easel/v1/jobs", R"({"kind": "upscale", "request": {}})", 422);
  expect("POST", "/easel/v1/jobs", R"({"request": {"width": 50}})", 422);
  expect("POST", "/easel/v1/jobs", R"({"request": {}, "priority": "high"})", 422);
  expect("POST", "/easel/v1/jobs", R"({"kind": "img2img", "request": {}})", 422);
  expect("GET", "/easel/v1/jobs/0123456789abcdef", "", 404);
  expect("GET", "/easel/v1/jobs?state=sleeping", "", 400);
  expect("GET", "/easel/v1/jobs?limit=-3", "", 400);
  expect("GET", "/easel/v1/ws", "", 426);
}

TEST_F(JobsServer, CancelsQueuedAndRunningJobs) {
  const std::string running = blocker();
  const std::string queued = submit(tiny_request("waiting"));
  EXPECT_EQ(get("/easel/v1/jobs/" + queued)["queue_position"], 0);

  auto del = [&](const std::string& id) { return http_request(port, "DELETE", "/easel/v1/jobs/" + id); };
  auto r = del(queued);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["state"], "cancelled");
  EXPECT_EQ(del(queued).status, 409);
  EXPECT_EQ(del("ffffffffffffffff").status, 404);

  r = del(running);
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(wait_job(running)["state"], "cancelled");
  EXPECT_EQ(del(running).status, 409);
  EXPECT_EQ(get("/easel/v1/jobs/" + queued)["state"], "cancelled");  // never ran
  EXPECT_EQ(output_files(), 0u);
}

// DELETE says what it did, not the state the job reaches by the time the answer is written: a
// running job that stops at its very next step still answers 202 (cancel requested).
TEST_F(JobsServer, CancellingARunningJobAnswers202EvenWhenItStopsAtOnce) {
  for (int i = 0; i < 5; ++i) {
    const std::string id = submit(tiny_request("stops at once", 400));
    wait_job(id, "running");
    const auto r = http_request(port, "DELETE", "/easel/v1/jobs/" + id);
    EXPECT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(json::parse(r.body, nullptr, false).value("cancel_requested", false), true) << r.body;
    EXPECT_EQ(wait_job(id)["state"], "cancelled");
  }
}

TEST_F(JobsServer, HigherPriorityRunsFirst) {
  EventClient events(port, false);
  const std::string hold = blocker();
  const std::string low = submit(tiny_request("low"), 0);
  const std::string high = submit(tiny_request("high"), 5);
  const std::string mid = submit(tiny_request("mid"), 1);
  EXPECT_EQ(get("/easel/v1/jobs/" + high)["queue_position"], 0);
  EXPECT_EQ(get("/easel/v1/jobs/" + mid)["queue_position"], 1);
  EXPECT_EQ(get("/easel/v1/jobs/" + low)["queue_position"], 2);
  ASSERT_EQ(http_request(port, "DELETE", "/easel/v1/jobs/" + hold).status, 202);
  for (const auto& id : {low, high, mid}) EXPECT_EQ(wait_job(id)["state"], "done");

  std::vector<std::string> started;
  ASSERT_TRUE(events.wait_for([&](const std::vector<json>& ms) {
    started.clear();
    for (const auto& m : ms)
      if (m["type"] == "job" && m["job"]["state"] == "running" && m["job"]["progress"]["stage"] == "starting")
        started.push_back(m["job"]["id"]);
    return started.size() >= 4;
  }));
  EXPECT_EQ(started, (std::vector<std::string>{hold, high, mid, low}));
}

void expect_events_follow_a_job(JobsServer& t, EventClient& events) {
  // The stream opens with the queue's state.
  ASSERT_TRUE(events.wait_for([](const std::vector<json>& ms) { return !ms.empty(); }));
  EXPECT_EQ(events.messages()[0]["type"], "queue");
  const std::string id = t.submit(tiny_request("watched"));
  ASSERT_TRUE(events.wait_for([&](const std::vector<json>&) {
    const auto s = events.states_of(id);
    return !s.empty() && s.back() == "done";
  })) << json(events.messages()).dump();
  EXPECT_EQ(events.states_of(id), (std::vector<std::string>{"queued", "running", "done"}));
  bool sampled = false, queue_update = false;
  for (const auto& m : events.messages()) {
    if (m["type"] == "job" && m["job"]["id"] == id && m["job"]["progress"]["stage"] == "sample") {
      sampled = true;
      EXPECT_EQ(m["job"]["progress"]["steps"], 2);
      EXPECT_EQ(m["job"]["kind"], "txt2img");
    }
    queue_update |= m["type"] == "queue" && m["running"] == id;
  }
  EXPECT_TRUE(sampled) << "no progress event for the sampling steps";
  EXPECT_TRUE(queue_update) << "no queue event naming the running job: " << json(events.messages()).dump();
}

TEST_F(JobsServer, ServerSentEventsFollowAJob) {
  EventClient events(port, false);
  expect_events_follow_a_job(*this, events);
}

TEST_F(JobsServer, WebSocketFollowsAJob) {
  EventClient events(port, true);
  expect_events_follow_a_job(*this, events);
}

TEST_F(JobsServer, EventStreamsEndWhenTheServerStops) {
  EventClient sse(port, false), ws(port, true);
  ASSERT_TRUE(sse.wait_for([](const auto& ms) { return !ms.empty(); }));
  ASSERT_TRUE(ws.wait_for([](const auto& ms) { return !ms.empty(); }));
  app.reset();
  EXPECT_TRUE(sse.wait_for([&](const auto&) { return sse.closed(); }, std::chrono::seconds(5)));
  EXPECT_TRUE(ws.wait_for([&](const auto&) { return ws.closed(); }, std::chrono::seconds(5)));
}

TEST_F(JobsServer, OutputsServesImagesOnlyFromTheOutputsFolder) {
  const std::string id = submit(tiny_request("served"));
  const std::string url = wait_job(id)["result"]["images"][0];
  EXPECT_EQ(http_request(port, "GET", url).status, 200);
  // A file outside the folder, and links to it from inside.
  std::ofstream(root / "secret.png") << "not for clients";
  fs::create_symlink(root / "secret.png", root / "outputs" / "escape.png");
  fs::create_directory_symlink(root, root / "outputs" / "up");
  fs::create_symlink(fs::path(root / "outputs") / url.substr(9), root / "outputs" / "inside.png");
  std::ofstream(root / "outputs" / "notes.txt") << "text";

  auto status = [&](const std::string& path) {
    const auto r = http_request(port, "GET", path);
    EXPECT_FALSE(json::parse(r.body, nullptr, false).is_discarded() && r.status != 200) << path << " -> " << r.body;
    return r.status;
  };
  EXPECT_EQ(status("/outputs/../secret.png"), 400);
  EXPECT_EQ(status("/outputs/%2e%2e/secret.png"), 400);
  EXPECT_EQ(status("/outputs/a/../../secret.png"), 400);
  EXPECT_EQ(status("/outputs/%2fetc%2fpasswd"), 404);  // "//etc/passwd" is relative to the folder: no such image
  EXPECT_EQ(status("/outputs/escape.png"), 404);
  EXPECT_EQ(status("/outputs/up/secret.png"), 404);
  EXPECT_EQ(status("/outputs/notes.txt"), 404);
  EXPECT_EQ(status("/outputs/missing.png"), 404);
  EXPECT_EQ(status("/outputs/inside.png"), 200);  // a link that stays inside is fine
}

TEST_F(JobsServer, RestartKeepsTheHistoryAndFinishesEveryJobOnce) {
  const std::string first = submit(tiny_request("before the restart"));
  const json first_done = wait_job(first);
  ASSERT_EQ(first_done["state"], "done");
  // One long job running, two queued behind it, when the server stops.
  const std::string slow = submit({{"prompt", "slow"}, {"steps", 60}, {"width", 128}, {"height", 128}, {"seed", 3}});
  const std::string a = submit(tiny_request("queued a"));
  const std::string b = submit(tiny_request("queued b"), 1);
  wait_job(slow, "running");
  app.reset();

  const int64_t restarted_ms = server::unix_ms();
  start();
  EventClient events(port, false);
  for (const auto& id : {slow, a, b}) EXPECT_EQ(wait_job(id, "", 60)["state"], "done") << id;
  // The job stopped midway ran again from the start on the new server.
  EXPECT_GE(get("/easel/v1/jobs/" + slow)["started_ms"].get<int64_t>(), restarted_ms);
  const json jobs = get("/easel/v1/jobs")["jobs"];
  ASSERT_EQ(jobs.size(), 4u);
  EXPECT_EQ(jobs[3]["id"], first);  // newest first: the order survives
  const json first_again = get("/easel/v1/jobs/" + first);
  EXPECT_EQ(first_again["finished_ms"], first_done["finished_ms"]);  // not run again
  EXPECT_EQ(first_again["result"], first_done["result"]);
  EXPECT_EQ(output_files(), 4u);  // one image per job: none ran twice to the end
  // And a third server still sees four finished jobs.
  app.reset();
  start();
  EXPECT_EQ(get("/easel/v1/jobs?state=done")["jobs"].size(), 4u);
}

TEST_F(JobsServer, FiftyJobsFromTenClientsWhileFiftyPollProgress) {
  EventClient events(port, false);
  ASSERT_TRUE(events.wait_for([](const auto& ms) { return !ms.empty(); }));
  std::atomic<bool> polling{true};
  std::atomic<int> polls{0}, poll_errors{0};
  std::vector<std::thread> pollers;
  for (int i = 0; i < 50; ++i)
    pollers.emplace_back([&] {
      while (polling) {
        if (http_request(port, "GET", "/sdapi/v1/progress").status == 200) ++polls;
        else ++poll_errors;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  std::mutex ids_mutex;
  std::vector<std::string> native_ids;
  std::atomic<int> sdapi_ok{0}, failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 10; ++c)
    clients.emplace_back([&, c] {
      for (int j = 0; j < 5; ++j) {
        const json req = tiny_request("client " + std::to_string(c) + " job " + std::to_string(j));
        if (j % 2 == 0) {  // the A1111 way: the answer carries the image
          const auto r = http_request(port, "POST", "/sdapi/v1/txt2img", req.dump());
          if (r.status == 200 && json::parse(r.body)["images"].size() == 1) ++sdapi_ok;
          else ++failures;
        } else {
          const auto r = http_request(port, "POST", "/easel/v1/jobs", json{{"request", req}}.dump());
          if (r.status != 202) {
            ++failures;
            continue;
          }
          std::lock_guard lock(ids_mutex);
          native_ids.push_back(json::parse(r.body)["id"]);
        }
      }
    });
  for (auto& t : clients) t.join();
  for (const auto& id : native_ids) EXPECT_EQ(wait_job(id)["state"], "done");
  polling = false;
  for (auto& t : pollers) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(sdapi_ok, 30);
  EXPECT_EQ(native_ids.size(), 20u);
  EXPECT_EQ(poll_errors, 0);
  EXPECT_GT(polls, 50);

  const json jobs = get("/easel/v1/jobs?limit=1000")["jobs"];
  ASSERT_EQ(jobs.size(), 50u);
  for (const auto& j : jobs) EXPECT_EQ(j["state"], "done") << j["id"];
  EXPECT_EQ(output_files(), 50u);
  // Every job finished exactly once, as the event stream saw it.
  std::map<std::string, int> done;
  ASSERT_TRUE(events.wait_for([&](const std::vector<json>& ms) {
    done.clear();
    for (const auto& m : ms)
      if (m["type"] == "job" && m["job"]["state"] == "done") ++done[m["job"]["id"]];
    return done.size() >= 50;
  }));
  EXPECT_EQ(done.size(), 50u);
  for (const auto& [id, n] : done) EXPECT_EQ(n, 1) << id;
}

TEST_F(JobsServer, UnusableDataFolderIsAClearErrorAtStart) {
  app.reset();
  std::ofstream(root / "a-file") << "x";
  server::ServeOptions o = options();
  o.data_dir = root / "a-file" / "data";
  server::ServerApp blocked(o);
  Status s = blocked.start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("data folder"), std::string::npos) << s.error().message();

  fs::create_directories(root / "bad");
  std::ofstream(root / "bad" / "easel.db") << std::string(4096, 'z');
  o.data_dir = root / "bad";
  server::ServerApp corrupt(o);
  s = corrupt.start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("move it away"), std::string::npos) << s.error().message();

  // An empty file: refused, and left as it is (the server never deletes a user's history).
  fs::create_directories(root / "empty");
  std::ofstream(root / "empty" / "easel.db").flush();
  o.data_dir = root / "empty";
  server::ServerApp empty(o);
  s = empty.start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("empty (0 bytes)"), std::string::npos) << s.error().message();
  EXPECT_TRUE(fs::exists(root / "empty" / "easel.db"));

  // A read-only history: refused at start rather than accepting jobs it cannot keep.
  o.data_dir = root / "readonly";
  { ASSERT_TRUE(server::SqliteJobStore::open(o.data_dir).ok()); }
  fs::permissions(o.data_dir / "easel.db", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  server::ServerApp readonly(o);
  s = readonly.start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("easel.db is read-only"), std::string::npos) << s.error().message();
}

// A job the history cannot record is refused (503), never accepted (202) and then forgotten.
TEST_F(JobsServer, AJobTheHistoryCannotWriteIsRefused) {
  // Another process holds the database's write lock past the server's busy timeout.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((root / "data" / "easel.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  testing::HttpResult native, sdapi;
  std::thread a([&] {
    native = http_request(port, "POST", "/easel/v1/jobs", json{{"request", tiny_request("lost")}}.dump());
  });
  std::thread b([&] { sdapi = http_request(port, "POST", "/sdapi/v1/txt2img", tiny_request("lost too").dump()); });
  a.join();
  b.join();
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  for (const auto* r : {&native, &sdapi}) {
    EXPECT_EQ(r->status, 503) << r->body;
    const json body = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << r->body;
    EXPECT_NE(body.dump().find("the job history cannot be written"), std::string::npos) << r->body;
  }
  EXPECT_EQ(get("/easel/v1/jobs")["total"], 0) << "nothing was queued";
  EXPECT_EQ(output_files(), 0u);
  // Once the history can be written again, jobs are accepted again.
  EXPECT_EQ(wait_job(submit(tiny_request("kept")))["state"], "done");
}

}  // namespace
}  // namespace easel
