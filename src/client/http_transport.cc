#include "client/http_transport.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>

#include "client/http1.h"
#include "client/socket_io.h"

namespace paypath::client {

const char* ExchangeKindName(Exchange::Kind k) {
  switch (k) {
    case Exchange::Kind::kResponse: return "response";
    case Exchange::Kind::kConnectFailed: return "connect_failed";
    case Exchange::Kind::kTimeout: return "timeout";
    case Exchange::Kind::kNoResponse: return "no_response";
  }
  return "?";
}

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return v;
  }
  return std::nullopt;
}

Result<HttpUrl> ParseHttpUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return Error::InvalidArgument("only http:// URLs are supported: '" + url + "'");
  std::string rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  HttpUrl out;
  if (slash != std::string::npos) out.base_path = rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  if (authority.empty() || authority.find('@') != std::string::npos)
    return Error::InvalidArgument("URL needs a host and no userinfo: '" + url + "'");
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    std::string port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) || std::stoi(port) > 65535)
      return Error::InvalidArgument("bad port in URL '" + url + "'");
    out.port = static_cast<uint16_t>(std::stoi(port));
    authority = authority.substr(0, colon);
  }
  if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']')
    authority = authority.substr(1, authority.size() - 2);
  out.host = authority;
  return out;
}

Exchange HttpTransport::RoundTrip(const HttpRequest& request, std::chrono::milliseconds timeout) {
  Exchange ex;
  const net::Deadline deadline = clock_.Now() + timeout;
  auto conn = net::ConnectTcp(url_.host, url_.port, clock_, deadline);
  if (!conn.ok()) {
    ex.kind = Exchange::Kind::kConnectFailed;
    ex.detail = conn.error().message;
    return ex;
  }
  net::Fd fd = std::move(conn.value());

  std::string wire = request.method + " " + url_.base_path + request.target + " HTTP/1.1\r\n";
  wire += "Host: " + url_.host + ":" + std::to_string(url_.port) + "\r\n";
  for (const auto& [k, v] : request.headers) wire += k + ": " + v + "\r\n";
  wire += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  wire += "Connection: close\r\n\r\n";
  wire += request.body;

  net::IoStatus ws = net::WriteAll(fd.get(), wire, clock_, deadline);
  if (ws == net::IoStatus::kTimeout) {
    ex.kind = Exchange::Kind::kTimeout;
    ex.detail = "timed out sending the request";
    return ex;
  }
  if (ws != net::IoStatus::kOk) {
    // The server may have read (and acted on) part or all of it before resetting: outcome unknown.
    ex.kind = Exchange::Kind::kNoResponse;
    ex.detail = "connection reset while sending the request";
    return ex;
  }

  std::string buf;
  http1::Parsed msg;
  http1::ReadStatus rs = http1::ReadMessage(fd.get(), &buf, /*is_response=*/true, request.method, clock_, deadline,
                                            &msg);
  switch (rs) {
    case http1::ReadStatus::kComplete:
      ex.kind = Exchange::Kind::kResponse;
      ex.response.status = msg.head.status;
      ex.response.headers = std::move(msg.head.fields);
      ex.response.body = std::move(msg.body);
      return ex;
    case http1::ReadStatus::kTimeout:
      ex.kind = Exchange::Kind::kTimeout;
      ex.detail = buf.empty() ? "no response within the attempt timeout" : "response incomplete at the attempt timeout";
      return ex;
    case http1::ReadStatus::kNoData:
      ex.kind = Exchange::Kind::kNoResponse;
      ex.detail = "connection closed before any response";
      return ex;
    case http1::ReadStatus::kTruncated:
      ex.kind = Exchange::Kind::kNoResponse;
      ex.detail = "connection closed mid-response";
      return ex;
    case http1::ReadStatus::kInvalid:
      ex.kind = Exchange::Kind::kNoResponse;
      ex.detail = "unparseable response: " + msg.error;
      return ex;
  }
  return ex;
}

}  // namespace paypath::client
