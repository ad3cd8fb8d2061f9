#include "server/event_hub.h"

#include <algorithm>

#include "server/media_types.h"

namespace easel::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

JobSnapshot snapshot_of(const Job& job) {
  return {job.id, job.kind, job.state, job.priority, job.seq, job.progress, job.error};
}

json job_message(const JobSnapshot& job) {
  const JobProgress& p = job.progress;
  json j = {{"id", job.id},
            {"kind", job.kind},
            {"state", job_state_name(job.state)},
            {"priority", job.priority},
            {"progress", {{"image", p.image}, {"images", p.images}, {"step", p.step}, {"steps", p.steps}, {"stage", p.stage}}}};
  if (!job.error.empty()) j["error"] = job.error;
  return {{"type", "job"}, {"job", j}};
}

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

EventHub::EventHub(JobQueue& queue, EventHubOptions options, PreviewStore* previews)
    : options_(options), previews_(previews) {
  queue.add_listener([this](const Job& job, const JobEvent& event) { on_job(job, event); });
  dispatcher_ = std::thread([this] { dispatch_loop(); });
}

EventHub::~EventHub() { stop(); }

void EventHub::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
  std::vector<Client> clients;
  {
    std::lock_guard lock(clients_mutex_);
    stopped_ = true;
    clients.swap(clients_);
  }
  for (auto& c : clients) c.stream->close();
}

// On the executor (progress, deltas, previews, running, done) or an HTTP thread (queued,
// cancelled): a few map operations and at most a wake-up, whatever the number of clients.
void EventHub::on_job(const Job& job, const JobEvent& event) {
  if (const auto* preview = std::get_if<PreviewPtr>(&event)) return on_preview(*preview);
  bool wake = true;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    if (const auto* delta = std::get_if<TextDelta>(&event)) {
      if (delta->text.empty()) return;
      auto [pending, added] = deltas_.try_emplace(job.id);
      pending->second += delta->text;
      wake = added;  // text already waiting is sent with it
    } else {
      wake = on_change_locked(job);
    }
  }
  if (wake) wake_.notify_one();
}

void EventHub::flush_delta_locked(const std::string& id) {
  const auto it = deltas_.find(id);
  if (it == deltas_.end()) return;
  changes_.push_back(Change::of_delta(id, std::move(it->second)));
  deltas_.erase(it);
}

bool EventHub::on_change_locked(const Job& job) {
  const auto it = tracked_.find(job.id);
  if (it == tracked_.end() || it->second.state != job.state) {
    flush_delta_locked(job.id);  // the text it sent comes before its next state
    if (it != tracked_.end()) {
      if (it->second.state == JobState::Queued) --queue_state_.queued;
      if (it->second.state == JobState::Running && queue_state_.running == job.id) queue_state_.running.clear();
    }
    if (job.state == JobState::Queued) ++queue_state_.queued;
    if (job.state == JobState::Running) queue_state_.running = job.id;
    if (is_finished(job.state)) {
      if (it != tracked_.end()) tracked_.erase(it);
      progress_sent_.erase(job.id);
    } else {
      tracked_[job.id] = {job.state, job.progress.stage};
    }
    progress_.erase(job.id);  // older than this change
    changes_.push_back({snapshot_of(job), queue_state_, std::nullopt});
  } else if (it->second.stage != job.progress.stage) {
    flush_delta_locked(job.id);
    it->second.stage = job.progress.stage;
    progress_.erase(job.id);
    changes_.push_back({snapshot_of(job), std::nullopt, std::nullopt});
  } else {
    auto [pending, added] = progress_.insert_or_assign(job.id, snapshot_of(job));
    // A step already waiting for its turn is just replaced: the dispatcher knows when to come.
    return added;
  }
  return true;
}

// Stored before it is announced: a client told of it can fetch it at once. A newer preview
// replaces one the dispatcher has not sent yet (previews are sent at most every
// `progress_every`; every one still reaches the PreviewStore).
void EventHub::on_preview(PreviewPtr preview) {
  if (previews_) previews_->put(preview);
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    preview_ = std::move(preview);
  }
  wake_.notify_one();
}

