#include "client/client.h"

#include <gtest/gtest.h>

#include <deque>

#include "common/config.h"

namespace paypath::client {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Plays back scripted exchanges and records what the client sent. `latency` of fake time passes per
// attempt, so deadline arithmetic can be exercised without a network or real sleeps.
class ScriptedTransport : public Transport {
 public:
  explicit ScriptedTransport(FakeClock& clock) : clock_(clock) {}
  Exchange RoundTrip(const HttpRequest& request, milliseconds timeout) override {
    requests.push_back(request);
    timeouts.push_back(timeout);
    clock_.Advance(latency);
    if (script.empty()) {
      ADD_FAILURE() << "the client made more attempts than scripted";
      Exchange ex;
      ex.kind = Exchange::Kind::kConnectFailed;
      return ex;
    }
    Exchange ex = script.front();
    script.pop_front();
    return ex;
  }
  ScriptedTransport& Then(Exchange ex) {
    script.push_back(std::move(ex));
    return *this;
  }
  std::deque<Exchange> script;
  std::vector<HttpRequest> requests;
  std::vector<milliseconds> timeouts;
  milliseconds latency{0};

 private:
  FakeClock& clock_;
};

Exchange Status(int status, std::vector<std::pair<std::string, std::string>> headers = {}) {
  Exchange ex;
  ex.kind = Exchange::Kind::kResponse;
  ex.response.status = status;
  ex.response.headers = std::move(headers);
  ex.response.body = status == 201 ? "{\"id\":\"ch_1\"}" : "{}";
  return ex;
}
Exchange Failure(Exchange::Kind kind) {
  Exchange ex;
  ex.kind = kind;
  ex.detail = ExchangeKindName(kind);
  return ex;
}

std::string KeyOf(const HttpRequest& r) {
  for (const auto& [k, v] : r.headers)
    if (k == "Idempotency-Key") return v;
  return "";
}

class ClientTest : public ::testing::Test {
 protected:
  ClientOptions Options() {
    ClientOptions o;
    o.call_site = "test";
    o.max_attempts = 5;
    o.base = milliseconds(100);
    o.cap = milliseconds(1000);
    o.attempt_timeout = milliseconds(2000);
    o.deadline = milliseconds(30000);
    return o;
  }
  CallResult Run(const ClientOptions& o, RetryBudget* budget = nullptr, std::string key = "key-1") {
    RetryingClient client(transport_, clock_, random_, o, budget, &transcript_, registry_);
    ChargeRequest c{"acct_1", 1234, "USD", "", key};
    return client.Charge(c, "sk_test");
  }
  double Counter(const std::string& name, const metrics::Labels& labels) {
    return registry_.GetCounter(name, "", labels).Value();
  }
  std::vector<milliseconds> Sleeps() {
    std::vector<milliseconds> out;
    for (auto d : clock_.sleeps()) out.push_back(std::chrono::duration_cast<milliseconds>(d));
    return out;
  }

