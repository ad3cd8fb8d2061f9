// The job queue: every generation (and, next, every chat or caption request) is a job of a kind,
// run by the runner registered for that kind (job_runner.h), on that runner's device. Each device
// has one executor thread whose scheduling policy (job_scheduler.h: serial today) takes the
// device's jobs highest priority first and first come first served within a priority. Jobs can be
// cancelled (queued: dropped; running: stopped at the next step), the running ones interrupted
// (A1111: finish with what it has) or skipped (A1111: go on with the next image of the batch).
//
// The JobStore keeps every state change, so a restarted server lists the history and runs again
// what had not finished. Memory holds only the unfinished jobs and the last few finished ones;
// older jobs are read back from the store. Without a store (unit tests) a MemoryJobStore with a
// bounded history stands in. Listeners see every event of every job (job_event.h): state changes,
// progress, text deltas, previews (WebSocket / SSE events, uploads cleanup).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/job.h"
#include "server/job_event.h"
#include "server/job_runner.h"
#include "server/job_scheduler.h"
#include "server/job_store.h"

namespace easel::server {

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
  // Every event of every job, in order (job_event.h). Called on the thread that made the change
  // (an executor, or an HTTP thread for submit and cancel): it must not block.
  using Listener = std::function<void(const Job&, const JobEvent&)>;
  using FinishedCallback = std::function<void(const Job&)>;
  // Finished jobs kept in memory besides the unfinished ones: a client that polls a job it just
  // saw finish (or a route's on_finished) reads it without a trip to the store.
  static constexpr size_t kRecentFinished = 16;

  explicit JobQueue(JobStore* store = nullptr);
  ~JobQueue();

  // Registers `runner` for each of its kinds, to run on `device` (one executor per device).
  // Before start(); fails when another runner already runs one of its kinds.
  Status add_runner(JobRunner& runner, const std::string& device = "cpu");
  bool runs(std::string_view kind) const;  // a runner is registered for it
  std::string kinds() const;                // the registered kinds, "a, b", for messages

  // Loads the store's unfinished jobs (queued again, in their order; listeners hear of each; a
  // job of a kind no runner runs fails) and starts an executor per device.
  Status start();
  void stop();  // running jobs are cancelled; queued jobs stay queued in the store

  // Queues a job; `on_finished` runs (on the executor thread) when it ends in any state.
  // Fails, queueing nothing, when no runner runs `kind`, or when the job cannot be saved: a job
  // the history would lose on the next restart is refused rather than accepted.
  Result<std::string> submit(std::string kind, nlohmann::json request, int priority = 0, FinishedCallback on_finished = {});
  // Any job, unfinished (with its live progress) or from the history.
  Result<std::optional<Job>> get(const std::string& id) const;
  // The history, newest first, unfinished jobs with their live progress.
  Result<JobPage> query(const JobQuery& query) const;
  std::vector<Job> active() const;  // queued and running jobs, in submission order
  std::optional<Job> running() const;  // the earliest submitted of the running jobs
  int queued_count() const;
  CancelOutcome cancel(const std::string& id);
  void interrupt();  // the running jobs
  void skip();

  void add_listener(Listener listener);

  size_t jobs_in_memory() const;  // unfinished + recently finished: what the bound applies to

 private:
  class Executor;  // a device's thread and scheduler; the ExecutorQueue it sees

  // ExecutorQueue for a device's executor.
  std::optional<TakenJob> take(const std::string& device, bool wait);
  void finish(TakenJob taken, Result<nlohmann::json> result);
  void report(const std::string& id, JobEvent event);  // a running job's JobControl sink

  void notify(const Job& job);          // store + listeners; call without either lock
  void notify_ordered(const Job& job);  // the same, with notify_order_ already held
  void broadcast(const Job& job, const JobEvent& event);  // listeners only; call without mutex_
  void remember_finished_locked(Job job);
  FinishedCallback take_finished_callback_locked(const std::string& id);  // and forgets it
  std::optional<std::string> next_queued_locked(const std::string& device) const;
  const Job* find_locked(const std::string& id) const;

  struct Registered {
    JobRunner* runner;
    std::string device;
  };
  std::map<std::string, Registered, std::less<>> runners_;  // by kind; fixed once started

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
  std::map<std::string, FinishedCallback> finished_callbacks_;
  // Replaced, never changed in place, by add_listener: a notification takes the list without
  // copying it (progress comes every step, on the executor thread).
  std::shared_ptr<const std::vector<Listener>> listeners_ = std::make_shared<std::vector<Listener>>();
  // The running jobs' controls, under mutex_; each is owned by its TakenJob and leaves this map
  // (in finish) before it is destroyed.
  std::map<std::string, JobControl*> running_;
  int64_t next_seq_ = 0;
  bool started_ = false, stopping_ = false;
  std::vector<std::unique_ptr<Executor>> executors_;
};

}  // namespace easel::server
