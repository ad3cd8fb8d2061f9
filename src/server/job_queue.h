// The job queue: every generation is a job, run one at a time per device by an executor thread,
// highest priority first and first come first served within a priority. Jobs can be cancelled
// (queued: dropped; running: stopped at the next step), the running one interrupted (A1111: finish
// with what it has) or skipped (A1111: go on with the next image of the batch). A JobStore, when
// given, keeps every state change, so a restarted server lists the history and runs again what
// had not finished. Listeners see every change (WebSocket / SSE events, A1111 progress).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace easel::server {

enum class JobState { Queued, Running, Done, Failed, Cancelled };
std::string_view job_state_name(JobState state);  // "queued", "running", "done", "failed", "cancelled"
std::optional<JobState> parse_job_state(std::string_view name);

struct JobProgress {
  int image = 0, images = 1;  // images finished, images asked for (batch_size x n_iter)
  int step = 0, steps = 0;    // sampler steps of the current image batch
  std::string stage;          // "queued", "text", "sample", "decode", ...
};

struct Job {
  std::string id;
  std::string kind;          // "txt2img", "img2img"
  nlohmann::json request;    // the request as the API received it (files already stored)
  int priority = 0;
  int64_t seq = 0;           // submission order
  JobState state = JobState::Queued;
  int64_t created_ms = 0, started_ms = 0, finished_ms = 0;  // Unix time; 0 = not yet
  JobProgress progress;
  nlohmann::json result;     // what the runner returned (images, info)
  std::string error;         // why it failed
  bool interrupted = false, skipped = false;
};

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

class JobStore {
 public:
  virtual ~JobStore() = default;
  virtual void save(const Job& job) = 0;  // insert or replace
  virtual std::vector<Job> load_all() = 0;
};

class JobQueue {
 public:
  using Listener = std::function<void(const Job&)>;

  explicit JobQueue(JobRunner& runner, JobStore* store = nullptr);
  ~JobQueue();

  // Loads the store's jobs (unfinished ones queued again, in their order) and starts the executor.
  void start();
  void stop();  // the running job is cancelled; queued jobs stay queued in the store

  // Queues a job; `on_finished` runs (on the executor thread) when it ends in any state.
  std::string submit(std::string kind, nlohmann::json request, int priority = 0, Listener on_finished = {});
  std::optional<Job> get(const std::string& id) const;
  std::vector<Job> list() const;   // all jobs, newest first
  std::optional<Job> running() const;
  int queued_count() const;
  bool cancel(const std::string& id);  // false when unknown or already finished
  void interrupt();                    // the running job
  void skip();

  void add_listener(Listener listener);

 private:
  void executor();
  void notify(const Job& job);  // store + listeners; call without either lock
  void notify_ordered(const Job& job);  // the same, with notify_order_ already held
  void broadcast(const Job& job);       // listeners only (progress); call without mutex_
  std::optional<std::string> next_queued_locked() const;

  JobRunner& runner_;
  JobStore* store_;
  mutable std::mutex mutex_;
  // Taken before mutex_, never inside it: a change made on an HTTP thread (submit, cancel) holds
  // it until its notification is out, so the executor's next notification for that job (it runs
  // on another thread) cannot overtake it. The store and event clients see changes in order.
  std::mutex notify_order_;
  std::condition_variable wake_;
  std::map<std::string, Job> jobs_;
  std::map<std::string, Listener> finished_callbacks_;
  std::vector<Listener> listeners_;
  std::string running_id_;
  JobControl* control_ = nullptr;  // the running job's, under mutex_
  int64_t next_seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

int64_t unix_ms();
// 16 random hex digits: names (job ids, stored uploads) a client cannot guess or enumerate.
std::string random_id();

}  // namespace easel::server
