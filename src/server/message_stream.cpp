#include "server/message_stream.h"

#include "server/http_message.h"

namespace easel::server {

HttpResponse HttpResponse::streaming(std::shared_ptr<MessageStream> stream) {
  HttpResponse r;
  r.content_type = "text/event-stream";
  r.stream = std::move(stream);
  return r;
}

bool MessageStream::push(std::string message) { return push_message({std::move(message), false}); }

bool MessageStream::push_binary(std::string message) { return push_message({std::move(message), true}); }

bool MessageStream::push_message(Message message) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    if (message.binary && binary_queued_) {
      std::erase_if(queue_, [](const Message& m) { return m.binary; });
      binary_queued_ = 0;
    }
    if (queue_.size() >= capacity_) {
      closed_ = true;  // too far behind: drop the client rather than buffer without end
      queue_.clear();
      binary_queued_ = 0;
    } else {
      binary_queued_ += message.binary;
      queue_.push_back(std::move(message));
    }
    wake = waker_;
  }
  if (wake) wake();
  return !closed();
}

void MessageStream::close() {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    queue_.clear();
    binary_queued_ = 0;
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
  binary_queued_ -= m.binary;
  if (binary) *binary = m.binary;
  return std::move(m.data);
}

}  // namespace easel::server
