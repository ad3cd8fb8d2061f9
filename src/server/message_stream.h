// A long-lived answer: messages a handler keeps sending after the headers, as Server-Sent Events
// or WebSocket text frames (the connection picks the framing), and binary WebSocket frames (live
// previews) for a WebSocket. Producers push from any thread and
// never wait: the queue is bounded, and a client that falls that far behind is dropped, so a slow
// or vanished reader can hold up neither the job executor nor the other clients.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace easel::server {

class MessageStream {
 public:
  // 4096 job events are about 1 MiB: room for a script queueing a thousand jobs at once (two
  // events each) without dropping the web UI, small enough that a stalled client costs little.
  explicit MessageStream(size_t capacity = 4096) : capacity_(capacity) {}

  // Queues a message; false when the stream is closed (client gone, or this push overflowed it).
  bool push(std::string message);
  // Queues a message that supersedes the previous one pushed with the same key while that one is
  // not yet sent: it takes that one's place in the queue (so order with other messages is kept)
  // instead of adding up. For progress: a slow client gets the latest state, not every step.
  bool push_update(const std::string& key, std::string message);
  // Queues a message that must reach the client (a state change). Earlier updates with the same
  // key are no longer replaced: a later update goes after this message, never before it.
  bool push_change(const std::string& key, std::string message);
  // Queues a binary message (a WebSocket binary frame). At most one waits at a time: a newer one
  // replaces the one not yet sent (previews: only the latest matters), so binary messages never
  // add up in a slow client's queue.
  bool push_binary(std::string message);
  // One message of a batch, queued as push, push_update, push_change or push_binary would.
  struct Outgoing {
    enum class Kind { Plain, Update, Change, Binary };
    Kind kind = Kind::Plain;
    std::string key;  // Update and Change
    std::string data;
  };
  // Queues several messages under one lock and wakes the connection once: every wake-up is a
  // handler an I/O thread runs, and on a small machine those threads take their cores from the
  // job's compute threads. `with_binary`: false skips the binary ones (an SSE client).
  bool push_batch(const std::vector<Outgoing>& messages, bool with_binary);
  void close();
  bool closed() const;

  // Connection side. The waker runs (on the pushing thread, so it must only post work) after
  // every push and on close; pop takes the next message in order (and says whether it is binary).
  void set_waker(std::function<void()> waker);
  std::optional<std::string> pop(bool* binary = nullptr);

 private:
  const size_t capacity_;
  mutable std::mutex mutex_;
  struct Message {
    std::string data;
    bool binary = false;
  };
  bool append_locked(Message message);  // false when it overflowed the queue
  bool queue_locked(const Outgoing& message);  // false when the stream is (now) closed
  // Messages are numbered in push order; queue_[i] is number popped_ + i.
  std::deque<Message> queue_;
  uint64_t popped_ = 0;
  std::unordered_map<std::string, uint64_t> updates_;  // key -> number of its replaceable message
  std::optional<uint64_t> binary_;                      // number of the binary message waiting, if any
  bool closed_ = false;
  std::function<void()> waker_;
};

}  // namespace easel::server
