// The job queue on its own: what cancel did, a job whose first save fails is refused rather than
// run and forgotten, a kind no runner runs is refused, and memory holds only unfinished and a few recent jobs while the history
// (list, get, search) comes whole from the store, across a restart too.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/job_queue.h"
#include "server/job_store_memory.h"
#include "server/job_store_sqlite.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace server;

// Runs until cancelled when the request says {"hold": true}; else finishes at once.
class HoldingRunner : public JobRunner {
 public:
  std::vector<std::string> kinds() const override { return {"txt2img"}; }
  json run(const Job& job, JobControl& control) override {
    if (job.request.value("hold", false)) {
      started = true;
      while (!control.cancel) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      throw std::runtime_error("cancelled");
    }
    return {{"images", json::array()}, {"info", json::object()}};
  }
  std::atomic<bool> started{false};
};

// A store that cannot write (a full disk, a file made read-only under the server).
class FailingStore : public MemoryJobStore {
 public:
  Status save(const Job&) override { return Error("disk I/O error"); }
};

std::optional<Job> find(JobQueue& queue, const std::string& id) { return queue.get(id).value(); }

bool wait_state(JobQueue& queue, const std::string& id, JobState state) {
  for (int i = 0; i < 5000; ++i) {
    if (const auto job = find(queue, id); job && job->state == state) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

TEST(JobQueue, CancelSaysWhatItDid) {
  HoldingRunner runner;
  JobQueue queue;
  ASSERT_TRUE(queue.add_runner(runner).ok());
  ASSERT_TRUE(queue.start().ok());
  const std::string running = queue.submit("txt2img", {{"hold", true}}).value();
  ASSERT_TRUE(wait_state(queue, running, JobState::Running));
  const std::string queued = queue.submit("txt2img", json::object()).value();

  EXPECT_EQ(queue.cancel("ffffffffffffffff"), CancelOutcome::Unknown);
  EXPECT_EQ(queue.cancel(queued), CancelOutcome::CancelledNow);
  EXPECT_EQ(find(queue, queued)->state, JobState::Cancelled);
  EXPECT_EQ(queue.cancel(queued), CancelOutcome::AlreadyFinished);
  // The running job stops at once here, yet the answer is what cancel did: it asked.
  EXPECT_EQ(queue.cancel(running), CancelOutcome::CancelRequested);
  ASSERT_TRUE(wait_state(queue, running, JobState::Cancelled));
  EXPECT_EQ(queue.cancel(running), CancelOutcome::AlreadyFinished);
  queue.stop();
}

TEST(JobQueue, AJobThatCannotBeSavedIsNotQueued) {
  HoldingRunner runner;
  FailingStore store;
  JobQueue queue(&store);
  ASSERT_TRUE(queue.add_runner(runner).ok());
  ASSERT_TRUE(queue.start().ok());
  bool finished = false;
  const auto id = queue.submit("txt2img", json::object(), 0, [&](const Job&) { finished = true; });
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message().find("the job history cannot be written: disk I/O error"), std::string::npos)
      << id.error().message();
  EXPECT_TRUE(queue.active().empty());
  EXPECT_EQ(queue.queued_count(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(queue.jobs_in_memory(), 0u);
  EXPECT_FALSE(finished);
  queue.stop();
}

TEST(JobQueue, RefusesAKindNoRunnerRuns) {
  HoldingRunner runner;
  MemoryJobStore store;
  JobQueue queue(&store);
  ASSERT_TRUE(queue.add_runner(runner).ok());
  HoldingRunner rival;
  const Status twice = queue.add_runner(rival);
  ASSERT_FALSE(twice.ok()) << "two runners for one kind";
  EXPECT_NE(twice.error().message().find("'txt2img'"), std::string::npos) << twice.error().message();
  ASSERT_TRUE(queue.start().ok());
  EXPECT_TRUE(queue.runs("txt2img"));
  EXPECT_FALSE(queue.runs("chat"));
  const auto id = queue.submit("chat", json::object());
  ASSERT_FALSE(id.ok()) << "a job no runner runs would wait for ever";
  EXPECT_NE(id.error().message().find("no runner for jobs of kind 'chat'; this server runs txt2img"), std::string::npos)
      << id.error().message();
  EXPECT_TRUE(queue.active().empty());
  EXPECT_EQ(store.query({}).value().total, 0u) << "nothing saved";
  queue.stop();
}

TEST(JobQueue, MemoryHoldsABoundedHistoryTheStoreHoldsAll) {
  const fs::path dir = fs::temp_directory_path() / ("easel_queue_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const size_t n = JobQueue::kRecentFinished * 3;
  std::vector<std::string> ids;
  {
    auto store = SqliteJobStore::open(dir);
    ASSERT_TRUE(store.ok()) << store.error().message();
    HoldingRunner runner;
    JobQueue queue(store->get());
    ASSERT_TRUE(queue.add_runner(runner).ok());
    ASSERT_TRUE(queue.start().ok());
    for (size_t i = 0; i < n; ++i)
      ids.push_back(queue.submit("txt2img", {{"prompt", i % 2 ? "odd cat" : "even dog"}}).value());
    ASSERT_TRUE(wait_state(queue, ids.back(), JobState::Done));
    EXPECT_LE(queue.jobs_in_memory(), JobQueue::kRecentFinished);
    const auto all = queue.query({.limit = 10000});
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all->total, n);
    ASSERT_EQ(all->jobs.size(), n);
    EXPECT_EQ(all->jobs.front().id, ids.back());  // newest first
    EXPECT_EQ(all->jobs.back().id, ids.front());
    const auto oldest = find(queue, ids.front());  // long gone from memory
    ASSERT_TRUE(oldest.has_value());
    EXPECT_EQ(oldest->state, JobState::Done);
    queue.stop();
  }
  // A restarted queue on the same file: the whole history, nothing loaded into memory.
  auto store = SqliteJobStore::open(dir);
  ASSERT_TRUE(store.ok());
  HoldingRunner runner;
  JobQueue queue(store->get());
  ASSERT_TRUE(queue.add_runner(runner).ok());
  ASSERT_TRUE(queue.start().ok());
  EXPECT_EQ(queue.jobs_in_memory(), 0u);
  EXPECT_EQ(queue.query({.limit = 1})->total, n);
  const auto cats = queue.query({.text = "CAT", .limit = 5});
  EXPECT_EQ(cats->total, n / 2);
  ASSERT_EQ(cats->jobs.size(), 5u);
  EXPECT_EQ(cats->jobs[0].id, ids[n - 1]);
  EXPECT_EQ(queue.query({.state = JobState::Done})->total, n);
  EXPECT_TRUE(find(queue, ids[n / 2]).has_value());
  EXPECT_EQ(queue.cancel(ids[0]), CancelOutcome::AlreadyFinished);
  // New jobs number after the old ones.
  const std::string next = queue.submit("txt2img", json::object()).value();
  EXPECT_GT(find(queue, next)->seq, find(queue, ids.back())->seq);
  queue.stop();
  fs::remove_all(dir);
}

TEST(JobQueue, ListsMergeTheLiveProgressOfUnfinishedJobs) {
  HoldingRunner runner;
  JobQueue queue;  // no store given: a bounded one in memory
  ASSERT_TRUE(queue.add_runner(runner).ok());
  ASSERT_TRUE(queue.start().ok());
  const std::string running = queue.submit("txt2img", {{"hold", true}}).value();
  ASSERT_TRUE(wait_state(queue, running, JobState::Running));
  const auto page = queue.query({});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].state, JobState::Running);
  EXPECT_EQ(page->jobs[0].progress.stage, "starting");  // from memory: the store never saw progress
  ASSERT_EQ(queue.active().size(), 1u);
  EXPECT_EQ(queue.cancel(running), CancelOutcome::CancelRequested);
  queue.stop();
}

}  // namespace
}  // namespace easel
