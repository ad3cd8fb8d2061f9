// The HTTP layer of `easel serve` against what browsers and hostile clients do: cross-origin
// writes and DNS rebinding (origin_policy.h), CORS with "*", the order of authentication and rate
// limits, request smuggling, HEAD, request bodies handled off the I/O threads, and slow or
// too many connections. Each test talks to a running ServerApp on 127.0.0.1.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "http_test_client.h"
#include "io/base64.h"
#include "server/origin_policy.h"
#include "server/server_app.h"
#include "server_test_support.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::http_request;
using Clock = std::chrono::steady_clock;

// A plain socket, so a test can send exactly the bytes it means (bad framing, half a header) and
// see exactly what comes back.
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == ssize_t(bytes.size());
  }
  void shutdown_send() { ::shutdown(fd_, SHUT_WR); }
  // Reads until the server closes the connection (true) or `timeout` passes (false).
  bool read_until_close(std::string& out, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto end = Clock::now() + timeout;
    char buf[65536];
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, int(left)) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;  // closed (or reset)
      out.append(buf, size_t(n));
    }
  }
  // One response on a keep-alive connection: its header block, and the Content-Length bytes after
  // it unless `head`. Empty when the server closed first.
  std::string read_response(bool head = false) {
    char buf[4096];
    while (true) {
      const size_t end = pending_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t cl = lower(pending_.substr(0, end)).find("content-length:");
        if (cl != std::string::npos && !head) length = std::stoul(pending_.substr(cl + 15));
        if (pending_.size() >= end + 4 + length) {
          std::string response = pending_.substr(0, end + 4 + length);
          pending_.erase(0, end + 4 + length);
          return response;
        }
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return "";
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return "";
      pending_.append(buf, size_t(n));
    }
  }

 private:
  static std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  int fd_;
  bool connected_ = false;
  std::string pending_;
};

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::map<std::string, std::string> basic(const std::string& user_pass) {
  return {{"Authorization",
           "Basic " + base64_encode({reinterpret_cast<const uint8_t*>(user_pass.data()), user_pass.size()})}};
}

class ServerHttp : public ::testing::Test {
 protected:
  void start(const std::function<void(server::ServeOptions&)>& configure = {}) {
    app.reset();
    root = fs::temp_directory_path() / ("easel_http_" + std::to_string(::getpid()));
    fs::remove_all(root);
    server::ServeOptions o = testing::test_serve_options(root);
    if (configure) configure(o);
    app = std::make_unique<server::ServerApp>(o);
    ASSERT_TRUE(app->start().ok());
    port = app->port();
  }
  void TearDown() override {
    app.reset();
    fs::remove_all(root);
  }
  testing::HttpResult post(const std::string& path, const std::string& body,
                           const std::map<std::string, std::string>& headers = {}) {
    return http_request(port, "POST", path, body, headers);
  }
  std::string own_origin() const { return "http://127.0.0.1"; }  // the test client's Host is 127.0.0.1

  fs::path root;
  std::unique_ptr<server::ServerApp> app;
  int port = 0;
};

// ---- 1. origin / host policy ----

