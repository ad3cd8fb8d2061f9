// Job events for every connected client (the /easel/v1/events SSE stream and the /easel/v1/ws
// WebSocket): each job change the queue reports becomes
//   {"type": "job", "job": {id, kind, state, priority, progress{image, images, step, steps, stage}, error}}
// state changes are followed by {"type": "queue", "queued": n, "running": id|null}, and every
// client gets {"type": "ping", "time_ms": t} on a timer so proxies and clients see it alive.
// Each live preview (previews.h) becomes {"type": "preview", "job": id, "seq": n, ...} for every
// client, followed by the image as a binary frame for the WebSocket clients that asked for them;
// the hub keeps it in the PreviewStore (if given) before any client hears of it.
// A token job's text deltas become {"type": "delta", "job": id, "text": t}: never lost, in order
// with the job's state changes (every delta of a job comes before its "done"), the deltas of a
// job within a round joined into one. A client that connects mid-job gets the deltas from then on.
// The final result and an error are the job's last state change (state "done", or "failed" with
// its "error"); GET /easel/v1/jobs/{id} has the result.
//
// Serving events costs the job nothing: the queue's listener (on the executor thread) only
// records the job's latest state and wakes the hub's dispatcher thread, which builds each
// message once and queues it on every client's bounded stream (message_stream.h).
// What clients get is coalesced:
//   - state changes (queued -> running -> done) and stage changes (text -> sample -> decode) are
//     sent in order and never lost (a few per image, however many steps), at once or, in a burst
//     of changes, with the next round (at most `min_round_gap` later, plus
//     `round_gap_per_client` for each client); with more than `every_change_up_to_clients`
//     clients, a round carries only each job's latest change (the latest state wins);
//   - steps within a stage are sent at most every `progress_every` per job (counted from the job's
//     last event of any kind), and previews at most every `progress_every` (none for a job that
//     has finished since), the latest one winning;
//   - an event identical to the job's previous one is not sent at all;
//   - a client that falls behind has its unsent progress (and preview) of a job replaced by the
//     newer one, so it catches up with the latest state instead of every step.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/job_queue.h"
#include "server/message_stream.h"
#include "server/previews.h"

namespace easel::server {

// What a "job" event says about a job: small, so recording it on the executor costs nothing.
struct JobSnapshot {
  std::string id, kind;
  JobState state = JobState::Queued;
  int priority = 0;
  int64_t seq = 0;
  JobProgress progress;
  std::string error;
  bool operator==(const JobSnapshot&) const = default;
};

JobSnapshot snapshot_of(const Job& job);
nlohmann::json job_message(const JobSnapshot& job);

struct EventHubOptions {
  std::chrono::milliseconds ping_every = std::chrono::seconds(15);
  std::chrono::milliseconds progress_every = std::chrono::milliseconds(100);  // per job
  // Between two rounds of sending. A round wakes the connections of every client, and on a
  // small machine their I/O threads take the cores the job's compute threads spin-wait on
  // (bench/server_events.py, 2 cores, 450 clients: 20 small jobs took 7-21 s with rounds as
  // often as changes came). A change after a quiet moment still goes out at once; in a burst it
  // waits for the next round.
  std::chrono::milliseconds min_round_gap = std::chrono::milliseconds(100);
  // ... plus this for every connected client, so the client wake-ups a second stay bounded
  // (under 500) however many clients listen: 450 clients, a round at most every second, as often
  // as A1111's UI polls progress.
  std::chrono::microseconds round_gap_per_client = std::chrono::microseconds(2000);
  // With more clients than this, a round sends each job's latest change only (latest state wins),
  // not every change since the last round: a WebSocket message is a write of its own per client.
  size_t every_change_up_to_clients = 32;
};

class EventHub {
 public:
  // Listens to the queue (before it starts, so no change is missed); the dispatcher starts now.
  // Live previews go into `previews` (when given) before they are announced.
  explicit EventHub(JobQueue& queue, EventHubOptions options = {}, PreviewStore* previews = nullptr);
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // A new client's stream; it starts with the queue's state and the unfinished jobs, as the
  // clients already connected last heard of them.
  // `binary_previews`: the client (a WebSocket) also gets each preview image as a binary frame.
  std::shared_ptr<MessageStream> subscribe(bool binary_previews = false);
  void stop();  // closes every stream and the dispatcher; idempotent

 private:
  struct QueueState {
    int queued = 0;
    std::string running;
    bool operator==(const QueueState&) const = default;
  };
  // A change that every client gets, in the order it happened.
  struct Change {
    JobSnapshot job;
    std::optional<QueueState> queue;  // after a state change; none after a stage change
    std::optional<std::string> delta;  // text of job.id (the only field set): a "delta" event

    static Change of_delta(std::string id, std::string text) {
      Change change;
      change.job.id = std::move(id);
      change.delta = std::move(text);
      return change;
    }
  };
  struct Tracked {
    JobState state;
    std::string stage;
  };
  // What the dispatcher takes in one round.
  struct Batch {
    std::vector<Change> changes;
    std::vector<JobSnapshot> progress;
    std::shared_ptr<const Preview> preview;
    bool ping = false;
  };

  void on_job(const Job& job, const JobEvent& event);  // the queue's listener: records, never sends
  bool on_change_locked(const Job& job);  // a state change or a progress report; true: wake the dispatcher
  void on_preview(PreviewPtr preview);
  void flush_delta_locked(const std::string& id);  // the job's pending text into changes_
  void dispatch_loop();
  Batch take_locked(std::chrono::steady_clock::time_point now);
  std::optional<std::chrono::steady_clock::time_point> next_due_locked() const;
  size_t send(const Batch& batch);  // returns the number of clients
  std::string queue_message(const QueueState& q) const;

  const EventHubOptions options_;
  PreviewStore* const previews_;

  // Recorded by on_job, taken by the dispatcher.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, Tracked> tracked_;  // unfinished jobs as last reported
  QueueState queue_state_;
  std::deque<Change> changes_;
  std::map<std::string, JobSnapshot> progress_;  // the latest unsent step of each job
  std::map<std::string, std::chrono::steady_clock::time_point> progress_sent_;
  std::map<std::string, std::string> deltas_;  // text of each job not yet in changes_
  std::shared_ptr<const Preview> preview_;  // the latest unsent one
  std::chrono::steady_clock::time_point preview_sent_{};
  bool stopping_ = false;

  // The dispatcher's side: the clients and what they were last told (the snapshot a new client gets).
  std::mutex clients_mutex_;
  struct Client {
    std::shared_ptr<MessageStream> stream;
    bool binary_previews = false;
  };
  std::vector<Client> clients_;
  std::map<std::string, JobSnapshot> sent_;  // unfinished jobs, as last sent
  QueueState sent_queue_;
  bool stopped_ = false;  // under clients_mutex_: subscribe() after stop() gets a closed stream

  std::thread dispatcher_;
};

}  // namespace easel::server