  FakeClock clock_;
  FakeRandom random_;
  ScriptedTransport transport_{clock_};
  MemoryTranscript transcript_;
  metrics::Registry registry_;
};

TEST_F(ClientTest, GeneratesOneUuidKeyAndSendsItOnEveryAttempt) {
  transport_.Then(Status(503)).Then(Failure(Exchange::Kind::kNoResponse)).Then(Status(201));
  CallResult r = Run(Options(), nullptr, /*key=*/"");
  ASSERT_EQ(transport_.requests.size(), 3u);
  EXPECT_EQ(r.key.size(), 36u);
  EXPECT_EQ(r.key[14], '4');  // UUID version 4
  for (const auto& req : transport_.requests) EXPECT_EQ(KeyOf(req), r.key);
  EXPECT_EQ(r.outcome, Outcome::kCreated);
}

TEST_F(ClientTest, UsesTheCallersKeyWhenGiven) {
  transport_.Then(Status(201));
  CallResult r = Run(Options(), nullptr, "my-key");
  EXPECT_EQ(r.key, "my-key");
  EXPECT_EQ(KeyOf(transport_.requests[0]), "my-key");
}

TEST_F(ClientTest, SendsTheChargeAsJsonWithBearerAuth) {
  transport_.Then(Status(201));
  (void)Run(Options());
  const HttpRequest& req = transport_.requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/v1/charges");
  EXPECT_EQ(req.body, "{\"account_id\":\"acct_1\",\"amount\":1234,\"currency\":\"USD\"}");
  bool auth = false, json = false;
  for (const auto& [k, v] : req.headers) {
    auth |= k == "Authorization" && v == "Bearer sk_test";
    json |= k == "Content-Type" && v == "application/json";
  }
  EXPECT_TRUE(auth);
  EXPECT_TRUE(json);
}

TEST_F(ClientTest, SleepsTheExactFullJitterSequenceBetweenAttempts) {
  for (int i = 0; i < 4; ++i) transport_.Then(Status(503));
  transport_.Then(Status(201));
  for (double u : {0.5, 0.25, 0.75, 0.5}) random_.PushUniform(u);
  CallResult r = Run(Options());
  // Ceilings min(1000, 100 * 2^n) for n = 1..4: 200, 400, 800, 1000.
  EXPECT_EQ(Sleeps(), (std::vector<milliseconds>{milliseconds(100), milliseconds(100), milliseconds(600),
                                                 milliseconds(500)}));
  EXPECT_EQ(r.outcome, Outcome::kCreated);
  EXPECT_EQ(r.attempts, 5);
}

TEST_F(ClientTest, RetryAfterLongerThanTheJitteredDelayWins) {
  transport_.Then(Status(503, {{"Retry-After", "2"}})).Then(Status(201));
  random_.PushUniform(0.5);  // jitter 100 ms
  (void)Run(Options());
  EXPECT_EQ(Sleeps(), std::vector<milliseconds>{milliseconds(2000)});
}

TEST_F(ClientTest, RetryAfterShorterThanTheJitteredDelayLoses) {
  ClientOptions o = Options();
  o.base = milliseconds(1000);
  o.cap = milliseconds(10000);
  transport_.Then(Status(409, {{"Retry-After", "1"}})).Then(Status(201));
  random_.PushUniform(0.9);  // jitter 0.9 * 2000 = 1800 ms
  (void)Run(o);
  EXPECT_EQ(Sleeps(), std::vector<milliseconds>{milliseconds(1800)});
}

TEST_F(ClientTest, RetryAfterAsAnHttpDateIsHonoured) {
  transport_.Then(Status(503, {{"Retry-After", FormatHttpDate(clock_.WallNow() + seconds(3))}})).Then(Status(201));
  random_.PushUniform(0.5);
  CallResult r = Run(Options());
  EXPECT_EQ(Sleeps(), std::vector<milliseconds>{milliseconds(3000)});
  EXPECT_TRUE(r.ok());
}

TEST_F(ClientTest, RetryAfterBeyondTheDeadlineStopsWithoutWaiting) {
  ClientOptions o = Options();
  o.deadline = milliseconds(5000);
  transport_.Then(Status(503, {{"Retry-After", "10"}}));
  CallResult r = Run(o);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.outcome, Outcome::kGaveUp);
  EXPECT_EQ(r.final_reason, RetryReason::kRetryAfterBeyondDeadline);
  EXPECT_TRUE(Sleeps().empty());
  EXPECT_EQ(Counter("paypath_client_retry_decisions_total", {{"call_site", "test"}, {"reason", "retry_after_beyond_deadline"}}), 1);
}

TEST_F(ClientTest, AJitteredDelayThatWouldReachTheDeadlineStops) {
  ClientOptions o = Options();
  o.deadline = milliseconds(1000);
  transport_.latency = milliseconds(900);
  transport_.Then(Failure(Exchange::Kind::kConnectFailed));
  random_.PushUniform(0.5);  // 100 ms: 900 + 100 reaches the 1000 ms deadline
  CallResult r = Run(o);
  EXPECT_EQ(r.final_reason, RetryReason::kDeadlineExceeded);
  EXPECT_EQ(r.outcome, Outcome::kGaveUp);
  EXPECT_TRUE(Sleeps().empty());
}

TEST_F(ClientTest, AnAttemptTimeoutIsCutToTheTimeLeftBeforeTheDeadline) {
  ClientOptions o = Options();
  o.deadline = milliseconds(3000);
  transport_.latency = milliseconds(1500);
  transport_.Then(Failure(Exchange::Kind::kTimeout)).Then(Status(201));
  random_.PushUniform(0.0);
  (void)Run(o);
  EXPECT_EQ(transport_.timeouts, (std::vector<milliseconds>{milliseconds(2000), milliseconds(1500)}));
}

TEST_F(ClientTest, RetriesEachRetryableStatusWithTheSameKey) {
  for (int status : {409, 429, 502, 503, 504}) {
    SCOPED_TRACE(status);
    transport_.requests.clear();
    transport_.Then(Status(status)).Then(Status(201));
    CallResult r = Run(Options());
    EXPECT_EQ(r.attempts, 2);
    EXPECT_EQ(r.outcome, Outcome::kCreated);
    EXPECT_EQ(KeyOf(transport_.requests[0]), KeyOf(transport_.requests[1]));
  }
  EXPECT_EQ(Counter("paypath_client_retry_decisions_total", {{"call_site", "test"}, {"reason", "retry_status"}}), 5);
}

