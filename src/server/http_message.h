// HTTP requests and responses as route handlers see them, independent of the socket library.
//
// A handler answers through a Responder, now or later: the A1111 API's txt2img answers only when
// its job has run, and the HTTP threads must not wait for that (the job queue calls the Responder
// from its executor when the job ends).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace easel::server {

class MessageStream;

struct HttpRequest {
  std::string method;                         // "GET", "POST", ...
  std::string path;                           // percent-decoded, without the query
  std::map<std::string, std::string> query;   // percent-decoded query parameters
  std::map<std::string, std::string> headers; // names lower-case
  std::string body;
  bool has_body = false;                      // the header announces a body (known before it is read)
  std::string client;                         // remote address, for rate limiting and logs
  std::string local_address;                  // where the connection was accepted: "127.0.0.1:7860", "[::1]:7860"
  std::map<std::string, std::string> params;  // "{id}" segments of the matched route

  // The header's value, or "" (name in any case).
  std::string header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A long-lived answer (events): the connection sends the headers, then the stream's messages
  // until either side closes it; as WebSocket text frames when the request asked to upgrade to a
  // WebSocket, otherwise as Server-Sent Events. See message_stream.h.
  std::shared_ptr<MessageStream> stream;

  static HttpResponse json(const nlohmann::json& value, int status = 200);
  // {"error": <reason phrase>, "detail": message}: what FastAPI (A1111, SD.Next) sends, so their
  // clients show our messages.
  static HttpResponse error(int status, std::string_view message);
  static HttpResponse bytes(std::string body, std::string content_type, int status = 200);
  static HttpResponse streaming(std::shared_ptr<MessageStream> stream);
};

// Sends the response for one request; callable once, from any thread.
using Responder = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest& request, Responder respond)>;

std::string_view reason_phrase(int status);

}  // namespace easel::server