TEST_F(ServerHttp, RefusesCrossOriginWritesButNotClientsWithoutOrigin) {
  start();
  const auto evil = post("/sdapi/v1/options", "{}", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(evil.status, 403);
  EXPECT_NE(json::parse(evil.body, nullptr, false).value("detail", "").find("--cors-origins"), std::string::npos) << evil.body;
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Origin", "null"}}).status, 403);
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Origin", "http://127.0.0.1.evil.example"}}).status, 403);
  EXPECT_EQ(http_request(port, "DELETE", "/easel/v1/jobs/x", "", {{"Origin", "http://evil.example"}}).status, 403);
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Sec-Fetch-Site", "cross-site"}}).status, 403);
  // The web UI (same origin), Python clients (no Origin), and reads from anywhere go on.
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Origin", own_origin()}}).status, 200);
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Sec-Fetch-Site", "same-origin"}}).status, 200);
  EXPECT_EQ(post("/sdapi/v1/options", "{}").status, 200);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", {{"Origin", "http://evil.example"}}).status, 200);
  // The OpenAI routes answer in OpenAI's error shape.
  const auto openai = post("/v1/images/generations", R"({"prompt":"x"})", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(openai.status, 403);
  EXPECT_TRUE(json::parse(openai.body)["error"].is_object()) << openai.body;

  // A WebSocket is opened by any page: its Origin decides.
  const std::map<std::string, std::string> upgrade = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                                                      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                                      {"Sec-WebSocket-Version", "13"}};
  auto with_origin = [&](const std::string& origin) {
    auto h = upgrade;
    h["Origin"] = origin;
    return h;
  };
  EXPECT_EQ(http_request(port, "GET", "/easel/v1/ws", "", with_origin("http://evil.example")).status, 403);
  EXPECT_EQ(http_request(port, "GET", "/easel/v1/ws", "", with_origin(own_origin())).status, 101);

  // Listed origins may write.
  start([](server::ServeOptions& o) { o.security.cors_origins = {"http://good.example"}; });
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Origin", "http://good.example"}}).status, 200);
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Origin", "http://evil.example"}}).status, 403);
}

TEST_F(ServerHttp, BodiesMustBeJson) {
  start();
  const std::map<std::string, std::string> text = {{"Content-Type", "text/plain"}};
  const auto plain = post("/sdapi/v1/options", "{}", text);
  EXPECT_EQ(plain.status, 415);
  EXPECT_NE(plain.body.find("application/json"), std::string::npos) << plain.body;
  EXPECT_EQ(post("/sdapi/v1/txt2img", "{}", {{"Content-Type", "application/x-www-form-urlencoded"}}).status, 415);
  EXPECT_EQ(post("/sdapi/v1/txt2img", "{}", {{"Content-Type", ""}}).status, 415);
  // The no-preflight CSRF: a text/plain POST from another origin fails on both counts.
  auto csrf = text;
  csrf["Origin"] = "http://evil.example";
  EXPECT_EQ(post("/sdapi/v1/options", "{}", csrf).status, 403);
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Content-Type", "application/JSON; charset=utf-8"}}).status, 200);
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Content-Type", "application/merge-patch+json"}}).status, 200);
  // webuiapi's interrupt has no body.
  EXPECT_EQ(post("/sdapi/v1/interrupt", "", text).status, 200);
  // Edits take multipart: past the type check to the handler's own 400.
  EXPECT_EQ(post("/v1/images/edits", "--b\r\n", {{"Content-Type", "multipart/form-data; boundary=b"}}).status, 400);
  EXPECT_EQ(post("/v1/images/generations", "--b\r\n", {{"Content-Type", "multipart/form-data; boundary=b"}}).status, 415);
}

TEST_F(ServerHttp, RefusesForeignHostNamesWhileOnLoopback) {
  start([](server::ServeOptions& o) { o.security.allowed_hosts = {"sd.lan"}; });
  auto get = [&](const std::string& host) {
    return http_request(port, "GET", "/sdapi/v1/options", "", {{"Host", host}}).status;
  };
  EXPECT_EQ(get("evil.example"), 403);
  EXPECT_EQ(get("evil.example:" + std::to_string(port)), 403);
  EXPECT_EQ(get("localhost.evil.example"), 403);
  EXPECT_EQ(get("127.0.0.1.nip.io"), 403);
  for (const std::string host : {"localhost", "LOCALHOST:1234", "127.0.0.1:7860", "127.0.0.2", "[::1]:7860", "sd.lan",
                                 "SD.lan:80"})
    EXPECT_EQ(get(host), 200) << host;
  const auto refused = http_request(port, "GET", "/sdapi/v1/options", "", {{"Host", "evil.example"}});
  EXPECT_NE(refused.body.find("--allowed-hosts"), std::string::npos) << refused.body;
  // HTTP/1.1 needs a Host; HTTP/1.0 may go without.
  {
    RawConnection c(port);
    c.send("GET /sdapi/v1/options HTTP/1.1\r\n\r\n");
    std::string out;
    c.read_until_close(out);
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  }
  {
    RawConnection c(port);
    c.send("GET /sdapi/v1/options HTTP/1.0\r\n\r\n");
    std::string out;
    c.read_until_close(out);
    EXPECT_EQ(out.rfind("HTTP/1.0 200", 0) == 0 || out.rfind("HTTP/1.1 200", 0) == 0, true) << out;
  }
  // On 0.0.0.0 without --allowed-hosts, names are not checked (LAN clients use the machine's name).
  start([](server::ServeOptions& o) { o.host = "0.0.0.0"; });
  EXPECT_EQ(get("my-pc.lan"), 200);
  start([](server::ServeOptions& o) {
    o.host = "0.0.0.0";
    o.security.allowed_hosts = {"my-pc.lan"};
  });
  EXPECT_EQ(get("my-pc.lan:7860"), 200);
  EXPECT_EQ(get("other.lan"), 403);
}

TEST_F(ServerHttp, ImageUrlsComeFromTheAcceptedAddressOrPublicUrlNeverFromHost) {
  auto models = [&](server::ServeOptions& o) { ASSERT_FALSE(testing::make_tiny_models_dir(o.models_dir).empty()); };
  const json request = {{"prompt", "a ball"}, {"size", "48x32"}, {"steps", 1}, {"response_format", "url"}};
  start(models);
  const auto res = post("/v1/images/generations", request.dump(), {{"Host", "localhost:1"}});
  ASSERT_EQ(res.status, 200) << res.body;
  const std::string url = json::parse(res.body)["data"][0]["url"];
  EXPECT_EQ(url.rfind("http://127.0.0.1:" + std::to_string(port) + "/outputs/", 0), 0u) << url;

  start([&](server::ServeOptions& o) {
    models(o);
    o.security.public_url = "https://sd.example/easel/";
  });
  const auto proxied = post("/v1/images/generations", request.dump());
  ASSERT_EQ(proxied.status, 200) << proxied.body;
  const std::string public_url = json::parse(proxied.body)["data"][0]["url"];
  EXPECT_EQ(public_url.rfind("https://sd.example/easel/outputs/", 0), 0u) << public_url;
  // Its origin is the server's own: the page behind the proxy may write.
  EXPECT_EQ(post("/sdapi/v1/options", "{}", {{"Origin", "https://sd.example"}}).status, 200);
}

TEST_F(ServerHttp, CorsWildcardNeverAllowsCredentials) {
  start([](server::ServeOptions& o) { o.security.cors_origins = {"*"}; });
  const auto any = http_request(port, "GET", "/sdapi/v1/options", "", {{"Origin", "http://a.example"}});
  EXPECT_EQ(any.headers.at("Access-Control-Allow-Origin"), "*");
  EXPECT_EQ(any.headers.count("Access-Control-Allow-Credentials"), 0u);
  const auto pre = http_request(port, "OPTIONS", "/sdapi/v1/txt2img", "",
                                {{"Origin", "http://a.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.headers.at("Access-Control-Allow-Origin"), "*");
  EXPECT_EQ(pre.headers.count("Access-Control-Allow-Credentials"), 0u);

  start([](server::ServeOptions& o) { o.security.cors_origins = {"http://good.example", "null"}; });
  const auto good = http_request(port, "GET", "/sdapi/v1/options", "", {{"Origin", "http://good.example"}});
  EXPECT_EQ(good.headers.at("Access-Control-Allow-Origin"), "http://good.example");
  EXPECT_EQ(good.headers.at("Access-Control-Allow-Credentials"), "true");
  const auto null = http_request(port, "GET", "/sdapi/v1/options", "", {{"Origin", "null"}});
  EXPECT_EQ(null.headers.count("Access-Control-Allow-Origin"), 0u);
}

// ---- 2. rate limits after authentication ----

TEST_F(ServerHttp, AFloodWithoutCredentialsDoesNotLockOutTheUser) {
  start([](server::ServeOptions& o) {
    o.security.auth = {"alice:s3cret"};
    o.security.rate_limit = 300;
  });
  int unauthorized = 0, limited = 0;
  for (int i = 0; i < 320; ++i) {
    const int status = http_request(port, "GET", "/sdapi/v1/options").status;
    unauthorized += status == 401;
    limited += status == 429;
  }
  EXPECT_EQ(unauthorized, 300);
  EXPECT_EQ(limited, 20);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", basic("alice:s3cret")).status, 200);
}

TEST_F(ServerHttp, WrongPasswordsAreThrottledWithoutBeingChecked) {
  start([](server::ServeOptions& o) {
    o.security.auth = {"alice:s3cret"};
    o.security.rate_limit = 300;
  });
  std::vector<int> statuses;
  testing::HttpResult last;
  for (int i = 0; i < 25; ++i) {
    last = http_request(port, "GET", "/sdapi/v1/options", "", basic("alice:guess" + std::to_string(i)));
    statuses.push_back(last.status);
  }
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 401), 20);
  EXPECT_EQ(statuses.back(), 429);
  EXPECT_GE(std::stoi(last.headers.at("Retry-After")), 1);
  // Now even the right password is not tried: a guesser cannot tell it found it.
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options", "", basic("alice:s3cret")).status, 429);
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/options").status, 401);
}

// A client that may not use the server cannot make it buffer an upload: the refusal comes as soon
// as the header is read, without waiting for the body.
TEST_F(ServerHttp, RefusedRequestsAreAnsweredBeforeTheirBodyIsRead) {
  start([](server::ServeOptions& o) {
    o.security.auth = {"alice:s3cret"};
    o.max_body_bytes = size_t(64) << 20;
  });
  for (const std::string& extra : {std::string(), std::string("Authorization: Basic ") + "YWxpY2U6czNjcmV0\r\nOrigin: http://evil.example\r\n"}) {
    RawConnection c(port);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + extra +
                       "Content-Length: 60000000\r\n\r\n{\"prompt\": \""));
    const auto t0 = Clock::now();
    const std::string response = c.read_response();
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
    EXPECT_TRUE(response.rfind(extra.empty() ? "HTTP/1.1 401" : "HTTP/1.1 403", 0) == 0) << response;
  }
}