std::optional<Clock::time_point> EventHub::next_due_locked() const {
  std::optional<Clock::time_point> due;
  if (!deltas_.empty()) return Clock::time_point{};
  for (const auto& [id, event] : progress_) {
    const auto sent = progress_sent_.find(id);
    const Clock::time_point t = sent == progress_sent_.end() ? Clock::time_point{} : sent->second + options_.progress_every;
    if (!due || t < *due) due = t;
  }
  if (preview_) {
    const Clock::time_point t = preview_sent_ + options_.progress_every;
    if (!due || t < *due) due = t;
  }
  return due;
}

EventHub::Batch EventHub::take_locked(Clock::time_point now) {
  Batch batch;
  batch.changes.assign(std::make_move_iterator(changes_.begin()), std::make_move_iterator(changes_.end()));
  changes_.clear();
  // A job's state or stage change counts as its latest news: its steps wait their turn after it.
  for (const Change& change : batch.changes)
    if (!change.delta && tracked_.count(change.job.id)) progress_sent_[change.job.id] = now;
  // Text that came since the job's last change goes out now, after it.
  for (auto& [id, text] : deltas_) batch.changes.push_back(Change::of_delta(id, std::move(text)));
  deltas_.clear();
  for (auto it = progress_.begin(); it != progress_.end();) {
    auto sent = progress_sent_.find(it->first);
    if (sent != progress_sent_.end() && now < sent->second + options_.progress_every) {
      ++it;
      continue;
    }
    progress_sent_[it->first] = now;
    batch.progress.push_back(std::move(it->second));
    it = progress_.erase(it);
  }
  // The preview of a job that has finished since is stale: its images are there to see.
  if (preview_ && !tracked_.count(preview_->job_id)) preview_.reset();
  if (preview_ && now >= preview_sent_ + options_.progress_every) {
    batch.preview = std::move(preview_);
    preview_.reset();
    preview_sent_ = now;
  }
  return batch;
}

void EventHub::dispatch_loop() {
  Clock::time_point next_ping = Clock::now() + options_.ping_every;
  Clock::time_point next_round{};
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (Clock::now() < next_round) {
      wake_.wait_until(lock, next_round, [&] { return stopping_; });
      continue;
    }
    const Clock::time_point now = Clock::now();
    Batch batch = take_locked(now);
    if (now >= next_ping) {
      batch.ping = true;
      next_ping = now + options_.ping_every;
    }
    if (batch.changes.empty() && batch.progress.empty() && !batch.preview && !batch.ping) {
      Clock::time_point until = next_ping;
      if (const auto due = next_due_locked()) until = std::min(until, *due);
      wake_.wait_until(lock, until);
      continue;
    }
    lock.unlock();
    const size_t clients = send(batch);
    next_round = now + options_.min_round_gap +
                 std::chrono::duration_cast<Clock::duration>(options_.round_gap_per_client * clients);
    lock.lock();
  }
}

std::string EventHub::queue_message(const QueueState& q) const {
  return dump({{"type", "queue"}, {"queued", q.queued}, {"running", q.running.empty() ? json(nullptr) : json(q.running)}});
}

