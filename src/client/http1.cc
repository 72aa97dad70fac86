#include "client/http1.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace paypath::http1 {
namespace {

constexpr size_t kMaxHead = 16 * 1024;  // Beast's default header limit is 8 KiB; twice that is generous

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

bool IContains(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                        [](char x, char y) { return std::tolower(x) == std::tolower(y); });
  return it != hay.end();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool ParseStartLine(std::string_view line, bool is_response, Head* h, std::string* err) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    *err = "malformed start line";
    return false;
  }
  if (is_response) {
    if (line.substr(0, 5) != "HTTP/") {
      *err = "not an HTTP response";
      return false;
    }
    std::string code(line.substr(sp1 + 1, 3));
    if (code.size() != 3 || !std::all_of(code.begin(), code.end(), ::isdigit)) {
      *err = "malformed status code";
      return false;
    }
    h->status = std::atoi(code.c_str());
    return true;
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.substr(sp2 + 1, 5) != "HTTP/") {
    *err = "malformed request line";
    return false;
  }
  h->method = std::string(line.substr(0, sp1));
  h->target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  return true;
}

// Chunked body starting at buf[pos]. Returns kComplete with *end past the trailers and the decoded body.
ParseState ParseChunked(std::string_view buf, size_t pos, size_t max_size, size_t* end, std::string* body,
                        std::string* err) {
  for (;;) {
    size_t eol = buf.find("\r\n", pos);
    if (eol == std::string_view::npos) return buf.size() > max_size ? ParseState::kInvalid : ParseState::kIncomplete;
    std::string_view size_line = buf.substr(pos, eol - pos);
    size_line = size_line.substr(0, size_line.find(';'));  // chunk extensions are ignored
    size_line = Trim(size_line);
    if (size_line.empty() || size_line.size() > 8 ||
        !std::all_of(size_line.begin(), size_line.end(), ::isxdigit)) {
      *err = "malformed chunk size";
      return ParseState::kInvalid;
    }
    size_t n = std::strtoul(std::string(size_line).c_str(), nullptr, 16);
    pos = eol + 2;
    if (n == 0) {
      // Trailer fields until an empty line.
      for (;;) {
        size_t t = buf.find("\r\n", pos);
        if (t == std::string_view::npos) return ParseState::kIncomplete;
        bool empty = t == pos;
        pos = t + 2;
        if (empty) {
          *end = pos;
          return ParseState::kComplete;
        }
      }
    }
    if (pos + n + 2 > max_size) {
      *err = "body over the size limit";
      return ParseState::kInvalid;
    }
    if (buf.size() < pos + n + 2) return ParseState::kIncomplete;
    if (buf.substr(pos + n, 2) != "\r\n") {
      *err = "chunk not followed by CRLF";
      return ParseState::kInvalid;
    }
    body->append(buf.substr(pos, n));
    pos += n + 2;
  }
}

}  // namespace

std::optional<std::string> Head::Get(std::string_view name) const {
  for (const auto& [k, v] : fields)
    if (IEquals(k, name)) return v;
  return std::nullopt;
}

bool Head::WantsClose() const {
  auto c = Get("Connection");
  if (c && IContains(*c, "close")) return true;
  bool is_response = start_line.rfind("HTTP/", 0) == 0;
  bool http10 = is_response ? start_line.rfind("HTTP/1.0", 0) == 0
                            : start_line.size() >= 8 && start_line.substr(start_line.size() - 8) == "HTTP/1.0";
  return http10 && !(c && IContains(*c, "keep-alive"));
}

