// The event hub and its per-client streams without a network: every client sees the job changes
// in order, one that stops reading is dropped when its queue is full while the others go on, and
// pings arrive on the timer. Progress is coalesced: at most one event per step, none repeated, and
// a client that reads nothing gets the state changes and the latest state, not every step.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/event_hub.h"

namespace easel {
namespace {

using nlohmann::json;
using namespace server;

// Finishes every job at once.
class InstantRunner : public JobRunner {
 public:
  std::vector<std::string> kinds() const override { return {"txt2img"}; }
  json run(const Job&, JobControl& control) override {
    JobProgress p;
    p.steps = 1;
    p.step = 1;
    p.stage = "sample";
    control.report(p);
    return {{"images", json::array()}, {"info", json::object()}};
  }
};

// Reports each of `steps` sampler steps `repeats` times, as the engine does (once per stage of a
// step), sleeping `step_time` per step.
class SteppingRunner : public JobRunner {
 public:
  SteppingRunner(int steps, int repeats, std::chrono::microseconds step_time)
      : steps_(steps), repeats_(repeats), step_time_(step_time) {}
  std::vector<std::string> kinds() const override { return {"txt2img"}; }
  json run(const Job&, JobControl& control) override {
    JobProgress p;
    p.stage = "text";
    control.report(p);
    p.stage = "sample";
    p.steps = steps_;
    for (int step = 1; step <= steps_; ++step) {
      p.step = step;
      for (int r = 0; r < repeats_; ++r) control.report(p);
      if (step_time_.count()) std::this_thread::sleep_for(step_time_);
    }
    p.stage = "decode";
    control.report(p);
    p.image = 1;
    control.report(p);
    return {{"images", json::array()}, {"info", json::object()}};
  }

 private:
  const int steps_, repeats_;
  const std::chrono::microseconds step_time_;
};

// A token job: `steps` text deltas ("0 ", "1 ", ...), `step_time` apart.
class TokenRunner : public JobRunner {
 public:
  TokenRunner(int steps, std::chrono::microseconds step_time) : steps_(steps), step_time_(step_time) {}
  std::vector<std::string> kinds() const override { return {"test.tokens"}; }
  json run(const Job&, JobControl& control) override {
    std::string text;
    for (int i = 0; i < steps_; ++i) {
      text += std::to_string(i) + " ";
      control.text(std::to_string(i) + " ");
      if (step_time_.count()) std::this_thread::sleep_for(step_time_);
    }
    return {{"text", text}};
  }

