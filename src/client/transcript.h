// Transcript: one JSON line per attempt of the retrying client, for the proof run and for people
// debugging a single `paypath charge`. Written to a sink: a file (append) or, in tests, memory. No sink
// means no transcript.
//
// Line format (fields always present, in this order; null where not applicable):
//   {"operation":"charge","key":"<Idempotency-Key>","attempt":1,"result":"response"|"connect_failed"|
//    "timeout"|"no_response","status":503|null,"retry_after":"2"|null,"replayed":false,
//    "reason":"retry_status","delay_ms":1234,"detail":"..."}
//   delay_ms is the wait chosen before the next attempt (0 when the call stops here); reason is the
//   RetryReason name (retry_policy.h); retry_after is the raw header value as received.
// The API key and the request body are never written.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace paypath::client {

struct AttemptRecord {
  std::string operation;
  std::string key;
  int attempt = 0;
  std::string result;                      // ExchangeKindName
  std::optional<int> status;               // when a response arrived
  std::optional<std::string> retry_after;  // raw header, when present
  bool replayed = false;
  std::string reason;                      // RetryReasonName
  int64_t delay_ms = 0;
  std::string detail;
};

// The JSON line for `r` (without the trailing newline).
std::string FormatAttempt(const AttemptRecord& r);

class TranscriptSink {
 public:
  virtual ~TranscriptSink() = default;
  // Writes one line (a newline is appended). Must be thread-safe.
  virtual void Write(std::string_view line) = 0;
};

// Appends to a file, one write(2) per line so lines stay whole when several processes share the file.
class FileTranscript : public TranscriptSink {
 public:
  // kUnavailable if the file cannot be opened for appending.
  static Result<std::unique_ptr<FileTranscript>> Open(const std::string& path);
  ~FileTranscript() override;
  void Write(std::string_view line) override;

 private:
  explicit FileTranscript(int fd) : fd_(fd) {}
  int fd_;
};

// Keeps lines in memory (tests).
class MemoryTranscript : public TranscriptSink {
 public:
  void Write(std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;  // protected by mu_
};

}  // namespace paypath::client