// Each message is built once; each client gets the round's messages in one batch (one wake-up
// of its connection). Pushes never wait for a network write.
size_t EventHub::send(const Batch& batch) {
  using Kind = MessageStream::Outgoing::Kind;
  std::lock_guard lock(clients_mutex_);
  std::vector<MessageStream::Outgoing> out;
  auto add_job = [&](const JobSnapshot& event, Kind kind) {
    const auto previous = sent_.find(event.id);
    if (previous != sent_.end() && previous->second == event) return;  // nothing new to say
    out.push_back({kind, event.id, dump(job_message(event))});
    if (is_finished(event.state)) sent_.erase(event.id);
    else sent_[event.id] = event;
  };
  const auto add_queue = [&](const QueueState& queue) {
    if (queue == sent_queue_) return;
    sent_queue_ = queue;
    out.push_back({Kind::Plain, "", queue_message(sent_queue_)});
  };
  const auto add_delta = [&](const std::string& id, const std::string& text) {
    out.push_back({Kind::Change, id, dump({{"type", "delta"}, {"job", id}, {"text", text}})});
  };
  if (clients_.size() <= options_.every_change_up_to_clients) {
    for (const Change& change : batch.changes) {
      if (change.delta) {
        add_delta(change.job.id, *change.delta);
        continue;
      }
      add_job(change.job, Kind::Change);
      if (change.queue) add_queue(*change.queue);
    }
  } else {
    // Many clients: within a round only each job's latest change is sent, and the queue's latest
    // count. A job that went queued -> running -> done between two rounds is one message, not
    // six, to each of hundreds of clients (a WebSocket message is a write of its own). Its text
    // deltas of the round are joined into one, sent before its change when that one ends the
    // job, else after it (a job only writes text while it runs).
    struct Latest {
      std::string id;
      const Change* change = nullptr;  // none when the job only wrote text this round
      std::string text;
    };
    std::vector<Latest> latest;
    std::map<std::string, size_t> position;
    const QueueState* queue = nullptr;
    for (const Change& change : batch.changes) {
      const auto [it, added] = position.emplace(change.job.id, latest.size());
      if (added) latest.push_back({change.job.id});
      Latest& job = latest[it->second];
      if (change.delta) {
        job.text += *change.delta;
        continue;
      }
      if (change.queue) queue = &*change.queue;
      job.change = &change;
    }
    for (const Latest& job : latest) {
      const bool ends = job.change && is_finished(job.change->job.state);
      if (!job.text.empty() && (!job.change || ends)) add_delta(job.id, job.text);
      if (job.change) add_job(job.change->job, Kind::Change);
      if (!job.text.empty() && job.change && !ends) add_delta(job.id, job.text);
    }
    if (queue) add_queue(*queue);
  }
  for (const JobSnapshot& event : batch.progress) add_job(event, Kind::Update);
  bool binary = false;
  if (const auto& p = batch.preview) {
    // One running job at a time: a slow client's unsent preview is replaced by the newer one.
    out.push_back({Kind::Update, "preview",
                   dump({{"type", "preview"},
                         {"job", p->job_id},
                         {"seq", p->seq},
                         {"image", p->image},
                         {"step", p->step},
                         {"steps", p->steps},
                         {"method", p->method},
                         {"width", p->width},
                         {"height", p->height},
                         {"content_type", media_type_of(p->format)}})});
    binary = std::any_of(clients_.begin(), clients_.end(), [](const Client& c) { return c.binary_previews; });
    if (binary) out.push_back({Kind::Binary, "", preview_frame(*p)});
  }
  if (batch.ping) out.push_back({Kind::Plain, "", dump({{"type", "ping"}, {"time_ms", unix_ms()}})});
  if (out.empty()) return clients_.size();
  // Streams closed by their connection (gone, or dropped for falling behind) leave here.
  std::erase_if(clients_, [](const Client& c) { return c.stream->closed(); });
  for (auto& c : clients_) c.stream->push_batch(out, c.binary_previews);
  return clients_.size();
}

// The snapshot is what the connected clients were last sent, taken under the lock send() holds
// while it pushes: every later message reaches the new client after its snapshot, so it may
// see a state twice, never an older state after a newer one.
std::shared_ptr<MessageStream> EventHub::subscribe(bool binary_previews) {
  auto stream = std::make_shared<MessageStream>();
  std::lock_guard lock(clients_mutex_);
  if (stopped_) {
    stream->close();
    return stream;
  }
  stream->push(queue_message(sent_queue_));
  std::vector<const JobSnapshot*> unfinished;
  for (const auto& [id, event] : sent_) unfinished.push_back(&event);
  std::sort(unfinished.begin(), unfinished.end(), [](const JobSnapshot* a, const JobSnapshot* b) { return a->seq < b->seq; });
  for (const JobSnapshot* event : unfinished) stream->push_change(event->id, dump(job_message(*event)));
  clients_.push_back({stream, binary_previews});
  return stream;
}

}  // namespace easel::server
