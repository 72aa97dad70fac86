#include "client/transcript.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"

namespace paypath::client {

std::string FormatAttempt(const AttemptRecord& r) {
  std::string out = "{\"operation\":";
  log::AppendJsonString(out, r.operation);
  out += ",\"key\":";
  log::AppendJsonString(out, r.key);
  out += ",\"attempt\":" + std::to_string(r.attempt);
  out += ",\"result\":";
  log::AppendJsonString(out, r.result);
  out += ",\"status\":" + (r.status ? std::to_string(*r.status) : std::string("null"));
  out += ",\"retry_after\":";
  if (r.retry_after) log::AppendJsonString(out, *r.retry_after);
  else out += "null";
  out += std::string(",\"replayed\":") + (r.replayed ? "true" : "false");
  out += ",\"reason\":";
  log::AppendJsonString(out, r.reason);
  out += ",\"delay_ms\":" + std::to_string(r.delay_ms);
  out += ",\"detail\":";
  log::AppendJsonString(out, r.detail);
  out += "}";
  return out;
}

Result<std::unique_ptr<FileTranscript>> FileTranscript::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Error::Unavailable("open transcript " + path + ": " + std::strerror(errno));
  return std::unique_ptr<FileTranscript>(new FileTranscript(fd));
}

FileTranscript::~FileTranscript() { ::close(fd_); }

void FileTranscript::Write(std::string_view line) {
  std::string l(line);
  l.push_back('\n');
  // O_APPEND + one write: concurrent writers interleave whole lines, not bytes.
  ssize_t unused = ::write(fd_, l.data(), l.size());
  (void)unused;
}

}  // namespace paypath::client