 private:
  const int steps_;
  const std::chrono::microseconds step_time_;
};

bool wait_done(JobQueue& queue, const std::string& id) {
  for (int tries = 0; tries < 20000; ++tries) {
    if (queue.get(id).value()->state == JobState::Done) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

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
  JobQueue queue;
  ASSERT_TRUE(queue.add_runner(runner).ok());
  EventHub hub(queue, {.ping_every = std::chrono::milliseconds(20)});
  auto reader = hub.subscribe();
  auto stalled = hub.subscribe();  // never read
  ASSERT_TRUE(queue.start().ok());

  std::map<std::string, std::vector<std::string>> states;
  std::vector<std::string> ids;
  for (int i = 0; i < 800; ++i) {  // 7 events each: over the stalled client's 4096
    // One job at a time, so the reader is never more than a few messages behind.
    ids.push_back(queue.submit("txt2img", json::object()).value());
    for (int tries = 0; tries < 1000 && queue.get(ids.back()).value()->state != JobState::Done; ++tries)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    for (const auto& m : drain(*reader))
      if (m["type"] == "job") {
        auto& s = states[m["job"]["id"]];
        if (s.empty() || s.back() != m["job"]["state"]) s.push_back(m["job"]["state"]);
      }
  }
  // The dispatcher sends a burst of changes in rounds (min_round_gap apart): wait for the last one,
  // and a ping or two.
  bool pinged = false;
  for (int tries = 0; tries < 400 && (!pinged || states[ids.back()].size() < 3); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (const auto& m : drain(*reader)) {
      pinged |= m["type"] == "ping";
      if (m["type"] == "job") {
        auto& s = states[m["job"]["id"]];
        if (s.empty() || s.back() != m["job"]["state"]) s.push_back(m["job"]["state"]);
      }
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

TEST(MessageStream, UpdatesReplaceTheirUnsentPredecessorInPlace) {
  MessageStream s(100);
  s.push_change("a", "a queued");
  s.push_update("a", "a step 1");
  s.push("other");
  s.push_update("a", "a step 2");  // replaces "a step 1" where it stands
  s.push_update("b", "b step 1");
  EXPECT_EQ(*s.pop(), "a queued");
  EXPECT_EQ(*s.pop(), "a step 2");
  s.push_update("a", "a step 3");  // "a step 2" was sent: this one goes to the end
  s.push_change("a", "a done");
  s.push_update("a", "a after");  // after a change, never before it
  std::vector<std::string> rest;
  while (auto m = s.pop()) rest.push_back(*m);
  EXPECT_EQ(rest, (std::vector<std::string>{"other", "b step 1", "a step 3", "a done", "a after"}));

  // A newer binary frame replaces the waiting one; updates behind it keep their place.
  s.push_update("p", "preview 1");
  s.push_binary("frame 1");
  s.push_update("q", "q 1");
  s.push_update("p", "preview 2");
  s.push_binary("frame 2");
  s.push_update("q", "q 2");
  rest.clear();
  bool binary = false;
  while (auto m = s.pop(&binary)) rest.push_back(*m + (binary ? " (binary)" : ""));
  EXPECT_EQ(rest, (std::vector<std::string>{"preview 2", "q 2", "frame 2 (binary)"}));
}

TEST(EventHub, SendsAtMostOneEventPerStepAndNoRepeats) {
  // Six identical reports per step, a step every 2 ms: without coalescing, 6 events per step.
  SteppingRunner runner(200, 6, std::chrono::microseconds(2000));
  JobQueue queue;
  ASSERT_TRUE(queue.add_runner(runner).ok());
  EventHub hub(queue, {.progress_every = std::chrono::milliseconds(20)});
  auto reader = hub.subscribe();
  ASSERT_TRUE(queue.start().ok());
  const std::string id = queue.submit("txt2img", json::object()).value();
  ASSERT_TRUE(wait_done(queue, id));
  std::vector<json> events;
  for (int tries = 0; tries < 200 && (events.empty() || events.back()["job"]["state"] != "done"); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (auto& m : drain(*reader))
      if (m["type"] == "job" && m["job"]["id"] == id) events.push_back(m);
  }
  queue.stop();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["job"]["state"], "done");
  std::map<int, int> per_step;
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0) {
      EXPECT_NE(events[i], events[i - 1]) << "an identical event sent twice in a row";
    }
    if (events[i]["job"]["progress"]["stage"] == "sample") ++per_step[events[i]["job"]["progress"]["step"].get<int>()];
  }
  for (const auto& [step, n] : per_step) EXPECT_EQ(n, 1) << "step " << step;
  // 200 steps in about 400 ms, flushed every 20 ms: a few dozen, not 1200.
  EXPECT_LT(per_step.size(), 60u);
  EXPECT_GE(per_step.size(), 2u) << "progress is coalesced, not dropped";
}

TEST(EventHub, AClientThatReadsNothingGetsTheStateChangesAndTheLatestState) {
  // 3000 steps as fast as they come, 3 reports each: 9000 reports, over a stream's 4096.
  SteppingRunner runner(3000, 3, std::chrono::microseconds(0));
  JobQueue queue;
  ASSERT_TRUE(queue.add_runner(runner).ok());
  EventHub hub(queue, {.progress_every = std::chrono::milliseconds(0)});  // every report is due at once
  auto stalled = hub.subscribe();
  ASSERT_TRUE(queue.start().ok());
  const std::string id = queue.submit("txt2img", json::object()).value();
  ASSERT_TRUE(wait_done(queue, id));
  // The dispatcher catches up: its last round comes at most a round gap (102 ms) after the end.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  queue.stop();
  ASSERT_FALSE(stalled->closed()) << "coalesced progress must not overflow a slow client's queue";
  const auto messages = drain(*stalled);
  std::vector<std::string> states, stages;
  json last;
  for (const auto& m : messages) {
    if (m["type"] != "job") continue;
    last = m;
    const std::string state = m["job"]["state"], stage = m["job"]["progress"]["stage"];
    if (states.empty() || states.back() != state) states.push_back(state);
    if (state == "running" && (stages.empty() || stages.back() != stage)) stages.push_back(stage);
  }
  EXPECT_LT(messages.size(), 30u) << "a slow client gets the latest state, not every step";
  EXPECT_EQ(states, (std::vector<std::string>{"queued", "running", "done"}));
  EXPECT_EQ(stages, (std::vector<std::string>{"starting", "text", "sample", "decode"}));
  EXPECT_EQ(last["job"]["state"], "done");
  EXPECT_EQ(last["job"]["progress"]["step"], 3000);
}

TEST(EventHub, ANewClientStartsFromWhatTheOthersWereLastSent) {
  SteppingRunner runner(300, 1, std::chrono::microseconds(1000));
  JobQueue queue;
  ASSERT_TRUE(queue.add_runner(runner).ok());
  EventHub hub(queue, {.progress_every = std::chrono::milliseconds(5), .min_round_gap = std::chrono::milliseconds(5)});
  ASSERT_TRUE(queue.start().ok());
  const std::string first = queue.submit("txt2img", json::object()).value();
  const std::string second = queue.submit("txt2img", json::object()).value();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the first job is sampling
  auto late = hub.subscribe();
  ASSERT_TRUE(wait_done(queue, second));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  queue.stop();
  const auto messages = drain(*late);
  ASSERT_GE(messages.size(), 3u);
  EXPECT_EQ(messages[0]["type"], "queue");
  EXPECT_EQ(messages[0]["queued"], 1);
  EXPECT_EQ(messages[0]["running"], first);
  EXPECT_EQ(messages[1]["job"]["id"], first);  // unfinished jobs, oldest first
  EXPECT_EQ(messages[1]["job"]["state"], "running");
  EXPECT_EQ(messages[2]["job"]["id"], second);
  EXPECT_EQ(messages[2]["job"]["state"], "queued");
  // Never an older step after a newer one.
  int step = 0;
  for (const auto& m : messages)
    if (m["type"] == "job" && m["job"]["id"] == first && m["job"]["state"] == "running") {
      const int s = m["job"]["progress"]["step"];
      EXPECT_GE(s, step);
      step = s;
    }
}

}  // namespace
}  // namespace easel

namespace easel {
namespace {

// With many clients every connected client costs a write per message, so a round carries each
// job's latest change only, and rounds come further apart: jobs that start and finish between two
// rounds reach each client as one message each, and every client still ends with every job done.
TEST(EventHub, WithManyClientsARoundCarriesEachJobsLatestChange) {
  InstantRunner runner;
  JobQueue queue;
  ASSERT_TRUE(queue.add_runner(runner).ok());
  EventHub hub(queue, {.min_round_gap = std::chrono::milliseconds(50), .every_change_up_to_clients = 8});
  std::vector<std::shared_ptr<MessageStream>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(hub.subscribe());
  ASSERT_TRUE(queue.start().ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(queue.submit("txt2img", json::object()).value());
  for (const auto& id : ids) ASSERT_TRUE(wait_done(queue, id));
  // The last round: at most min_round_gap + 20 clients x round_gap_per_client (90 ms) after the last change.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (auto& client : clients) {
    std::map<std::string, std::string> last_state;
    size_t job_messages = 0;
    for (const auto& m : drain(*client)) {
      if (m["type"] != "job") continue;
      ++job_messages;
      last_state[m["job"]["id"]] = m["job"]["state"];
    }
    for (const auto& id : ids) EXPECT_EQ(last_state[id], "done") << id;
    // Every change sent would be 4 per job (queued, running, a stage, done); a job seen by at most
    // two rounds (submitted before one, finished before the next) is at most 2.
    EXPECT_LE(job_messages, 2 * ids.size());
  }
  queue.stop();
  hub.stop();
}

}  // namespace
}  // namespace easel

namespace easel {
namespace {

// Text deltas are never coalesced away: with few clients (every change) and with many (a round
// joins a job's deltas into one), each client gets the job's whole text, in order, before its "done".
TEST(EventHub, EveryClientGetsEveryDeltaBeforeTheJobEnds) {
  for (const size_t every_change_up_to : {size_t(32), size_t(1)}) {
    TokenRunner runner(300, std::chrono::microseconds(0));  // tokens faster than rounds
    JobQueue queue;
    ASSERT_TRUE(queue.add_runner(runner).ok());
    EventHub hub(queue, {.min_round_gap = std::chrono::milliseconds(5), .every_change_up_to_clients = every_change_up_to});
    std::vector<std::shared_ptr<MessageStream>> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(hub.subscribe());
    ASSERT_TRUE(queue.start().ok());
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(queue.submit("test.tokens", json::object()).value());
    for (const auto& id : ids) ASSERT_TRUE(wait_done(queue, id));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::string expected;
    for (int i = 0; i < 300; ++i) expected += std::to_string(i) + " ";
    for (auto& client : clients) {
      std::map<std::string, std::string> text;
      std::map<std::string, bool> ended, after_end;
      size_t deltas = 0;
      for (const auto& m : drain(*client)) {
        if (m["type"] == "delta") {
          ++deltas;
          text[m["job"]] += m["text"].get<std::string>();
          if (ended[m["job"]]) after_end[m["job"]] = true;
        }
        if (m["type"] == "job" && m["job"]["state"] == "done") ended[m["job"]["id"]] = true;
      }
      for (const auto& id : ids) {
        EXPECT_EQ(text[id], expected) << id << " with " << every_change_up_to;
        EXPECT_TRUE(ended[id]) << id;
        EXPECT_FALSE(after_end[id]) << "a delta of " << id << " came after its end";
      }
      EXPECT_LT(deltas, 3u * 300) << "deltas within a round are joined";
    }
    queue.stop();
    hub.stop();
  }
}

}  // namespace
}  // namespace easel
