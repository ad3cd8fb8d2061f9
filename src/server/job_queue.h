// The job queue: every generation is a job, run one at a time per device by an executor thread,
// highest priority first and first come first served within a priority. Jobs can be cancelled
// (queued: dropped; running: stopped at the next step), the running one interrupted (A1111: finish
// with what it has) or skipped (A1111: go on with the next image of the batch).
//
// The JobStore keeps every state change, so a restarted server lists the history and runs again
// what had not finished. Memory holds only the unfinished jobs and the last few finished ones;
// older jobs are read back from the store. Without a store (unit tests) a MemoryJobStore with a
// bounded history stands in. Listeners see every change (WebSocket / SSE events, uploads cleanup).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/job.h"
#include "server/job_store.h"

namespace easel::server {

// What a running job polls and reports to.
struct JobControl {
  std::atomic<bool> cancel{false}, interrupt{false}, skip{false};
  std::function<void(const JobProgress&)> report;
};

class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // Runs the job; returns its result or throws (the message becomes the job's error).
  virtual nlohmann::json run(const Job& job, JobControl& control) = 0;
};

// What JobQueue::cancel did, so an API can answer with what happened rather than with a state
// read again later (a running job may already have stopped by then).
enum class CancelOutcome {
  Unknown,          // no such job
  AlreadyFinished,  // done, failed or cancelled before
  CancelledNow,     // it was queued: it is cancelled and will never run
  CancelRequested,  // it is running: it stops at its next step
};

class JobQueue {
 public:
  using Listener = std::function<void(const Job&)>;
  // Finished jobs kept in memory besides the unfinished ones: a client that polls a job it just
  // saw finish (or a route's on_finished) reads it without a trip to the store.
  static constexpr size_t kRecentFinished = 16;

  explicit JobQueue(JobRunner& runner, JobStore* store = nullptr);
  ~JobQueue();

  // Loads the store's unfinished jobs (queued again, in their order; listeners hear of each) and
  // starts the executor.
  Status start();
  void stop();  // the running job is cancelled; queued jobs stay queued in the store

  // Queues a job; `on_finished` runs (on the executor thread) when it ends in any state.
  // Fails, queueing nothing, when the job cannot be saved: a job the history would lose on the
  // next restart is refused rather than accepted.
  Result<std::string> submit(std::string kind, nlohmann::json request, int priority = 0, Listener on_finished = {});
  // Any job, unfinished (with its live progress) or from the history.
  Result<std::optional<Job>> get(const std::string& id) const;
  // The history, newest first, unfinished jobs with their live progress.
  Result<JobPage> query(const JobQuery& query) const;
  std::vector<Job> active() const;  // queued and running jobs, in submission order
  std::optional<Job> running() const;
  int queued_count() const;
  CancelOutcome cancel(const std::string& id);
  void interrupt();                    // the running job
  void skip();

  // Progress reports reach listeners as a Job without `request` and `result` (null): a report
  // comes every step, and copying a large request each time would slow the job down.
  void add_listener(Listener listener);

  size_t jobs_in_memory() const;  // unfinished + recently finished: what the bound applies to

 private:
  void executor();
  void notify(const Job& job);  // store + listeners; call without either lock
  void notify_ordered(const Job& job);  // the same, with notify_order_ already held
  void broadcast(const Job& job);       // listeners only (progress); call without mutex_
  void remember_finished_locked(Job job);
  std::optional<std::string> next_queued_locked() const;
  const Job* find_locked(const std::string& id) const;

  JobRunner& runner_;
  std::unique_ptr<JobStore> own_store_;  // when none was given
  JobStore& store_;
  mutable std::mutex mutex_;
  // Taken before mutex_, never inside it: a change made on an HTTP thread (submit, cancel) holds
  // it until its notification is out, so the executor's next notification for that job (it runs
  // on another thread) cannot overtake it. The store and event clients see changes in order.
  std::mutex notify_order_;
  std::condition_variable wake_;
  std::map<std::string, Job> active_;  // queued and running
  std::deque<Job> recent_;             // the last kRecentFinished finished jobs, oldest first
  std::map<std::string, Listener> finished_callbacks_;
  // Replaced, never changed in place, by add_listener: a notification takes the list without
  // copying it (progress comes every step, on the executor thread).
  std::shared_ptr<const std::vector<Listener>> listeners_ = std::make_shared<std::vector<Listener>>();
  std::string running_id_;
  JobControl* control_ = nullptr;  // the running job's, under mutex_
  int64_t next_seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace easel::server
