#include "server/job_queue.h"

#include <algorithm>
#include <cstdio>

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

JobQueue::JobQueue(JobRunner& runner, JobStore* store)
    : runner_(runner),
      own_store_(store ? nullptr : std::make_unique<MemoryJobStore>()),
      store_(store ? *store : *own_store_) {}

JobQueue::~JobQueue() { stop(); }

Status JobQueue::start() {
  auto loaded = store_.unfinished();
  if (!loaded.ok()) return loaded.error().context("reading the unfinished jobs of the history");
  auto newest = store_.query(JobQuery{.limit = 1});
  if (!newest.ok()) return newest.error().context("reading the job history");
  std::vector<Job> resumed;
  {
    std::lock_guard lock(mutex_);
    if (!newest->jobs.empty()) next_seq_ = std::max(next_seq_, newest->jobs[0].seq + 1);
    for (Job& job : *loaded) {
      // A job that was running when the server stopped starts again from the beginning.
      if (job.state == JobState::Running) {
        job.state = JobState::Queued;
        job.started_ms = 0;
      }
      job.progress = {};
      job.progress.stage = "queued";
      next_seq_ = std::max(next_seq_, job.seq + 1);
      resumed.push_back(job);
      active_[job.id] = std::move(job);
    }
  }
  // Listeners (the event hub) learn of the resumed jobs as if they had just been submitted.
  for (const Job& job : resumed) broadcast(job);
  thread_ = std::thread([this] { executor(); });
  return {};
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

Result<std::string> JobQueue::submit(std::string kind, nlohmann::json request, int priority, Listener on_finished) {
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
  broadcast(job);
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
  if (running_id_.empty()) return std::nullopt;
  return active_.at(running_id_);
}

int JobQueue::queued_count() const {
  std::lock_guard lock(mutex_);
  return int(std::count_if(active_.begin(), active_.end(), [](const auto& kv) { return kv.second.state == JobState::Queued; }));
}

size_t JobQueue::jobs_in_memory() const {
  std::lock_guard lock(mutex_);
  return active_.size() + recent_.size();
}

void JobQueue::remember_finished_locked(Job job) {
  recent_.push_back(std::move(job));
  while (recent_.size() > kRecentFinished) recent_.pop_front();
}

CancelOutcome JobQueue::cancel(const std::string& id) {
  Job changed;
  Listener done;
  std::lock_guard order(notify_order_);
  {
    std::lock_guard lock(mutex_);
    auto it = active_.find(id);
    if (it == active_.end()) {
      if (find_locked(id)) return CancelOutcome::AlreadyFinished;
    } else if (it->second.state == JobState::Running) {
      if (control_) control_->cancel = true;
      return CancelOutcome::CancelRequested;
    } else {
      it->second.state = JobState::Cancelled;
      it->second.finished_ms = unix_ms();
      changed = std::move(it->second);
      active_.erase(it);
      remember_finished_locked(changed);
      if (auto cb = finished_callbacks_.find(id); cb != finished_callbacks_.end()) {
        done = std::move(cb->second);
        finished_callbacks_.erase(cb);
      }
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
  if (control_) control_->interrupt = true;
}

void JobQueue::skip() {
  std::lock_guard lock(mutex_);
  if (control_) control_->skip = true;
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
  broadcast(job);
}

void JobQueue::broadcast(const Job& job) {
  std::shared_ptr<const std::vector<Listener>> listeners;
  {
    std::lock_guard lock(mutex_);
    listeners = listeners_;
  }
  for (const auto& l : *listeners) l(job);
}

std::optional<std::string> JobQueue::next_queued_locked() const {
  const Job* best = nullptr;
  for (const auto& [id, job] : active_) {
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
      Job& j = active_.at(*next_queued_locked());
      j.state = JobState::Running;
      j.started_ms = unix_ms();
      j.progress.stage = "starting";
      running_id_ = j.id;
      control_ = &control;
      job = j;
    }
    notify(job);
    control.report = [&](const JobProgress& p) {
      Job view;
      {
        std::lock_guard lock(mutex_);
        Job& j = active_.at(job.id);
        if (j.progress == p) return;  // the engine reports some steps more than once
        j.progress = p;
        view = progress_view(j);
      }
      // Progress is frequent: listeners see it, the store only sees state changes.
      broadcast(view);
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
      auto it = active_.find(job.id);
      Job& j = it->second;
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
      if (is_finished(j.state)) {
        active_.erase(it);
        remember_finished_locked(done);
        if (auto cb = finished_callbacks_.find(done.id); cb != finished_callbacks_.end()) {
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
