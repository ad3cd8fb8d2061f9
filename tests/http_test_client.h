// A blocking HTTP/1.1 client for the server tests (Boost.Beast), one connection per request.
#pragma once

#include <map>
#include <string>

#include <boost/asio.hpp>
#include <boost/beast.hpp>

namespace easel::testing {

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

inline HttpResult http_request(int port, const std::string& method, const std::string& target,
                               const std::string& body = "", const std::map<std::string, std::string>& headers = {}) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  stream.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  beast::error_code write_ec;
  http::write(stream, req, write_ec);  // the server may answer (413) before the body is all sent
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(size_t(1) << 30);
  beast::error_code ec;
  http::read(stream, buffer, parser, ec);
  HttpResult r;
  if (ec) return r;
  const auto& res = parser.get();
  r.status = res.result_int();
  r.body = res.body();
  for (const auto& f : res) r.headers[std::string(f.name_string())] = std::string(f.value());
  return r;
}

}  // namespace easel::testing