TEST_F(ClientTest, NeverRetriesAFinalStatus) {
  for (int status : {400, 401, 403, 404, 413, 415, 422, 500, 501}) {
    SCOPED_TRACE(status);
    transport_.Then(Status(status));
    CallResult r = Run(Options());
    EXPECT_EQ(r.attempts, 1);
    EXPECT_EQ(r.outcome, Outcome::kRejected);
    EXPECT_EQ(r.final_reason, RetryReason::kNotRetryable);
    // A 4xx is a definite refusal; a 5xx says the server failed, not that nothing happened.
    EXPECT_EQ(r.outcome_unknown, status >= 500);
  }
  EXPECT_TRUE(transport_.script.empty());
  EXPECT_EQ(Counter("paypath_client_outcomes_total", {{"call_site", "test"}, {"outcome", "rejected"}}), 9);
}

Exchange Problem(int status, const std::string& slug, std::vector<std::pair<std::string, std::string>> headers = {}) {
  Exchange ex = Status(status, std::move(headers));
  ex.response.headers.emplace_back("Content-Type", "application/problem+json");
  ex.response.body = "{\"type\":\"/problems/" + slug + "\",\"title\":\"t\",\"status\":" + std::to_string(status) +
                     ",\"detail\":\"d\"}";
  return ex;
}

TEST_F(ClientTest, AnOutcomeUnknownProblemMeansTheChargeMayExist) {
  ClientOptions o = Options();
  o.max_attempts = 2;
  transport_.Then(Problem(503, "outcome-unknown", {{"Retry-After", "1"}}))
      .Then(Problem(503, "outcome-unknown", {{"Retry-After", "1"}}));
  CallResult r = Run(o);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.outcome, Outcome::kGaveUp);
  EXPECT_TRUE(r.outcome_unknown);
  EXPECT_EQ(r.ToStatus().error().code, ErrorCode::kOutcomeUnknown);
  EXPECT_EQ(Sleeps(), std::vector<milliseconds>{milliseconds(1000)});  // its Retry-After is honoured
}

TEST_F(ClientTest, NothingChargedAfterAnAttemptThatMayHaveLandedStaysUnknown) {
  ClientOptions o = Options();
  o.max_attempts = 3;
  transport_.Then(Problem(503, "outcome-unknown"))
      .Then(Failure(Exchange::Kind::kTimeout))
      .Then(Problem(503, "service-unavailable"));
  CallResult r = Run(o);
  EXPECT_TRUE(r.outcome_unknown);  // "nothing was charged" speaks for the last attempt, not the earlier ones
}

TEST_F(ClientTest, AServiceUnavailableProblemAloneLeavesNoDoubt) {
  ClientOptions o = Options();
  o.max_attempts = 2;
  transport_.Then(Problem(503, "service-unavailable")).Then(Failure(Exchange::Kind::kConnectFailed));
  CallResult r = Run(o);
  EXPECT_FALSE(r.outcome_unknown);
  EXPECT_EQ(r.ToStatus().error().code, ErrorCode::kUnavailable);
}

TEST_F(ClientTest, AFinal500AfterALostResponseIsNotADefiniteAnswer) {
  transport_.Then(Failure(Exchange::Kind::kNoResponse)).Then(Status(500));
  CallResult r = Run(Options());
  EXPECT_EQ(r.outcome, Outcome::kRejected);
  EXPECT_TRUE(r.outcome_unknown);
  EXPECT_EQ(r.ToStatus().error().code, ErrorCode::kOutcomeUnknown);
}

TEST_F(ClientTest, A422AfterALostResponseIsDefinite) {
  transport_.Then(Failure(Exchange::Kind::kNoResponse)).Then(Problem(422, "idempotency-key-reused"));
  CallResult r = Run(Options());
  EXPECT_EQ(r.outcome, Outcome::kRejected);
  EXPECT_FALSE(r.outcome_unknown);
  EXPECT_EQ(r.ToStatus().error().code, ErrorCode::kInvalidArgument);
}

TEST_F(ClientTest, RetriesConnectFailuresTimeoutsAndLostResponsesWithTheirOwnReasons) {
  transport_.Then(Failure(Exchange::Kind::kConnectFailed))
      .Then(Failure(Exchange::Kind::kTimeout))
      .Then(Failure(Exchange::Kind::kNoResponse))
      .Then(Status(201));
  CallResult r = Run(Options());
  EXPECT_EQ(r.attempts, 4);
  EXPECT_TRUE(r.ok());
  for (const char* reason : {"retry_connect_failed", "retry_timeout", "retry_no_response", "succeeded"})
    EXPECT_EQ(Counter("paypath_client_retry_decisions_total", {{"call_site", "test"}, {"reason", reason}}), 1) << reason;
}

