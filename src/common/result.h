// Result<T>: the value of a call or the reason it failed, returned across module boundaries instead of
// exceptions. The error codes double as a retry guide (after abseil's status codes):
//   kUnavailable      the dependency could not be reached; retrying the call later may succeed.
//   kAborted          the transaction lost a race (serialization failure, deadlock); retry the transaction.
//   kOutcomeUnknown   the request may or may not have taken effect (for example the connection dropped
//                     during COMMIT). Never blindly retry a non-idempotent step; resolve the outcome first.
//   kInvalidArgument  bad input; do not retry until the input is fixed.
//   kNotFound, kConflict, kFailedPrecondition: state-dependent answers; do not retry as is.
//   kInternal         a bug or an unexpected reply.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace paypath {

enum class ErrorCode {
  kInvalidArgument,
  kNotFound,
  kConflict,
  kFailedPrecondition,
  kUnavailable,
  kAborted,
  kOutcomeUnknown,
  kInternal,
};

const char* ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
  // The PostgreSQL SQLSTATE the error came from ("25006", "23514", ...), empty when it did not come from
  // PostgreSQL. For metrics and logs, and for telling a refusal of the data (class 22, 23) from trouble.
  std::string sqlstate = {};

  static Error InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
  static Error NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
  static Error Conflict(std::string m) { return {ErrorCode::kConflict, std::move(m)}; }
  static Error FailedPrecondition(std::string m) { return {ErrorCode::kFailedPrecondition, std::move(m)}; }
  static Error Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
  static Error Aborted(std::string m) { return {ErrorCode::kAborted, std::move(m)}; }
  static Error OutcomeUnknown(std::string m) { return {ErrorCode::kOutcomeUnknown, std::move(m)}; }
  static Error Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

  // "unavailable: connection refused"
  std::string ToString() const;
};

// A value or an Error. Check ok() before value(); value() on an error is a bug (asserts).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}         // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
struct Ok {};
using Status = Result<Ok>;
inline Status OkStatus() { return Ok{}; }

}  // namespace paypath
