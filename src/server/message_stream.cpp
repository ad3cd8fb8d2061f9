#include "server/message_stream.h"

#include "server/http_message.h"

namespace easel::server {

HttpResponse HttpResponse::streaming(std::shared_ptr<MessageStream> stream) {
  HttpResponse r;
  r.content_type = "text/event-stream";
  r.stream = std::move(stream);
  return r;
}

bool MessageStream::push(std::string message) {
  return push_batch({{Outgoing::Kind::Plain, "", std::move(message)}}, true);
}

bool MessageStream::push_update(const std::string& key, std::string message) {
  return push_batch({{Outgoing::Kind::Update, key, std::move(message)}}, true);
}

bool MessageStream::push_change(const std::string& key, std::string message) {
  return push_batch({{Outgoing::Kind::Change, key, std::move(message)}}, true);
}

bool MessageStream::push_binary(std::string message) {
  return push_batch({{Outgoing::Kind::Binary, "", std::move(message)}}, true);
}

bool MessageStream::push_batch(const std::vector<Outgoing>& messages, bool with_binary) {
  bool ok = true;
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    for (const Outgoing& m : messages) {
      if (m.kind == Outgoing::Kind::Binary && !with_binary) continue;
      if (!(ok = queue_locked(m))) break;
    }
    wake = waker_;
  }
  if (wake) wake();  // once for the batch; also when it closed the stream, so the connection ends
  return ok;
}

bool MessageStream::queue_locked(const Outgoing& m) {
  switch (m.kind) {
    case Outgoing::Kind::Plain:
      return append_locked({m.data, false});
    case Outgoing::Kind::Update: {
      const auto it = updates_.find(m.key);
      if (it != updates_.end() && it->second >= popped_) {
        queue_[it->second - popped_].data = m.data;
        return true;
      }
      if (!append_locked({m.data, false})) return false;
      updates_[m.key] = popped_ + queue_.size() - 1;
      return true;
    }
    case Outgoing::Kind::Change:
      updates_.erase(m.key);
      return append_locked({m.data, false});
    case Outgoing::Kind::Binary:
      if (binary_ && *binary_ >= popped_) {
        // The waiting frame leaves the queue; the messages after it move up one place.
        const uint64_t gone = *binary_;
        queue_.erase(queue_.begin() + std::ptrdiff_t(gone - popped_));
        for (auto& [key, number] : updates_)
          if (number > gone) --number;
      }
      if (!append_locked({m.data, true})) return false;
      binary_ = popped_ + queue_.size() - 1;
      return true;
  }
  return false;
}

bool MessageStream::append_locked(Message message) {
  if (queue_.size() >= capacity_) {
    closed_ = true;  // too far behind: drop the client rather than buffer without end
    queue_.clear();
    updates_.clear();
    binary_.reset();
    return false;
  }
  queue_.push_back(std::move(message));
  return true;
}

void MessageStream::close() {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    queue_.clear();
    updates_.clear();
    binary_.reset();
    wake = waker_;
  }
  if (wake) wake();
}

bool MessageStream::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

void MessageStream::set_waker(std::function<void()> waker) {
  {
    std::lock_guard lock(mutex_);
    waker_ = waker;
  }
  if (waker) waker();  // messages queued before the connection took the stream
}

std::optional<std::string> MessageStream::pop(bool* binary) {
  std::lock_guard lock(mutex_);
  if (queue_.empty()) return std::nullopt;
  Message m = std::move(queue_.front());
  queue_.pop_front();
  ++popped_;
  if (m.binary) binary_.reset();
  // Updates already taken can no longer be replaced; forgetting them keeps the map small.
  if (updates_.size() > 64) std::erase_if(updates_, [&](const auto& kv) { return kv.second < popped_; });
  if (binary) *binary = m.binary;
  return std::move(m.data);
}

}  // namespace easel::server
