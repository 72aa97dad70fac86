#include "client/client.h"

#include <boost/json.hpp>
#include <cassert>

#include "common/log.h"

namespace paypath::client {
namespace {

constexpr Outcome kAllOutcomes[] = {Outcome::kCreated, Outcome::kReplayed, Outcome::kRejected, Outcome::kGaveUp,
                                    Outcome::kBudgetExhausted};
constexpr RetryReason kAllReasons[] = {
    RetryReason::kSucceeded,          RetryReason::kNotRetryable,        RetryReason::kAttemptsExhausted,
    RetryReason::kRetryAfterBeyondDeadline, RetryReason::kDeadlineExceeded, RetryReason::kBudgetExhausted,
    RetryReason::kRetryConnectFailed, RetryReason::kRetryTimeout,        RetryReason::kRetryNoResponse,
    RetryReason::kRetryStatus};

metrics::Counter& OutcomeCounter(metrics::Registry& r, const std::string& site, Outcome o) {
  return r.GetCounter("paypath_client_outcomes_total", "Client calls ended, by outcome",
                      {{"call_site", site}, {"outcome", OutcomeName(o)}});
}

metrics::Counter& ReasonCounter(metrics::Registry& r, const std::string& site, RetryReason reason) {
  return r.GetCounter("paypath_client_retry_decisions_total", "Client retry decisions after an attempt, by reason",
                      {{"call_site", site}, {"reason", RetryReasonName(reason)}});
}

bool IsTrue(const std::optional<std::string>& v) {
  return v && (*v == "true" || *v == "True" || *v == "TRUE" || *v == "1");
}

// Could this attempt have reached the API and done the work without us learning the result?
bool MayHaveReachedServer(const Exchange& ex) {
  switch (ex.kind) {
    case Exchange::Kind::kConnectFailed: return false;
    case Exchange::Kind::kTimeout:
    case Exchange::Kind::kNoResponse: return true;
    case Exchange::Kind::kResponse: {
      const int st = ex.response.status;
      // 409: the key is in flight on the server; 502/504: a proxy's view, the API may have acted.
      if (st == 409 || st == 502 || st == 504) return true;
      // 503 is "not now" (nothing was charged) unless the API says it could not learn the outcome.
      if (st == 503) return IsOutcomeUnknownProblem(ex.response);
      // Any other 5xx reports a server failure, not that nothing happened.
      return st >= 500;
    }
  }
  return true;
}

}  // namespace

bool IsOutcomeUnknownProblem(const HttpResponse& r) {
  auto ct = r.Header("Content-Type");
  if (!ct || ct->find("application/problem+json") == std::string::npos) return false;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return false;
  const boost::json::value* type = v.as_object().if_contains("type");
  if (type == nullptr || !type->is_string()) return false;
  std::string_view t = type->as_string();
  // Relative ("/problems/outcome-unknown", what paypath sends) or absolute with the same path.
  constexpr std::string_view kSuffix = "/problems/outcome-unknown";
  return t.size() >= kSuffix.size() && t.substr(t.size() - kSuffix.size()) == kSuffix;
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kCreated: return "created";
    case Outcome::kReplayed: return "replayed";
    case Outcome::kRejected: return "rejected";
    case Outcome::kGaveUp: return "gave_up";
    case Outcome::kBudgetExhausted: return "budget_exhausted";
  }
  return "?";
}

Status ClientOptions::Validate() const {
  if (call_site.empty()) return Error::InvalidArgument("call_site must not be empty");
  if (max_attempts < 1 || max_attempts > kMaxAttemptsLimit)
    return Error::InvalidArgument("max attempts must be in [1, 10], got " + std::to_string(max_attempts));
  if (base.count() <= 0) return Error::InvalidArgument("backoff base must be > 0 ms");
  if (cap < base) return Error::InvalidArgument("backoff cap must be >= base");
  if (attempt_timeout.count() <= 0) return Error::InvalidArgument("attempt timeout must be > 0 ms");
  if (deadline.count() <= 0) return Error::InvalidArgument("deadline must be > 0 ms");
  return OkStatus();
}

Status CallResult::ToStatus() const {
  if (ok()) return OkStatus();
  std::string what = std::string(OutcomeName(outcome)) + " after " + std::to_string(attempts) + " attempt(s), " +
                     RetryReasonName(final_reason) + ", key " + key;
  if (outcome == Outcome::kRejected) what += ", status " + std::to_string(last.response.status);
  if (outcome_unknown) return Error::OutcomeUnknown(what);
  if (outcome == Outcome::kRejected)
    return last.response.status >= 500 ? Error::Internal(what) : Error::InvalidArgument(what);
  return Error::Unavailable(what);
}

int ExitCodeFor(const CallResult& r) {
  if (r.ok()) return kExitCharged;
  if (r.outcome_unknown) return kExitOutcomeUnknown;
  if (r.outcome == Outcome::kRejected) return kExitRefused;
  return kExitNotCharged;  // connection refused, 429, 503 "nothing was charged": never reached the charge
}

