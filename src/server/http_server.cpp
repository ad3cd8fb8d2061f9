#include "server/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/beast/websocket.hpp>

#include "server/header_text.h"
#include "server/message_stream.h"

namespace easel::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += char(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

namespace {

// Everything but the body, which is moved in once it has been read.
void fill_request(HttpRequest& r, const http::request_header<>& req, const std::string& client, const std::string& local) {
  r.method = std::string(req.method_string().data(), req.method_string().size());
  const std::string_view target(req.target().data(), req.target().size());
  const size_t q = target.find('?');
  r.path = percent_decode(target.substr(0, q), false);
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      const size_t amp = query.find('&');
      const std::string_view pair = query.substr(0, amp);
      const size_t eq = pair.find('=');
      r.query[percent_decode(pair.substr(0, eq), true)] =
          eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1), true);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
  }
  for (const auto& field : req) {
    r.headers[ascii_lower(std::string_view(field.name_string().data(), field.name_string().size()))] =
        std::string(field.value().data(), field.value().size());
  }
  r.client = client;
  r.local_address = local;
}

std::string lower_trimmed(beast::string_view v) { return ascii_lower(trim_blanks(std::string_view(v.data(), v.size()))); }

// Framing that two HTTP parsers could read differently (a proxy in front of us and we), so that
// bytes one takes for a body the other takes for a second request: refused, never guessed at.
// Beast already refuses some of these; the rest reach here. We decode no coding but chunked.
std::optional<std::string> framing_problem(const http::request_header<>& h) {
  const size_t te = h.count(http::field::transfer_encoding), cl = h.count(http::field::content_length);
  if (te > 1 || (te == 1 && lower_trimmed(h[http::field::transfer_encoding]) != "chunked"))
    return "Transfer-Encoding must be exactly 'chunked' (no other coding is supported)";
  if (te == 1 && cl > 0) return "Transfer-Encoding and Content-Length together are ambiguous";
  if (cl > 1 || h[http::field::content_length].find(',') != beast::string_view::npos)
    return "several Content-Length values are ambiguous";
  if (h.count(http::field::host) > 1) return "several Host headers";
  if (h.version() >= 11 && h.count(http::field::host) == 0) return "an HTTP/1.1 request must have a Host header";
  return std::nullopt;
}

std::string endpoint_text(const tcp::endpoint& e) {
  const auto a = e.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}

// Server-Sent Events queued for one client are written together up to about this many bytes.
constexpr size_t kMaxEventWrite = size_t(256) << 10;

// Bodies above this are big enough that giving their memory back to the system is worth a trim.
constexpr size_t kTrimAfterBody = size_t(4) << 20;

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  const Router& router;
  // Declared before the I/O context and the pool: sessions they still hold unregister here when
  // those are destroyed.
  std::mutex connections_mutex;
  std::unordered_map<std::string, int> connections;  // open connections per client address
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_timer{io};
  std::vector<std::thread> threads;
  asio::thread_pool workers;
  std::atomic<bool> stopped{false};
  int bound_port = 0;

  Impl(ServerOptions o, const Router& r)
      : options(std::move(o)), router(r), workers(size_t(std::max(1, options.worker_threads))) {}
  void accept();
  // Counts a new connection of `client`; false when that passes the per-client cap (it still
  // counts until close_connection).
  bool open_connection(const std::string& client) {
    std::lock_guard lock(connections_mutex);
    const int n = ++connections[client];
    return options.max_client_connections <= 0 || n <= options.max_client_connections;
  }
  void close_connection(const std::string& client) {
    std::lock_guard lock(connections_mutex);
    auto it = connections.find(client);
    if (it != connections.end() && --it->second <= 0) connections.erase(it);
  }
};