TEST_F(ClientTest, AReplayIsSuccessCountedAsReplayed) {
  transport_.Then(Failure(Exchange::Kind::kNoResponse)).Then(Status(201, {{"Idempotent-Replayed", "true"}}));
  CallResult r = Run(Options());
  EXPECT_EQ(r.outcome, Outcome::kReplayed);
  EXPECT_TRUE(r.ToStatus().ok());
  EXPECT_FALSE(r.outcome_unknown);
  EXPECT_EQ(Counter("paypath_client_outcomes_total", {{"call_site", "test"}, {"outcome", "replayed"}}), 1);
  EXPECT_EQ(Counter("paypath_client_outcomes_total", {{"call_site", "test"}, {"outcome", "created"}}), 0);
}

TEST_F(ClientTest, GivesUpAfterMaxAttemptsAndReportsTheOutcomeAsUnknownWhenResponsesWereLost) {
  ClientOptions o = Options();
  o.max_attempts = 3;
  for (int i = 0; i < 3; ++i) transport_.Then(Failure(Exchange::Kind::kNoResponse));
  CallResult r = Run(o);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(r.outcome, Outcome::kGaveUp);
  EXPECT_EQ(r.final_reason, RetryReason::kAttemptsExhausted);
  EXPECT_TRUE(r.outcome_unknown);
  EXPECT_EQ(r.ToStatus().error().code, ErrorCode::kOutcomeUnknown);
}

TEST_F(ClientTest, ConnectFailuresAloneLeaveNoDoubtTheChargeWasNotMade) {
  ClientOptions o = Options();
  o.max_attempts = 2;
  transport_.Then(Failure(Exchange::Kind::kConnectFailed)).Then(Failure(Exchange::Kind::kConnectFailed));
  CallResult r = Run(o);
  EXPECT_FALSE(r.outcome_unknown);
  EXPECT_EQ(r.ToStatus().error().code, ErrorCode::kUnavailable);
}

TEST_F(ClientTest, CountsAttemptsByExactAttemptNumber) {
  transport_.Then(Status(503)).Then(Status(503)).Then(Status(201));
  transport_.Then(Status(201));
  (void)Run(Options());
  (void)Run(Options());
  EXPECT_EQ(Counter("paypath_client_attempts_total", {{"call_site", "test"}, {"attempt", "1"}}), 2);
  EXPECT_EQ(Counter("paypath_client_attempts_total", {{"call_site", "test"}, {"attempt", "2"}}), 1);
  EXPECT_EQ(Counter("paypath_client_attempts_total", {{"call_site", "test"}, {"attempt", "3"}}), 1);
  EXPECT_EQ(Counter("paypath_client_attempts_total", {{"call_site", "test"}, {"attempt", "4"}}), 0);
}

TEST_F(ClientTest, BudgetSpendsPerRetryRefundsPerSuccessAndFailsFastWhenEmpty) {
  RetryBudgetOptions bo;
  bo.capacity = 10;
  bo.retry_cost = 5;
  bo.timeout_cost = 10;
  bo.success_refund = 1;
  RetryBudget budget("test", bo, registry_);

  transport_.Then(Status(503)).Then(Status(503)).Then(Status(201));
  CallResult first = Run(Options(), &budget);
  EXPECT_TRUE(first.ok());
  EXPECT_EQ(budget.tokens(), 1);  // 10 - 5 - 5 + 1

  transport_.Then(Status(503));
  CallResult second = Run(Options(), &budget);
  EXPECT_EQ(second.attempts, 1);  // failed fast: no retry, no sleep
  EXPECT_EQ(second.outcome, Outcome::kBudgetExhausted);
  EXPECT_EQ(second.final_reason, RetryReason::kBudgetExhausted);
  EXPECT_EQ(Sleeps().size(), 2u);
  EXPECT_EQ(Counter("paypath_client_retry_budget_exhausted_total", {{"call_site", "test"}}), 1);
  EXPECT_EQ(Counter("paypath_client_outcomes_total", {{"call_site", "test"}, {"outcome", "budget_exhausted"}}), 1);
}

TEST_F(ClientTest, BudgetChargesTimeoutsTheTimeoutCost) {
  RetryBudgetOptions bo;
  bo.capacity = 30;
  RetryBudget budget("test", bo, registry_);
  transport_.Then(Failure(Exchange::Kind::kTimeout)).Then(Failure(Exchange::Kind::kNoResponse)).Then(Status(201));
  (void)Run(Options(), &budget);
  EXPECT_EQ(budget.tokens(), 30 - 10 - 5 + 1);
}

