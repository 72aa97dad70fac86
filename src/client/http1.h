// HTTP/1.1 message framing: where a request or response ends in a byte stream, and its head fields.
// Shared by the client transport (which needs the response) and the fault proxy (which needs request and
// response boundaries to make one decision per request on a keep-alive connection). Pure functions over
// buffers plus one socket reader; no Boost.
//
// Supported framing (RFC 9112 section 6): Transfer-Encoding: chunked, Content-Length, responses without
// either read until close, and the bodiless responses (1xx, 204, 304, replies to HEAD).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/socket_io.h"

namespace paypath::http1 {

struct Head {
  std::string start_line;  // "POST /v1/charges HTTP/1.1" or "HTTP/1.1 201 Created"
  std::vector<std::pair<std::string, std::string>> fields;  // names as received, values trimmed
  // Requests.
  std::string method;
  std::string target;
  // Responses.
  int status = 0;

  // The first field named `name` (case-insensitive), if any.
  std::optional<std::string> Get(std::string_view name) const;
  // True when the sender asked to close after this message (Connection: close, or HTTP/1.0 without
  // keep-alive).
  bool WantsClose() const;
};

enum class ParseState { kIncomplete, kComplete, kInvalid };

struct Parsed {
  ParseState state = ParseState::kIncomplete;
  Head head;              // valid once the head is complete (also when the body is not)
  bool head_complete = false;
  size_t size = 0;        // kComplete: bytes of buf the whole message occupies (head + framed body)
  std::string body;       // kComplete: the body with chunked framing removed
  bool until_close = false;  // response framed by connection close: complete only when eof is true
  std::string error;      // kInvalid: why
};

// Parses the message at the start of `buf`. `is_response` selects the framing rules; `request_method` is
// the method of the request a response answers ("HEAD" responses have no body). `eof` says the peer has
// closed, which completes an until-close body. Limits: head 16 KiB, whole message `max_size` (kInvalid
// beyond). Re-parses from the start on each call: fine for the small messages of this service.
Parsed Parse(std::string_view buf, bool is_response, std::string_view request_method, bool eof,
             size_t max_size = 1 << 20);

enum class ReadStatus {
  kComplete,  // *msg holds a whole message; bytes after it stay in *buf (pipelining)
  kNoData,    // the peer closed or reset before sending any byte of a message
  kTruncated, // the peer closed or reset after part of a message
  kTimeout,   // the deadline passed first (partial bytes stay in *buf)
  kInvalid,   // not HTTP/1.1, or over the limits
};
const char* ReadStatusName(ReadStatus s);

// Reads one message from fd into *msg, using and updating *buf (bytes already read but not consumed).
// On kComplete the message's bytes are removed from *buf and kept verbatim in *raw (if raw != nullptr),
// which is what a proxy forwards.
ReadStatus ReadMessage(int fd, std::string* buf, bool is_response, std::string_view request_method,
                       Clock& clock, net::Deadline deadline, Parsed* msg, std::string* raw = nullptr,
                       size_t max_size = 1 << 20);

}  // namespace paypath::http1
