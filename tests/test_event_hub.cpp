// The event hub and its per-client streams without a network: every client sees the job changes
// in order, one that stops reading is dropped when its queue is full while the others go on, and
// pings arrive on the timer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/event_hub.h"

namespace easel {
namespace {

using nlohmann::json;
using namespace server;

// Finishes every job at once.
class InstantRunner : public JobRunner {
 public:
  json run(const Job&, JobControl& control) override {
    JobProgress p;
    p.steps = 1;
    p.step = 1;
    p.stage = "sample";
    control.report(p);
    return {{"images", json::array()}, {"info", json::object()}};
  }
};

std::vector<json> drain(MessageStream& s) {
  std::vector<json> out;
  while (auto m = s.pop()) out.push_back(json::parse(*m));
  return out;
}

TEST(MessageStream, DropsAClientThatFallsTooFarBehind) {
  MessageStream s(3);
  int wakes = 0;
  s.set_waker([&] { ++wakes; });
  EXPECT_TRUE(s.push("1"));
  EXPECT_TRUE(s.push("2"));
  EXPECT_TRUE(s.push("3"));
  EXPECT_EQ(*s.pop(), "1");
  EXPECT_TRUE(s.push("4"));
  EXPECT_FALSE(s.push("5"));  // 4 queued > capacity 3: closed
  EXPECT_TRUE(s.closed());
  EXPECT_FALSE(s.pop());
  EXPECT_FALSE(s.push("6"));
  EXPECT_GE(wakes, 5);
}

TEST(EventHub, StreamsJobChangesAndDropsSlowClients) {
  InstantRunner runner;
  JobQueue queue(runner);
  EventHub hub(queue, std::chrono::milliseconds(20));
  auto reader = hub.subscribe();
  auto stalled = hub.subscribe();  // never read
  queue.start();

  std::map<std::string, std::vector<std::string>> states;
  std::vector<std::string> ids;
  for (int i = 0; i < 800; ++i) {  // 7 events each: over the stalled client's 4096
    // One job at a time, so the reader is never more than a few messages behind.
    ids.push_back(queue.submit("txt2img", json::object()));
    for (int tries = 0; tries < 1000 && queue.get(ids.back())->state != JobState::Done; ++tries)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    for (const auto& m : drain(*reader))
      if (m["type"] == "job") {
        auto& s = states[m["job"]["id"]];
        if (s.empty() || s.back() != m["job"]["state"]) s.push_back(m["job"]["state"]);
      }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a ping or two
  bool pinged = false;
  for (const auto& m : drain(*reader)) {
    pinged |= m["type"] == "ping";
    if (m["type"] == "job") {
      auto& s = states[m["job"]["id"]];
      if (s.empty() || s.back() != m["job"]["state"]) s.push_back(m["job"]["state"]);
    }
  }
  EXPECT_TRUE(pinged);
  EXPECT_FALSE(reader->closed());
  EXPECT_TRUE(stalled->closed()) << "a client that never reads must be dropped, not buffered";
  ASSERT_EQ(states.size(), ids.size());
  for (const auto& id : ids) EXPECT_EQ(states[id], (std::vector<std::string>{"queued", "running", "done"})) << id;
  queue.stop();
  hub.stop();
  EXPECT_TRUE(reader->closed());
}

}  // namespace
}  // namespace easel
