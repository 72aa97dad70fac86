// Transport-free HTTP request and response. The api's handlers are pure functions from HttpRequest to
// HttpResponse; src/http/ converts to and from Boost.Beast so that only a few files pay its compile cost.
#pragma once

#include <functional>
#include <memory>
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

// Work to run later on some thread (a continuation).
using Task = std::function<void()>;

// The answer to one request of an asynchronous handler (src/http/server.h). A handler may keep it and
// answer later from any thread: requests wait as continuations, not as parked threads.
//   Send  exactly once, from any thread; later calls are ignored. A Responder dropped without Send answers
//         500 (a lost continuation is a bug, but the client still gets an answer).
//   Post  runs `task` soon on the request's connection executor (one of the server's I/O threads), never
//         inline: a store's worker hands a continuation back with it instead of running it itself.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void Send(HttpResponse response) = 0;
  virtual void Post(Task task) = 0;
};
using ResponderPtr = std::shared_ptr<Responder>;

}  // namespace paypath::http