std::string ChargeBody(const ChargeRequest& c) {
  std::string body = "{\"account_id\":";
  log::AppendJsonString(body, c.account_id);
  body += ",\"amount\":" + std::to_string(c.amount) + ",\"currency\":";
  log::AppendJsonString(body, c.currency);
  if (!c.description.empty()) {
    body += ",\"description\":";
    log::AppendJsonString(body, c.description);
  }
  body += "}";
  return body;
}

RetryingClient::RetryingClient(Transport& transport, Clock& clock, Random& random, ClientOptions options,
                               RetryBudget* budget, TranscriptSink* transcript, metrics::Registry& registry)
    : transport_(transport),
      clock_(clock),
      random_(random),
      options_(std::move(options)),
      backoff_(options_.base, options_.cap),
      budget_(budget),
      transcript_(transcript),
      registry_(registry) {
  assert(options_.Validate().ok());
  // Register every series up front so dashboards see zeros rather than missing series.
  for (int a = 1; a <= options_.max_attempts; ++a)
    attempt_counters_.push_back(&registry_.GetCounter("paypath_client_attempts_total",
                                                      "Client attempts started, by attempt number",
                                                      {{"call_site", options_.call_site}, {"attempt", std::to_string(a)}}));
  for (Outcome o : kAllOutcomes) OutcomeCounter(registry_, options_.call_site, o);
  for (RetryReason r : kAllReasons) ReasonCounter(registry_, options_.call_site, r);
}

CallResult RetryingClient::Execute(Operation op) {
  CallResult result;
  result.key = op.idempotency_key.empty() ? random_.Uuid4() : op.idempotency_key;
  op.request.headers.emplace_back("Idempotency-Key", result.key);
  const auto deadline = clock_.Now() + options_.deadline;

  for (int attempt = 1;; ++attempt) {
    attempt_counters_[attempt - 1]->Inc();
    // An attempt never runs past the call's deadline.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_.Now());
    auto timeout = std::max(std::chrono::milliseconds(1), std::min(options_.attempt_timeout, left));
    result.last = transport_.RoundTrip(op.request, timeout);
    result.attempts = attempt;
    if (MayHaveReachedServer(result.last)) result.outcome_unknown = true;

    RetryInputs in;
    in.exchange = &result.last;
    in.attempt = attempt;
    in.max_attempts = options_.max_attempts;
    in.now = clock_.Now();
    in.deadline = deadline;
    in.wall_now = clock_.WallNow();
    RetryDecision d = DecideRetry(in, backoff_, random_, budget_);
    ReasonCounter(registry_, options_.call_site, d.reason).Inc();

    const bool is_response = result.last.kind == Exchange::Kind::kResponse;
    const bool replayed = is_response && IsTrue(result.last.response.Header("Idempotent-Replayed"));
    if (transcript_ != nullptr) {
      AttemptRecord rec;
      rec.operation = op.name;
      rec.key = result.key;
      rec.attempt = attempt;
      rec.result = ExchangeKindName(result.last.kind);
      if (is_response) {
        rec.status = result.last.response.status;
        rec.retry_after = result.last.response.Header("Retry-After");
      }
      rec.replayed = replayed;
      rec.reason = RetryReasonName(d.reason);
      rec.delay_ms = d.retry() ? d.delay.count() : 0;
      rec.detail = result.last.detail;
      transcript_->Write(FormatAttempt(rec));
    }
    log::Debug("client_attempt", {{"call_site", options_.call_site}, {"key", result.key}, {"attempt", attempt},
                                  {"result", ExchangeKindName(result.last.kind)},
                                  {"status", is_response ? result.last.response.status : 0},
                                  {"reason", RetryReasonName(d.reason)}, {"delay_ms", static_cast<long>(d.delay.count())}});

    if (d.retry()) {
      clock_.SleepFor(d.delay);
      continue;
    }
    result.final_reason = d.reason;
    switch (d.reason) {
      case RetryReason::kSucceeded:
        result.outcome = replayed ? Outcome::kReplayed : Outcome::kCreated;
        result.outcome_unknown = false;
        if (budget_ != nullptr) budget_->OnSuccess();
        break;
      case RetryReason::kNotRetryable:
        result.outcome = Outcome::kRejected;
        // A 4xx is definitive: the API decided (e.g. 422 key reused with another body), and a repeat of
        // any earlier attempt would have been answered the same way or replayed. A final 5xx is not: the
        // server failed, which says nothing about what an earlier attempt (or this one) did.
        if (result.last.response.status < 500) result.outcome_unknown = false;
        break;
      case RetryReason::kBudgetExhausted: result.outcome = Outcome::kBudgetExhausted; break;
      default: result.outcome = Outcome::kGaveUp; break;
    }
    OutcomeCounter(registry_, options_.call_site, result.outcome).Inc();
    return result;
  }
}

CallResult RetryingClient::Charge(const ChargeRequest& charge, const std::string& api_key) {
  Operation op;
  op.name = "charge";
  op.request.method = "POST";
  op.request.target = "/v1/charges";
  op.request.headers = {{"Authorization", "Bearer " + api_key}, {"Content-Type", "application/json"},
                        {"Accept", "application/json"}};
  op.request.body = ChargeBody(charge);
  op.idempotency_key = charge.idempotency_key;
  return Execute(std::move(op));
}

}  // namespace paypath::client
