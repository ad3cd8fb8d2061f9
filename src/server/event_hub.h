// Job events for every connected client (the /easel/v1/events SSE stream and the /easel/v1/ws
// WebSocket): each job change the queue reports becomes
//   {"type": "job", "job": {id, kind, state, priority, progress{image, images, step, steps, stage}, error}}
// state changes are followed by {"type": "queue", "queued": n, "running": id|null}, and every
// client gets {"type": "ping", "time_ms": t} on a timer so proxies and clients see it alive.
// Each live preview (previews.h) becomes {"type": "preview", "job": id, "seq": n, ...} for every
// client, followed by the image as a binary frame for the WebSocket clients that asked for them.
//
// Publishing only queues the message on each client's bounded stream (see message_stream.h):
// the executor that reports progress never waits for a network write.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/job_queue.h"
#include "server/message_stream.h"
#include "server/previews.h"

namespace easel::server {

nlohmann::json job_event(const Job& job);

class EventHub {
 public:
  // Listens to the queue (before it starts, so no change is missed); the ping timer starts now.
  explicit EventHub(JobQueue& queue, std::chrono::milliseconds ping_every = std::chrono::seconds(15));
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // A new client's stream; it starts with the queue's state and the unfinished jobs.
  // `binary_previews`: the client (a WebSocket) also gets each preview image as a binary frame.
  std::shared_ptr<MessageStream> subscribe(bool binary_previews = false);
  void publish(const nlohmann::json& event);
  void publish_preview(const Preview& preview);
  void stop();  // closes every stream and the ping timer; idempotent

 private:
  void on_job(const Job& job);
  nlohmann::json queue_event() const;
  void ping_loop(std::chrono::milliseconds every);

  JobQueue& queue_;
  std::mutex mutex_;
  struct Client {
    std::shared_ptr<MessageStream> stream;
    bool binary_previews = false;
  };
  std::vector<Client> clients_;
  std::map<std::string, JobState> last_state_;  // unfinished jobs, to tell state changes from progress
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread pinger_;
};

}  // namespace easel::server