TEST_F(ClientTest, ADisabledBudgetKeepsRetryingWhereAnEmptyOneWouldFailFast) {
  RetryBudgetOptions bo;
  bo.capacity = 0;
  bo.enabled = false;
  RetryBudget budget("test", bo, registry_);
  transport_.Then(Status(503)).Then(Status(503)).Then(Status(201));
  CallResult r = Run(Options(), &budget);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_TRUE(r.ok());
}

TEST_F(ClientTest, WritesOneTranscriptLinePerAttempt) {
  transport_.Then(Status(503, {{"Retry-After", "1"}})).Then(Status(201, {{"Idempotent-Replayed", "true"}}));
  random_.PushUniform(0.5);
  (void)Run(Options(), nullptr, "k1");
  auto lines = transcript_.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "{\"operation\":\"charge\",\"key\":\"k1\",\"attempt\":1,\"result\":\"response\",\"status\":503,"
            "\"retry_after\":\"1\",\"replayed\":false,\"reason\":\"retry_status\",\"delay_ms\":1000,\"detail\":\"\"}");
  EXPECT_EQ(lines[1],
            "{\"operation\":\"charge\",\"key\":\"k1\",\"attempt\":2,\"result\":\"response\",\"status\":201,"
            "\"retry_after\":null,\"replayed\":true,\"reason\":\"succeeded\",\"delay_ms\":0,\"detail\":\"\"}");
}

TEST_F(ClientTest, TranscriptRecordsFailuresWithoutAStatus) {
  transport_.Then(Failure(Exchange::Kind::kTimeout)).Then(Status(201));
  random_.PushUniform(0.25);
  (void)Run(Options(), nullptr, "k2");
  auto lines = transcript_.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "{\"operation\":\"charge\",\"key\":\"k2\",\"attempt\":1,\"result\":\"timeout\",\"status\":null,"
            "\"retry_after\":null,\"replayed\":false,\"reason\":\"retry_timeout\",\"delay_ms\":50,\"detail\":\"timeout\"}");
}

TEST_F(ClientTest, ExitCodesNameWhatBecameOfTheCharge) {
  ClientOptions o = Options();
  o.max_attempts = 2;
  transport_.Then(Status(201));
  EXPECT_EQ(ExitCodeFor(Run(o)), kExitCharged);
  transport_.Then(Problem(422, "idempotency-key-reused"));
  EXPECT_EQ(ExitCodeFor(Run(o)), kExitRefused);
  transport_.Then(Problem(503, "outcome-unknown")).Then(Problem(503, "outcome-unknown"));
  EXPECT_EQ(ExitCodeFor(Run(o)), kExitOutcomeUnknown);
  transport_.Then(Failure(Exchange::Kind::kTimeout)).Then(Failure(Exchange::Kind::kConnectFailed));
  EXPECT_EQ(ExitCodeFor(Run(o)), kExitOutcomeUnknown);
  transport_.Then(Failure(Exchange::Kind::kConnectFailed)).Then(Problem(503, "service-unavailable"));
  EXPECT_EQ(ExitCodeFor(Run(o)), kExitNotCharged);
  transport_.Then(Status(429)).Then(Status(429));
  EXPECT_EQ(ExitCodeFor(Run(o)), kExitNotCharged);
}

TEST(ClientOptions, RejectsOutOfRangeSettings) {
  ClientOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.max_attempts = 11;
  EXPECT_FALSE(o.Validate().ok());
  o = ClientOptions();
  o.max_attempts = 0;
  EXPECT_FALSE(o.Validate().ok());
  o = ClientOptions();
  o.cap = milliseconds(50);  // below the 100 ms base
  EXPECT_FALSE(o.Validate().ok());
  o = ClientOptions();
  o.deadline = milliseconds(0);
  EXPECT_FALSE(o.Validate().ok());
}

TEST(ChargeBody, EscapesStringsAndOmitsAnEmptyDescription) {
  EXPECT_EQ(ChargeBody({"acct_\"1", 5, "EUR", "", ""}), "{\"account_id\":\"acct_\\\"1\",\"amount\":5,\"currency\":\"EUR\"}");
  EXPECT_EQ(ChargeBody({"a", 5, "EUR", "tea", ""}),
            "{\"account_id\":\"a\",\"amount\":5,\"currency\":\"EUR\",\"description\":\"tea\"}");
}

}  // namespace
}  // namespace paypath::client