// ---- 3. request smuggling ----

TEST_F(ServerHttp, AmbiguousFramingIsRefusedAndTheRestNeverAnswered) {
  start();
  const std::string smuggled = "GET /sdapi/v1/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  auto exchange = [&](const std::string& head, const std::string& body) {
    RawConnection c(port);
    c.send("POST /sdapi/v1/interrupt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + head + "\r\n" +
           body + smuggled);
    c.shutdown_send();
    std::string out;
    EXPECT_TRUE(c.read_until_close(out)) << head;
    return out;
  };
  // Well framed, the pipelined second request is answered too.
  const std::string fine = exchange("Content-Length: 0\r\n", "");
  EXPECT_EQ(count_of(fine, "HTTP/1.1 200"), 2) << fine;
  const struct { const char* head; const char* body; } cases[] = {
      {"Transfer-Encoding: identity\r\n", ""},
      {"Transfer-Encoding: gzip\r\n", ""},
      {"Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"},
      {"Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"},
      {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"},
      {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"},
      {"Content-Length: 0\r\nContent-Length: 0\r\n", ""},
      {"Content-Length: 0, 0\r\n", ""},
  };
  for (const auto& c : cases) {
    const std::string out = exchange(c.head, c.body);
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << c.head << out;
    EXPECT_EQ(count_of(out, "HTTP/1.1 "), 1) << c.head << out;
  }
  // Chunked alone is fine.
  const std::string chunked = exchange("Transfer-Encoding:  Chunked \r\n", "2\r\n{}\r\n0\r\n\r\n");
  EXPECT_EQ(count_of(chunked, "HTTP/1.1 200"), 2) << chunked;
}

// ---- 4. HEAD ----

TEST_F(ServerHttp, HeadAnswersTheGetsLengthWithoutABody) {
  start();
  const auto get = http_request(port, "GET", "/web/style.css");
  ASSERT_EQ(get.status, 200);
  ASSERT_FALSE(get.body.empty());
  RawConnection c(port);
  c.send("HEAD /web/style.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const std::string head = c.read_response(true);
  EXPECT_NE(head.find("Content-Length: " + std::to_string(get.body.size()) + "\r\n"), std::string::npos) << head;
  // No body follows: the next answer on the connection starts right after the header.
  c.send("GET /sdapi/v1/progress HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  std::string rest;
  c.read_until_close(rest);
  EXPECT_EQ(rest.rfind("HTTP/1.1 200", 0), 0u) << rest.substr(0, 200);
}

// ---- 5. bodies off the I/O threads ----

TEST_F(ServerHttp, BigBodiesDoNotStallPolling) {
  start([](server::ServeOptions& o) {
    o.max_body_bytes = size_t(64) << 20;
    o.http_workers = 1;
  });
  // 40 MB of JSON that takes a while to parse (millions of numbers), twice: before, each held
  // one of the two I/O threads.
  std::string big = R"({"prompt": "x", "padding": [0)";
  big.reserve(size_t(41) << 20);
  while (big.size() < (size_t(40) << 20)) big += ",0,0,0,0,0,0,0,0";
  big += "]}";
  std::atomic<int> outstanding{2};
  std::vector<std::thread> senders;
  for (int i = 0; i < 2; ++i)
    senders.emplace_back([&] {
      post("/sdapi/v1/txt2img", big);
      --outstanding;
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the bodies are sent
  double worst_ms = 0;
  int polls = 0;
  while (outstanding > 0) {
    const auto t0 = Clock::now();
    EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/progress").status, 200);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (outstanding > 0) {
      worst_ms = std::max(worst_ms, ms);
      ++polls;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& t : senders) t.join();
  EXPECT_GE(polls, 3) << "the big requests ended too soon to tell";
  EXPECT_LT(worst_ms, 200) << polls << " polls";
}

// ---- 6. connections ----

TEST_F(ServerHttp, IdleAndTricklingConnectionsAreClosed) {
  start([](server::ServeOptions& o) { o.request_timeout_s = 1; });
  auto closed_within = [&](RawConnection& c, double seconds) {
    const auto t0 = Clock::now();
    std::string out;
    const bool closed = c.read_until_close(out, std::chrono::milliseconds(int(seconds * 1000)));
    return closed ? std::chrono::duration<double>(Clock::now() - t0).count() : -1.0;
  };
  {
    RawConnection idle(port);
    const double t = closed_within(idle, 4);
    EXPECT_GT(t, 0) << "an idle connection stayed open";
    EXPECT_GT(t, 0.5) << "closed before its timeout";
  }
  {
    // After an answer, a keep-alive connection is idle too.
    RawConnection kept(port);
    kept.send("GET /sdapi/v1/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    EXPECT_FALSE(kept.read_response().empty());
    EXPECT_GT(closed_within(kept, 4), 0);
  }
  {
    // A header sent a byte at a time never completes in time.
    RawConnection trickle(port);
    std::atomic<bool> stop{false};
    std::thread t([&] {
      trickle.send("GET /sdapi/v1/progress HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
      while (!stop && trickle.send("a")) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    });
    EXPECT_GT(closed_within(trickle, 4), 0) << "a trickled header kept the connection";
    stop = true;
    t.join();
  }
  {
    // So does a body sent a byte at a time, though each byte comes within the timeout.
    RawConnection trickle(port);
    std::atomic<bool> stop{false};
    std::thread t([&] {
      trickle.send("POST /sdapi/v1/options HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: 100000\r\n\r\n");
      while (!stop && trickle.send(" ")) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    });
    EXPECT_GT(closed_within(trickle, 6), 0) << "a trickled body kept the connection";
    stop = true;
    t.join();
  }
  // Normal requests are not affected.
  EXPECT_EQ(http_request(port, "GET", "/sdapi/v1/progress").status, 200);
}

TEST_F(ServerHttp, CapsConnectionsPerClient) {
  start([](server::ServeOptions& o) { o.max_client_connections = 4; });
  std::vector<std::unique_ptr<RawConnection>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(std::make_unique<RawConnection>(port));
    open.back()->send("GET /sdapi/v1/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    EXPECT_EQ(open.back()->read_response().rfind("HTTP/1.1 200", 0), 0u);
  }
  const auto fifth = http_request(port, "GET", "/sdapi/v1/progress");
  EXPECT_EQ(fifth.status, 429);
  EXPECT_NE(fifth.body.find("--max-client-connections"), std::string::npos) << fifth.body;
  // Once one of them closes, there is room again.
  open.pop_back();
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    status = http_request(port, "GET", "/sdapi/v1/progress").status;
  }
  EXPECT_EQ(status, 200);
  // The connections still open keep working.
  open.front()->send("GET /sdapi/v1/progress HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(open.front()->read_response().rfind("HTTP/1.1 200", 0), 0u);
}

TEST(ServerHttpOriginPolicy, ParsesHostsAndMediaTypes) {
  EXPECT_EQ(server::host_name("LocalHost:7860"), "localhost");
  EXPECT_EQ(server::host_name("[::1]:7860"), "[::1]");
  EXPECT_EQ(server::host_name(" 127.0.0.1 "), "127.0.0.1");
  EXPECT_TRUE(server::is_loopback_ip("127.0.0.1"));
  EXPECT_TRUE(server::is_loopback_ip("127.8.9.10"));
  EXPECT_TRUE(server::is_loopback_ip("::1"));
  EXPECT_FALSE(server::is_loopback_ip("127.0.0.1.nip.io"));
  EXPECT_FALSE(server::is_loopback_ip("0.0.0.0"));
  EXPECT_FALSE(server::is_loopback_ip("1.127.0.0"));
  EXPECT_EQ(server::media_type(" Application/JSON ; charset=utf-8"), "application/json");
}

}  // namespace
}  // namespace easel