namespace {

// One connection: read a request, answer it (now or later), repeat while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server), strand_(stream_.get_executor()) {
    beast::error_code ec;
    const auto endpoint = stream_.socket().remote_endpoint(ec);
    client_ = ec ? "unknown" : endpoint.address().to_string();
    const auto local = stream_.socket().local_endpoint(ec);
    local_ = ec ? "localhost" : endpoint_text(local);
    within_cap_ = server_.open_connection(client_);
  }

  // A stream outliving its connection is closed, so its producer stops feeding it.
  ~Session() {
    if (events_) events_->close();
    server_.close_connection(client_);
  }

  void start() {
    if (!within_cap_) {
      keep_alive_ = false;
      request_ = std::make_shared<HttpRequest>();
      auto r = HttpResponse::error(429, "too many open connections from " + client_ + " (at most " +
                                            std::to_string(server_.options.max_client_connections) +
                                            "); reuse or close connections (--max-client-connections)");
      r.headers.emplace_back("Retry-After", "1");
      return write(std::move(r));
    }
    read_header();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void read_header() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    request_ = std::make_shared<HttpRequest>();
    // One deadline for the whole header: a client trickling a byte at a time gains nothing.
    stream_.expires_after(server_.options.request_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // True when the read failed and the connection is being answered or closed.
  bool read_failed(beast::error_code ec) {
    if (!ec) return false;
    if (ec == beast::error::timeout) {
      hard_close();
      return true;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted || ec == asio::error::eof ||
        ec == asio::error::connection_reset) {
      close();
      return true;
    }
    keep_alive_ = false;
    if (parser_->is_header_done()) fill_request(*request_, parser_->get(), client_, local_);
    if (ec == http::error::body_limit) {
      write(HttpResponse::error(413, "request body is larger than the server's limit of " +
                                         std::to_string(server_.options.max_body_bytes >> 20) + " MiB"));
    } else {
      write(HttpResponse::error(400, "malformed HTTP request: " + ec.message()));
    }
    return true;
  }

  void on_header(beast::error_code ec) {
    if (read_failed(ec)) return;
    const auto& header = parser_->get();
    fill_request(*request_, header, client_, local_);
    if (auto problem = framing_problem(header)) {
      keep_alive_ = false;
      return write(HttpResponse::error(400, "malformed HTTP request: " + *problem));
    }
    const auto length = parser_->content_length();
    request_->has_body = parser_->chunked() || (length && *length > 0);
    // Gatekeeping needs only the header: a request that is refused (401, 403, 415, 429) is answered
    // before its body is read, so no client that may not use the server makes it buffer megabytes.
    if (server_.options.before) {
      if (auto early = server_.options.before(*request_)) {
        keep_alive_ = false;
        return write(std::move(*early));
      }
    }
    const uint64_t expected = length ? *length : server_.options.max_body_bytes;
    body_deadline_ = Clock::now() + server_.options.request_timeout +
                     std::chrono::milliseconds(expected * 1000 / std::max<size_t>(1, server_.options.min_body_rate));
    if (!parser_->is_done() && lower_trimmed(header[http::field::expect]) == "100-continue") {
      // curl waits a second for this before it sends a body over 1 MB.
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return asio::async_write(stream_, asio::buffer(kContinue), [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return self->hard_close();
        self->read_body();
      });
    }
    read_body();
  }

  // The body, a piece at a time: each piece must come within the request timeout, all of it
  // before the deadline its length allows.
  void read_body() {
    if (parser_->is_done()) return on_request();
    stream_.expires_at(std::min(Clock::now() + server_.options.request_timeout, body_deadline_));
    http::async_read_some(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->read_failed(ec)) return;
      self->read_body();
    });
  }

  void on_request() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    request_->body = std::move(req.body());
    auto request = request_;
    if (request->body.empty()) return dispatch(*request);
    // Parsing JSON or decoding an image can take seconds: not on the I/O threads, which must stay
    // free for every other connection (progress polling).
    asio::post(server_.workers, [self = shared_from_this(), request, size = request->body.size()] {
      self->dispatch(*request);
      if (size > kTrimAfterBody) {
        std::string().swap(request->body);
#ifdef __GLIBC__
        malloc_trim(0);  // big bodies are mmapped (cmd_serve); this returns the rest of the heap
#endif
      }
    });
  }

  // Runs the handler (the before hook has passed the header); on an I/O thread or a worker.
  void dispatch(HttpRequest& request) {
    auto self = shared_from_this();
    // The Responder may run on any thread (the job executor): hop onto this connection's strand.
    Responder respond = [self](HttpResponse response) {
      asio::post(self->strand_, [self, response = std::move(response)]() mutable { self->write(std::move(response)); });
    };
    try {
      server_.router.dispatch(request, respond);
    } catch (const std::exception& e) {
      respond(HttpResponse::error(500, std::string("internal error: ") + e.what()));
    }
  }

  void write(HttpResponse response) {
    if (server_.options.after) server_.options.after(*request_, response);
    const bool head = request_->method == "HEAD";
    if (response.stream && head) response.stream->close();
    else if (response.stream && response.status == 200) return start_stream(std::move(response));
    auto done = [self = shared_from_this()](beast::error_code ec) {
      if (ec || !self->keep_alive_) return self->close();
      self->read_header();
    };
    // A client that does not read its answer is dropped.
    stream_.expires_after(std::chrono::seconds(60) +
                          std::chrono::milliseconds(response.body.size() * 1000 / std::max<size_t>(1, server_.options.min_body_rate)));
    if (head) return write_head(response, std::move(done));
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<http::status>(response.status));
    res->set(http::field::server, "easel");
    res->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res->set(name, value);
    res->keep_alive(keep_alive_);
    res->body() = std::move(response.body);
    res->prepare_payload();
    http::async_write(stream_, *res, [res, done](beast::error_code ec, size_t) { done(ec); });
  }

  // HEAD: the GET's header, with the length of the body the GET would send, and no body.
  template <class Done>
  void write_head(const HttpResponse& response, Done done) {
    struct Head {
      http::response<http::empty_body> res;
      http::response_serializer<http::empty_body> serializer{res};
    };
    auto h = std::make_shared<Head>();
    h->res.version(11);
    h->res.result(static_cast<http::status>(response.status));
    h->res.set(http::field::server, "easel");
    h->res.set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) h->res.set(name, value);
    h->res.keep_alive(keep_alive_);
    h->res.content_length(response.body.size());
    http::async_write_header(stream_, h->serializer, [h, done](beast::error_code ec, size_t) { done(ec); });
  }

  // Lingering close: after our last response, read and drop what the client still sends (the
  // rest of a refused upload) for a moment, so the kernel does not answer it with a reset that
  // destroys the response before the client has read it.
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    drain();
  }

  // A client too slow to finish its request gets nothing more.
  void hard_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }
  void drain() {
    if (!drain_buffer_) drain_buffer_ = std::make_unique<std::array<char, 65536>>();
    stream_.async_read_some(asio::buffer(*drain_buffer_), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (!ec && self->drained_ < (size_t(64) << 20)) self->drain();
    });
  }

  // ---- long-lived answers: the connection now only carries the stream's messages ----

  void start_stream(HttpResponse response) {
    events_ = std::move(response.stream);
    auto self = shared_from_this();
    // The waker runs on whichever thread pushed (the job executor): it only posts to the strand,
    // and holds the session weakly so a stream outliving its connection keeps nothing alive.
    const auto waker = [weak = weak_from_this()] {
      if (auto s = weak.lock()) asio::post(s->strand_, [s] { s->pump(); });
    };
    if (websocket::is_upgrade(parser_->get())) {
      ws_ = std::make_unique<websocket::stream<beast::tcp_stream>>(std::move(stream_));
      beast::get_lowest_layer(*ws_).expires_never();
      // Pings an idle client and drops one that stops answering them.
      ws_->set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
      ws_->read_message_max(64 * 1024);
      ws_->set_option(websocket::stream_base::decorator(
          [](websocket::response_type& res) { res.set(http::field::server, "easel"); }));
      ws_->async_accept(parser_->get(), [self, waker](beast::error_code ec) {
        if (ec) return self->events_->close();
        self->ws_read();
        self->events_->set_waker(waker);
      });
      return;
    }
    std::string header = "HTTP/1.1 200 OK\r\nServer: easel\r\nContent-Type: text/event-stream\r\n"
                         "Cache-Control: no-cache\r\nConnection: keep-alive\r\nX-Accel-Buffering: no\r\n";
    for (const auto& [name, value] : response.headers) header += name + ": " + value + "\r\n";
    out_ = header + "\r\n";
    writing_ = true;
    stream_.expires_after(std::chrono::seconds(30));
    asio::async_write(stream_, asio::buffer(out_), [self, waker](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->events_->close();
      self->sse_read();
      self->events_->set_waker(waker);
    });
  }

  // A WebSocket must be read for control frames (ping, close); what the client sends is ignored.
  void ws_read() {
    ws_->async_read(ws_in_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->events_->close();
      self->ws_in_.clear();
      self->ws_read();
    });
  }

  // An SSE client sends nothing: a read completes only when it goes away.
  void sse_read() {
    stream_.socket().async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->events_->close();
      self->sse_read();
    });
  }

  // Writes queued messages one at a time; closes the connection once the stream is closed.
  void pump() {
    if (writing_) return;
    if (events_->closed()) return close_stream();
    bool binary = false;
    auto message = events_->pop(&binary);
    if (!message) return;
    if (binary && !ws_) return pump();  // binary messages are for WebSocket clients only
    writing_ = true;
    auto done = [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) {
        self->events_->close();
        return self->close_stream();
      }
      self->pump();
    };
    if (ws_) {
      out_ = std::move(*message);
      ws_->binary(binary);  // live previews (event_hub.h); everything else is JSON text
      ws_->async_write(asio::buffer(out_), std::move(done));
    } else {
      // Every event already queued goes out in one write: with hundreds of clients, each write is
      // a wake-up of an I/O thread that takes a core from the running job.
      out_ = "data: " + *message + "\n\n";
      while (out_.size() < kMaxEventWrite) {
        auto next = events_->pop(&binary);
        if (!next) break;
        if (!binary) out_ += "data: " + *next + "\n\n";
      }
      stream_.expires_after(std::chrono::seconds(30));  // a client that stops reading is dropped
      asio::async_write(stream_, asio::buffer(out_), std::move(done));
    }
  }

  void close_stream() {
    beast::error_code ec;
    if (ws_) beast::get_lowest_layer(*ws_).socket().close(ec);
    else stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  asio::strand<asio::any_io_executor> strand_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // Shared with a worker that handles it; a new one for each request.
  std::shared_ptr<HttpRequest> request_ = std::make_shared<HttpRequest>();
  std::string client_;
  std::string local_;  // the address the connection was accepted on, "127.0.0.1:7860"
  bool within_cap_ = true;
  bool keep_alive_ = false;
  std::chrono::steady_clock::time_point body_deadline_{};
  // Streaming (SSE / WebSocket) state, used on the strand only.
  std::shared_ptr<MessageStream> events_;
  std::unique_ptr<websocket::stream<beast::tcp_stream>> ws_;
  beast::flat_buffer ws_in_;
  std::array<char, 512> scratch_{};  // bytes read only to notice a close, then dropped
  std::string out_;
  bool writing_ = false;
  std::unique_ptr<std::array<char, 65536>> drain_buffer_;
  size_t drained_ = 0;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (stopped) return;
    if (ec) {
      // Out of descriptors (EMFILE, ENFILE) fails again at once: wait a moment instead of spinning.
      accept_timer.expires_after(std::chrono::milliseconds(100));
      accept_timer.async_wait([this](beast::error_code) {
        if (!stopped) accept();
      });
      return;
    }
    std::make_shared<Session>(std::move(socket), *this)->start();
    accept();
  });
}

HttpServer::HttpServer(ServerOptions options, const Router& router)
    : impl_(std::make_unique<Impl>(std::move(options), router)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  const std::string where = impl_->options.host + ":" + std::to_string(impl_->options.port);
  beast::error_code ec;
  const auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) return Error(where + ": not an IP address (" + ec.message() + ")");
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(impl_->options.port));
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error(where + ": cannot listen (" + ec.message() + ")");
  impl_->bound_port = acceptor.local_endpoint().port();
  impl_->accept();
  for (int i = 0; i < std::max(1, impl_->options.io_threads); ++i) impl_->threads.emplace_back([this] { impl_->io.run(); });
  return {};
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  beast::error_code ec;
  impl_->acceptor.close(ec);
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  impl_->workers.stop();  // requests not yet started are dropped; running ones finish
  impl_->workers.join();
}

int HttpServer::port() const { return impl_->bound_port; }

}  // namespace easel::server
