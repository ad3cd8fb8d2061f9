#include "server/job_queue.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "server/job_store_memory.h"

namespace easel::server {

namespace {

// What a progress report tells listeners: everything but the request and the result.
Job progress_view(const Job& job) {
  Job view;
  view.id = job.id;
  view.kind = job.kind;
  view.priority = job.priority;
  view.seq = job.seq;
  view.state = job.state;
  view.created_ms = job.created_ms;
  view.started_ms = job.started_ms;
  view.progress = job.progress;
  view.error = job.error;
  return view;
}

}  // namespace

// A device's executor: its thread runs the device's scheduler against this view of the queue.
class JobQueue::Executor : public ExecutorQueue {
 public:
  Executor(JobQueue& queue, std::string device)
      : queue_(queue), device_(std::move(device)), scheduler_(std::make_unique<SerialScheduler>()) {}
  void start() { thread_ = std::thread([this] { scheduler_->run(*this); }); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  std::optional<TakenJob> take(bool wait) override { return queue_.take(device_, wait); }
  void finish(TakenJob job, Result<nlohmann::json> result) override { queue_.finish(std::move(job), std::move(result)); }

 private:
  JobQueue& queue_;
  const std::string device_;
  std::unique_ptr<JobScheduler> scheduler_;
  std::thread thread_;
};

JobQueue::JobQueue(JobStore* store)
    : own_store_(store ? nullptr : std::make_unique<MemoryJobStore>()), store_(store ? *store : *own_store_) {}

JobQueue::~JobQueue() { stop(); }

Status JobQueue::add_runner(JobRunner& runner, const std::string& device) {
  std::lock_guard lock(mutex_);
  if (started_) return Error("job runners are registered before the queue starts");
  const std::vector<std::string> kinds = runner.kinds();
  for (const std::string& kind : kinds)
    if (runners_.count(kind)) return Error(cat("two job runners for jobs of kind '", kind, "'"));
  for (const std::string& kind : kinds) runners_[kind] = {&runner, device};
  return {};
}

bool JobQueue::runs(std::string_view kind) const { return runners_.find(kind) != runners_.end(); }

std::string JobQueue::kinds() const {
  std::string out;
  for (const auto& [kind, r] : runners_) out += (out.empty() ? "" : ", ") + kind;
  return out;
}

Status JobQueue::start() {
  {
    std::lock_guard lock(mutex_);
    if (started_) return Error("the job queue is already started");
    started_ = true;  // the runners are fixed from here on: reading them needs no lock
  }
  auto loaded = store_.unfinished();
  if (!loaded.ok()) return loaded.error().context("reading the unfinished jobs of the history");
  auto newest = store_.query(JobQuery{.limit = 1});
  if (!newest.ok()) return newest.error().context("reading the job history");
  std::vector<Job> resumed, orphaned;
  {
    std::lock_guard lock(mutex_);
    if (!newest->jobs.empty()) next_seq_ = std::max(next_seq_, newest->jobs[0].seq + 1);
    for (Job& job : *loaded) {
      next_seq_ = std::max(next_seq_, job.seq + 1);
      job.progress = {};
      if (!runs(job.kind)) {
        // Queued by a server that ran this kind: this one never will, so it fails now rather
        // than wait for ever.
        job.state = JobState::Failed;
        job.error = cat("this server has no runner for jobs of kind '", job.kind, "' (it runs ", kinds(), ")");
        job.finished_ms = unix_ms();
        remember_finished_locked(job);
        orphaned.push_back(std::move(job));
        continue;
      }
      // A job that was running when the server stopped starts again from the beginning.
      if (job.state == JobState::Running) {
        job.state = JobState::Queued;
        job.started_ms = 0;
      }
      job.progress.stage = "queued";
      resumed.push_back(job);
      active_[job.id] = std::move(job);
    }
  }
  // Listeners (the event hub) learn of the resumed jobs as if they had just been submitted.
  for (const Job& job : resumed) broadcast(job, StateChange{});
  for (const Job& job : orphaned) notify(job);
  std::set<std::string> devices;
  for (const auto& [kind, r] : runners_) devices.insert(r.device);
  std::lock_guard lock(mutex_);
  if (stopping_) return {};
  for (const std::string& device : devices) {
    executors_.push_back(std::make_unique<Executor>(*this, device));
    executors_.back()->start();
  }
  return {};
}

void JobQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, control] : running_) control->cancel = true;
  }
  wake_.notify_all();
  // Executors are only added under mutex_ before stopping_ is set, so the list is fixed now.
  for (auto& executor : executors_) executor->join();
}

