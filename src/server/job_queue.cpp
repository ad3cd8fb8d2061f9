#include "server/job_queue.h"

#include <algorithm>
#include <chrono>
#include <random>

namespace easel::server {

int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::Queued: return "queued";
    case JobState::Running: return "running";
    case JobState::Done: return "done";
    case JobState::Failed: return "failed";
    case JobState::Cancelled: return "cancelled";
  }
  return "unknown";
}

std::string random_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id(16, '0');
  uint64_t v = rng();
  for (char& c : id) {
    c = hex[v & 15];
    v >>= 4;
  }
  return id;
}

std::optional<JobState> parse_job_state(std::string_view name) {
  for (JobState s : {JobState::Queued, JobState::Running, JobState::Done, JobState::Failed, JobState::Cancelled})
    if (job_state_name(s) == name) return s;
  return std::nullopt;
}

namespace {

bool finished(JobState s) { return s == JobState::Done || s == JobState::Failed || s == JobState::Cancelled; }

}  // namespace

JobQueue::JobQueue(JobRunner& runner, JobStore* store) : runner_(runner), store_(store) {}

JobQueue::~JobQueue() { stop(); }

void JobQueue::start() {
  if (store_) {
    std::vector<Job> loaded = store_->load_all();
    std::lock_guard lock(mutex_);
    for (Job& job : loaded) {
      // A job that was running when the server stopped starts again from the beginning.
      if (job.state == JobState::Running) {
        job.state = JobState::Queued;
        job.started_ms = 0;
        job.progress = {};
      }
      next_seq_ = std::max(next_seq_, job.seq + 1);
      jobs_[job.id] = std::move(job);
    }
  }
  thread_ = std::thread([this] { executor(); });
}

void JobQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || !thread_.joinable()) {
      stopping_ = true;
      return;
    }
    stopping_ = true;
    if (control_) control_->cancel = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::string JobQueue::submit(std::string kind, nlohmann::json request, int priority, Listener on_finished) {
  Job job;
  job.id = random_id();
  job.kind = std::move(kind);
  job.request = std::move(request);
  job.priority = priority;
  job.created_ms = unix_ms();
  job.progress.stage = "queued";
  std::lock_guard order(notify_order_);
  {
    std::lock_guard lock(mutex_);
    job.seq = next_seq_++;
    jobs_[job.id] = job;
    if (on_finished) finished_callbacks_[job.id] = std::move(on_finished);
  }
  notify_ordered(job);
  wake_.notify_all();
  return job.id;
}

std::optional<Job> JobQueue::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

std::vector<Job> JobQueue::list() const {
  std::vector<Job> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, job] : jobs_) out.push_back(job);
  }
  std::sort(out.begin(), out.end(), [](const Job& a, const Job& b) { return a.seq > b.seq; });
  return out;
}

std::optional<Job> JobQueue::running() const {
  std::lock_guard lock(mutex_);
  if (running_id_.empty()) return std::nullopt;
  return jobs_.at(running_id_);
}

int JobQueue::queued_count() const {
  std::lock_guard lock(mutex_);
  return int(std::count_if(jobs_.begin(), jobs_.end(), [](const auto& kv) { return kv.second.state == JobState::Queued; }));
}

bool JobQueue::cancel(const std::string& id) {
  Job changed;
  Listener done;
  std::lock_guard order(notify_order_);
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || finished(it->second.state)) return false;
    if (it->second.state == JobState::Running) {
      if (control_) control_->cancel = true;
      return true;
    }
    it->second.state = JobState::Cancelled;
    it->second.finished_ms = unix_ms();
    changed = it->second;
    if (auto cb = finished_callbacks_.find(id); cb != finished_callbacks_.end()) {
      done = std::move(cb->second);
      finished_callbacks_.erase(cb);
    }
  }
  notify_ordered(changed);
  if (done) done(changed);
  return true;
}

void JobQueue::interrupt() {
  std::lock_guard lock(mutex_);
  if (control_) control_->interrupt = true;
}

void JobQueue::skip() {
  std::lock_guard lock(mutex_);
  if (control_) control_->skip = true;
}

void JobQueue::add_listener(Listener listener) {
  std::lock_guard lock(mutex_);
  listeners_.push_back(std::move(listener));
}

void JobQueue::notify(const Job& job) {
  std::lock_guard order(notify_order_);
  notify_ordered(job);
}

void JobQueue::notify_ordered(const Job& job) {
  if (store_) store_->save(job);
  broadcast(job);
}

void JobQueue::broadcast(const Job& job) {
  std::vector<Listener> listeners;
  {
    std::lock_guard lock(mutex_);
    listeners = listeners_;
  }
  for (const auto& l : listeners) l(job);
}

std::optional<std::string> JobQueue::next_queued_locked() const {
  const Job* best = nullptr;
  for (const auto& [id, job] : jobs_) {
    if (job.state != JobState::Queued) continue;
    if (!best || job.priority > best->priority || (job.priority == best->priority && job.seq < best->seq)) best = &job;
  }
  if (!best) return std::nullopt;
  return best->id;
}

void JobQueue::executor() {
  for (;;) {
    JobControl control;
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || next_queued_locked().has_value(); });
      if (stopping_) return;
      Job& j = jobs_.at(*next_queued_locked());
      j.state = JobState::Running;
      j.started_ms = unix_ms();
      j.progress.stage = "starting";
      running_id_ = j.id;
      control_ = &control;
      job = j;
    }
    notify(job);
    control.report = [&](const JobProgress& p) {
      Job snapshot;
      {
        std::lock_guard lock(mutex_);
        Job& j = jobs_.at(job.id);
        j.progress = p;
        snapshot = j;
      }
      // Progress is frequent: listeners see it, the store only sees state changes.
      broadcast(snapshot);
    };

    nlohmann::json result;
    std::string error;
    try {
      result = runner_.run(job, control);
    } catch (const std::exception& e) {
      error = e.what();
    }
    Job done;
    Listener callback;
    {
      std::lock_guard lock(mutex_);
      control_ = nullptr;
      running_id_.clear();
      Job& j = jobs_.at(job.id);
      j.finished_ms = unix_ms();
      j.interrupted = control.interrupt;
      j.skipped = control.skip;
      if (stopping_ && !error.empty()) {
        // Stopped by shutdown: run again after a restart.
        j.state = JobState::Queued;
        j.started_ms = j.finished_ms = 0;
        j.progress = {};
        j.progress.stage = "queued";
      } else if (control.cancel && !error.empty()) {
        j.state = JobState::Cancelled;
      } else if (!error.empty()) {
        j.state = JobState::Failed;
        j.error = error;
      } else {
        j.state = JobState::Done;
        j.result = std::move(result);
      }
      done = j;
      if (finished(j.state)) {
        if (auto cb = finished_callbacks_.find(j.id); cb != finished_callbacks_.end()) {
          callback = std::move(cb->second);
          finished_callbacks_.erase(cb);
        }
      }
    }
    notify(done);
    if (callback) callback(done);
  }
}

}  // namespace easel::server
