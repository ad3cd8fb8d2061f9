#include "server/event_hub.h"

#include <algorithm>

namespace easel::server {

using nlohmann::json;

json job_event(const Job& job) {
  const JobProgress& p = job.progress;
  json j = {{"id", job.id},
            {"kind", job.kind},
            {"state", job_state_name(job.state)},
            {"priority", job.priority},
            {"progress", {{"image", p.image}, {"images", p.images}, {"step", p.step}, {"steps", p.steps}, {"stage", p.stage}}}};
  if (!job.error.empty()) j["error"] = job.error;
  return {{"type", "job"}, {"job", j}};
}

EventHub::EventHub(JobQueue& queue, std::chrono::milliseconds ping_every) : queue_(queue) {
  queue_.add_listener([this](const Job& job) { on_job(job); });
  pinger_ = std::thread([this, ping_every] { ping_loop(ping_every); });
}

EventHub::~EventHub() { stop(); }

void EventHub::stop() {
  std::vector<Client> clients;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    clients.swap(clients_);
  }
  wake_.notify_all();
  if (pinger_.joinable()) pinger_.join();
  for (auto& c : clients) c.stream->close();
}

json EventHub::queue_event() const {
  const auto running = queue_.running();
  return {{"type", "queue"}, {"queued", queue_.queued_count()}, {"running", running ? json(running->id) : json(nullptr)}};
}

// The snapshot is taken and the client registered under the lock publish() holds while it
// pushes, so every later change reaches the client after its snapshot: it may see a state twice,
// never an older state after a newer one.
std::shared_ptr<MessageStream> EventHub::subscribe(bool binary_previews) {
  auto stream = std::make_shared<MessageStream>();
  std::lock_guard lock(mutex_);
  if (stopping_) {
    stream->close();
    return stream;
  }
  stream->push(queue_event().dump());
  std::vector<Job> unfinished;
  for (const Job& job : queue_.list())
    if (job.state == JobState::Queued || job.state == JobState::Running) unfinished.push_back(job);
  std::reverse(unfinished.begin(), unfinished.end());  // oldest first, as they happened
  for (const Job& job : unfinished) stream->push(job_event(job).dump());
  clients_.push_back({stream, binary_previews});
  return stream;
}

void EventHub::publish(const json& event) {
  const std::string message = event.dump(-1, ' ', false, json::error_handler_t::replace);
  std::lock_guard lock(mutex_);
  // Streams closed by their connection (gone, or dropped for falling behind) leave here. A push
  // only queues (message_stream.h), so holding the lock here costs the producer nothing more.
  std::erase_if(clients_, [](const Client& c) { return c.stream->closed(); });
  for (auto& c : clients_) c.stream->push(message);
}

void EventHub::publish_preview(const Preview& preview) {
  const std::string event = json{{"type", "preview"},
                                 {"job", preview.job_id},
                                 {"seq", preview.seq},
                                 {"image", preview.image},
                                 {"step", preview.step},
                                 {"steps", preview.steps},
                                 {"method", preview.method},
                                 {"width", preview.width},
                                 {"height", preview.height},
                                 {"content_type", preview_content_type(preview.format)}}
                                .dump();
  std::string frame;  // built only when a client wants it
  std::lock_guard lock(mutex_);
  std::erase_if(clients_, [](const Client& c) { return c.stream->closed(); });
  for (auto& c : clients_) {
    c.stream->push(event);
    if (!c.binary_previews) continue;
    if (frame.empty()) frame = preview_frame(preview);
    c.stream->push_binary(frame);
  }
}

void EventHub::on_job(const Job& job) {
  bool state_changed;
  {
    std::lock_guard lock(mutex_);
    auto it = last_state_.find(job.id);
    state_changed = it == last_state_.end() || it->second != job.state;
    if (job.state == JobState::Queued || job.state == JobState::Running) last_state_[job.id] = job.state;
    else if (it != last_state_.end()) last_state_.erase(it);
  }
  publish(job_event(job));
  if (state_changed) publish(queue_event());
}

void EventHub::ping_loop(std::chrono::milliseconds every) {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, every, [this] { return stopping_; })) {
    lock.unlock();
    publish({{"type", "ping"}, {"time_ms", unix_ms()}});
    lock.lock();
  }
}

}  // namespace easel::server