Result<std::string> JobQueue::submit(std::string kind, nlohmann::json request, int priority, FinishedCallback on_finished) {
  if (!runs(kind))
    return Error(cat("no runner for jobs of kind '", kind, "'; this server runs ", kinds().empty() ? "none" : kinds()));
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
  }
  // Saved before the executor can see it: a job is queued only once the history has it.
  if (Status saved = store_.save(job); !saved.ok())
    return Error(cat("the job history cannot be written: ", saved.error().message()));
  {
    std::lock_guard lock(mutex_);
    active_[job.id] = job;
    if (on_finished) finished_callbacks_[job.id] = std::move(on_finished);
  }
  broadcast(job, StateChange{});
  wake_.notify_all();
  return job.id;
}

const Job* JobQueue::find_locked(const std::string& id) const {
  if (auto it = active_.find(id); it != active_.end()) return &it->second;
  for (auto it = recent_.rbegin(); it != recent_.rend(); ++it)
    if (it->id == id) return &*it;
  return nullptr;
}

Result<std::optional<Job>> JobQueue::get(const std::string& id) const {
  {
    std::lock_guard lock(mutex_);
    if (const Job* job = find_locked(id)) return std::optional<Job>(*job);
  }
  return store_.get(id);
}

Result<JobPage> JobQueue::query(const JobQuery& query) const {
  auto page = store_.query(query);
  if (!page.ok()) return page;
  // The store has the last saved state; memory has the live progress (and the right state, should
  // a save have failed).
  std::lock_guard lock(mutex_);
  for (Job& job : page->jobs)
    if (const Job* live = find_locked(job.id)) job = *live;
  return page;
}

std::vector<Job> JobQueue::active() const {
  std::vector<Job> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, job] : active_) out.push_back(job);
  }
  std::sort(out.begin(), out.end(), [](const Job& a, const Job& b) { return a.seq < b.seq; });
  return out;
}

std::optional<Job> JobQueue::running() const {
  std::lock_guard lock(mutex_);
  const Job* first = nullptr;
  for (const auto& [id, control] : running_)
    if (const Job& job = active_.at(id); !first || job.seq < first->seq) first = &job;
  if (!first) return std::nullopt;
  return *first;
}

int JobQueue::queued_count() const {
  std::lock_guard lock(mutex_);
  return int(std::count_if(active_.begin(), active_.end(), [](const auto& kv) { return kv.second.state == JobState::Queued; }));
}

size_t JobQueue::jobs_in_memory() const {
  std::lock_guard lock(mutex_);
  return active_.size() + recent_.size();
}

JobQueue::FinishedCallback JobQueue::take_finished_callback_locked(const std::string& id) {
  const auto it = finished_callbacks_.find(id);
  if (it == finished_callbacks_.end()) return {};
  FinishedCallback callback = std::move(it->second);
  finished_callbacks_.erase(it);
  return callback;
}

void JobQueue::remember_finished_locked(Job job) {
  recent_.push_back(std::move(job));
  while (recent_.size() > kRecentFinished) recent_.pop_front();
}

CancelOutcome JobQueue::cancel(const std::string& id) {
  Job changed;
  FinishedCallback done;
  std::lock_guard order(notify_order_);
  {
    std::lock_guard lock(mutex_);
    auto it = active_.find(id);
    if (it == active_.end()) {
      if (find_locked(id)) return CancelOutcome::AlreadyFinished;
    } else if (it->second.state == JobState::Running) {
      if (auto control = running_.find(id); control != running_.end()) control->second->cancel = true;
      return CancelOutcome::CancelRequested;
    } else {
      it->second.state = JobState::Cancelled;
      it->second.finished_ms = unix_ms();
      changed = std::move(it->second);
      active_.erase(it);
      remember_finished_locked(changed);
      done = take_finished_callback_locked(id);
    }
  }
  if (changed.id.empty()) {
    // Not in memory: finished long ago, or never known. A history that cannot be read says unknown.
    const auto stored = store_.get(id);
    return stored.ok() && stored->has_value() ? CancelOutcome::AlreadyFinished : CancelOutcome::Unknown;
  }
  notify_ordered(changed);
  if (done) done(changed);
  return CancelOutcome::CancelledNow;
}

