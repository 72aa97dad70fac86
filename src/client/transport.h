// Transport: one HTTP exchange (one attempt), behind an interface so the retrying client can be tested
// with scripted outcomes and no network. Implementations: HttpTransport (http_transport.h), and scripted
// fakes in tests.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paypath::client {

struct HttpRequest {
  std::string method = "POST";
  std::string target = "/";  // origin-form: "/v1/charges"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header named `name` (case-insensitive).
  std::optional<std::string> Header(std::string_view name) const;
};

// What became of one attempt. The kinds differ in what the caller knows about the server's side:
//   kResponse       a complete response arrived (any status).
//   kConnectFailed  no connection was made: the request was certainly not sent.
//   kTimeout        connected, but no complete response arrived within the attempt timeout: the request
//                   may have been processed (outcome unknown).
//   kNoResponse     the connection closed or was reset before a complete response: outcome unknown too
//                   (the server may have done the work and lost the reply, which is what the proxy's
//                   "eat response" fault produces).
struct Exchange {
  enum class Kind { kResponse, kConnectFailed, kTimeout, kNoResponse };
  Kind kind = Kind::kNoResponse;
  HttpResponse response;  // kind == kResponse only
  std::string detail;     // failures: a short cause for logs and transcripts
};
const char* ExchangeKindName(Exchange::Kind k);

class Transport {
 public:
  virtual ~Transport() = default;
  // Performs one exchange, giving up after `timeout` (connect + send + full response). Never throws.
  // Thread-safety: implementations say; HttpTransport is safe for concurrent calls.
  virtual Exchange RoundTrip(const HttpRequest& request, std::chrono::milliseconds timeout) = 0;
};

}  // namespace paypath::client
