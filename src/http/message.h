// Transport-free HTTP request and response. The api's handlers are pure functions from HttpRequest to
// HttpResponse; src/http/ converts to and from Boost.Beast so that only a few files pay its compile cost.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paypath::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path plus optional query, as received
  std::vector<std::pair<std::string, std::string>> headers;  // in order received; names as received
  std::string body;

  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
  // How many headers are named `name` (case-insensitive): repeated Idempotency-Key headers are an error.
  int HeaderCount(std::string_view name) const;
  // target without the query string.
  std::string_view Path() const;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  const std::string* Header(std::string_view name) const;
  void SetHeader(std::string name, std::string value);
};

bool HeaderNameEquals(std::string_view a, std::string_view b);

}  // namespace paypath::http