void JobQueue::interrupt() {
  std::lock_guard lock(mutex_);
  for (auto& [id, control] : running_) control->interrupt = true;
}

void JobQueue::skip() {
  std::lock_guard lock(mutex_);
  for (auto& [id, control] : running_) control->skip = true;
}

void JobQueue::add_listener(Listener listener) {
  std::lock_guard lock(mutex_);
  auto listeners = std::make_shared<std::vector<Listener>>(*listeners_);
  listeners->push_back(std::move(listener));
  listeners_ = std::move(listeners);
}

void JobQueue::notify(const Job& job) {
  std::lock_guard order(notify_order_);
  notify_ordered(job);
}

void JobQueue::notify_ordered(const Job& job) {
  // The job was accepted, so it goes on: memory stays right, only a restart would miss this change.
  if (Status saved = store_.save(job); !saved.ok())
    std::fprintf(stderr, "easel: job %s (%s): %s\n", job.id.c_str(), std::string(job_state_name(job.state)).c_str(),
                 saved.error().message().c_str());
  broadcast(job, StateChange{});
}

void JobQueue::broadcast(const Job& job, const JobEvent& event) {
  std::shared_ptr<const std::vector<Listener>> listeners;
  {
    std::lock_guard lock(mutex_);
    listeners = listeners_;
  }
  for (const auto& l : *listeners) l(job, event);
}

std::optional<std::string> JobQueue::next_queued_locked(const std::string& device) const {
  const Job* best = nullptr;
  for (const auto& [id, job] : active_) {
    if (job.state != JobState::Queued || runners_.find(job.kind)->second.device != device) continue;
    if (!best || job.priority > best->priority || (job.priority == best->priority && job.seq < best->seq)) best = &job;
  }
  if (!best) return std::nullopt;
  return best->id;
}

std::optional<TakenJob> JobQueue::take(const std::string& device, bool wait) {
  TakenJob taken;
  {
    std::unique_lock lock(mutex_);
    std::optional<std::string> next;
    const auto ready = [&] { return stopping_ || (next = next_queued_locked(device)).has_value(); };
    if (wait) wake_.wait(lock, ready);
    else ready();
    if (stopping_ || !next) return std::nullopt;
    Job& j = active_.at(*next);
    j.state = JobState::Running;
    j.started_ms = unix_ms();
    j.progress.stage = "starting";
    taken.job = j;
    taken.runner = runners_.find(j.kind)->second.runner;
    // The sink holds the queue and the job's id, nothing of any frame.
    taken.control = std::make_unique<JobControl>([this, id = j.id](JobEvent event) { report(id, std::move(event)); });
    running_[j.id] = taken.control.get();
  }
  notify(taken.job);
  return taken;
}

void JobQueue::report(const std::string& id, JobEvent event) {
  Job view;
  {
    std::lock_guard lock(mutex_);
    const auto it = active_.find(id);
    if (it == active_.end()) return;
    Job& j = it->second;
    if (const auto* progress = std::get_if<JobProgress>(&event)) {
      if (j.progress == *progress) return;  // the engine reports some steps more than once
      j.progress = *progress;
    }
    view = progress_view(j);
  }
  // Progress is frequent: listeners see it, the store only sees state changes.
  broadcast(view, event);
}

void JobQueue::finish(TakenJob taken, Result<nlohmann::json> result) {
  const JobControl& control = *taken.control;
  Job done;
  FinishedCallback callback;
  {
    std::lock_guard lock(mutex_);
    running_.erase(taken.job.id);
    auto it = active_.find(taken.job.id);
    Job& j = it->second;
    j.finished_ms = unix_ms();
    j.interrupted = control.interrupt;
    j.skipped = control.skip;
    if (stopping_ && !result.ok()) {
      // Stopped by shutdown: run again after a restart.
      j.state = JobState::Queued;
      j.started_ms = j.finished_ms = 0;
      j.progress = {};
      j.progress.stage = "queued";
    } else if (control.cancel && !result.ok()) {
      j.state = JobState::Cancelled;
    } else if (!result.ok()) {
      j.state = JobState::Failed;
      j.error = result.error().message();
    } else {
      j.state = JobState::Done;
      j.result = std::move(*result);
    }
    done = j;
    if (is_finished(j.state)) {
      active_.erase(it);
      remember_finished_locked(done);
      callback = take_finished_callback_locked(done.id);
    }
  }
  notify(done);
  if (callback) callback(done);
}

}  // namespace easel::server