Parsed Parse(std::string_view buf, bool is_response, std::string_view request_method, bool eof, size_t max_size) {
  Parsed p;
  size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (buf.size() > kMaxHead) {
      p.state = ParseState::kInvalid;
      p.error = "head over 16 KiB";
    }
    return p;
  }
  if (head_end + 4 > kMaxHead) {
    p.state = ParseState::kInvalid;
    p.error = "head over 16 KiB";
    return p;
  }
  std::string_view head = buf.substr(0, head_end);
  size_t eol = head.find("\r\n");
  std::string_view start = head.substr(0, eol);
  p.head.start_line = std::string(start);
  if (!ParseStartLine(start, is_response, &p.head, &p.error)) {
    p.state = ParseState::kInvalid;
    return p;
  }
  while (eol != std::string_view::npos) {
    size_t next = head.find("\r\n", eol + 2);
    std::string_view line = head.substr(eol + 2, next == std::string_view::npos ? std::string_view::npos : next - eol - 2);
    eol = next;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      p.state = ParseState::kInvalid;
      p.error = "malformed header field";
      return p;
    }
    p.head.fields.emplace_back(std::string(line.substr(0, colon)), std::string(Trim(line.substr(colon + 1))));
  }
  p.head_complete = true;
  const size_t body_start = head_end + 4;

  bool no_body = is_response && (p.head.status / 100 == 1 || p.head.status == 204 || p.head.status == 304 ||
                                 request_method == "HEAD");
  auto te = p.head.Get("Transfer-Encoding");
  auto cl = p.head.Get("Content-Length");
  if (no_body) {
    p.state = ParseState::kComplete;
    p.size = body_start;
    return p;
  }
  if (te && IContains(*te, "chunked")) {
    size_t end = 0;
    p.state = ParseChunked(buf, body_start, max_size, &end, &p.body, &p.error);
    if (p.state == ParseState::kComplete) p.size = end;
    if (p.state != ParseState::kComplete) p.body.clear();
    return p;
  }
  if (cl) {
    if (cl->empty() || cl->size() > 12 || !std::all_of(cl->begin(), cl->end(), ::isdigit)) {
      p.state = ParseState::kInvalid;
      p.error = "malformed Content-Length";
      return p;
    }
    size_t n = std::strtoull(cl->c_str(), nullptr, 10);
    if (body_start + n > max_size) {
      p.state = ParseState::kInvalid;
      p.error = "body over the size limit";
      return p;
    }
    if (buf.size() < body_start + n) return p;
    p.state = ParseState::kComplete;
    p.size = body_start + n;
    p.body = std::string(buf.substr(body_start, n));
    return p;
  }
  if (!is_response) {  // a request with neither has no body (RFC 9112 6.3 rule 6)
    p.state = ParseState::kComplete;
    p.size = body_start;
    return p;
  }
  p.until_close = true;
  if (buf.size() > max_size) {
    p.state = ParseState::kInvalid;
    p.error = "body over the size limit";
    return p;
  }
  if (!eof) return p;
  p.state = ParseState::kComplete;
  p.size = buf.size();
  p.body = std::string(buf.substr(body_start));
  return p;
}

const char* ReadStatusName(ReadStatus s) {
  switch (s) {
    case ReadStatus::kComplete: return "complete";
    case ReadStatus::kNoData: return "no_data";
    case ReadStatus::kTruncated: return "truncated";
    case ReadStatus::kTimeout: return "timeout";
    case ReadStatus::kInvalid: return "invalid";
  }
  return "?";
}

ReadStatus ReadMessage(int fd, std::string* buf, bool is_response, std::string_view request_method, Clock& clock,
                       net::Deadline deadline, Parsed* msg, std::string* raw, size_t max_size) {
  bool eof = false;
  for (;;) {
    if (!buf->empty() || eof) {
      Parsed p = Parse(*buf, is_response, request_method, eof, max_size);
      if (p.state == ParseState::kInvalid) {
        *msg = std::move(p);
        return ReadStatus::kInvalid;
      }
      if (p.state == ParseState::kComplete) {
        if (raw != nullptr) raw->assign(*buf, 0, p.size);
        buf->erase(0, p.size);
        *msg = std::move(p);
        return ReadStatus::kComplete;
      }
      if (eof) {
        *msg = std::move(p);
        return buf->empty() ? ReadStatus::kNoData : ReadStatus::kTruncated;
      }
    }
    net::IoStatus st = net::ReadSome(fd, buf, 16 * 1024, clock, deadline);
    if (st == net::IoStatus::kTimeout) return ReadStatus::kTimeout;
    if (st == net::IoStatus::kReset) {
      // A reset discards what the kernel had not delivered: whatever we hold is all there is. An
      // until-close body ended by RST is not trusted as complete.
      return buf->empty() ? ReadStatus::kNoData : ReadStatus::kTruncated;
    }
    if (st == net::IoStatus::kClosed) eof = true;
  }
}

}  // namespace paypath::http1
