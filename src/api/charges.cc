#include "api/charges.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string_view>

#include "api/idempotency.h"
#include "api/problem.h"
#include "api/validation.h"
#include "common/config.h"
#include "common/failpoints.h"
#include "common/log.h"
#include "common/metrics.h"
#include "events/charge_event.h"
#include "events/ids.h"

namespace paypath::api {
namespace {

metrics::Counter& Outcome(const char* outcome) {
  return metrics::Registry::Default().GetCounter(
      "paypath_idempotency_requests_total",
      "POST /v1/charges requests by idempotency outcome (created, replayed, conflict, mismatch, rejected, "
      "unavailable, outcome_unknown)",
      {{"outcome", outcome}});
}

struct Metrics {
  metrics::Counter& created = Outcome("created");
  metrics::Counter& replayed = Outcome("replayed");
  metrics::Counter& conflict = Outcome("conflict");
  metrics::Counter& mismatch = Outcome("mismatch");
  metrics::Counter& rejected = Outcome("rejected");
  metrics::Counter& unavailable = Outcome("unavailable");
  metrics::Counter& outcome_unknown = Outcome("outcome_unknown");
  metrics::Counter& charges = metrics::Registry::Default().GetCounter(
      "paypath_charges_created_total", "Charges committed to PostgreSQL (each exactly once per key)");
  metrics::Counter& cache_hit = Cache("hit");
  metrics::Counter& cache_miss = Cache("miss");
  metrics::Counter& cache_error = Cache("error");
  metrics::Counter& cache_invalid = Cache("invalid");
  metrics::Counter& takeovers = metrics::Registry::Default().GetCounter(
      "paypath_idempotency_lease_takeovers_total", "Expired in-flight leases taken over by a retry");
  metrics::Counter& stale = metrics::Registry::Default().GetCounter(
      "paypath_idempotency_stale_owner_total", "Completions refused because the lease had passed to another owner");

  metrics::Counter& shed = metrics::Registry::Default().GetCounter(
      "paypath_api_shed_total",
      "New charges answered 503 /problems/overloaded because max_pending requests were already waiting for "
      "PostgreSQL (nothing written for them)");
  metrics::Gauge& pending = metrics::Registry::Default().GetGauge(
      "paypath_api_pending", "Charges admitted and waiting for PostgreSQL (claim or completion), at most max_pending");

  metrics::Counter& gate_entered = Gate("entered");
  metrics::Counter& gate_held = Gate("held");
  metrics::Counter& gate_open = Gate("open");

  static metrics::Counter& Gate(const char* result) {
    return metrics::Registry::Default().GetCounter(
        "paypath_idempotency_gate_total",
        "Redis in-flight gate (SET NX PX) before the PostgreSQL claim, by result (entered = went on to claim, "
        "held = answered 409 from Redis, open = no decision: PostgreSQL decided)",
        {{"result", result}});
  }
  static metrics::Counter& Cache(const char* result) {
    return metrics::Registry::Default().GetCounter(
        "paypath_idempotency_cache_total",
        "Redis hot-tier lookups by result (hit, miss, error, invalid = an entry that does not decode or names "
        "another database instance)",
        {{"result", result}});
  }
};

Metrics& M() {
  static Metrics m;
  return m;
}

HttpResponse Rejected(int status, const char* slug, const char* title, std::string detail) {
  M().rejected.Inc();
  return RenderProblem({status, slug, title, std::move(detail)});
}

HttpResponse Unavailable(std::string detail, int retry_after_s) {
  M().unavailable.Inc();
  HttpResponse r = RenderProblem({503, "service-unavailable", "Service unavailable", std::move(detail)});
  r.SetHeader("Retry-After", std::to_string(retry_after_s));
  return r;
}

// The outcome of this request could not be learned; the charge may exist. Never "nothing was charged".
HttpResponse OutcomeUnknown(std::string detail) {
  M().outcome_unknown.Inc();
  HttpResponse r = RenderProblem({503, "outcome-unknown", "Outcome unknown", std::move(detail)});
  r.SetHeader("Retry-After", std::to_string(kOutcomeUnknownRetryAfterS));
  return r;
}

HttpResponse InFlight(std::string detail) {
  M().conflict.Inc();
  HttpResponse r = RenderProblem({409, "idempotency-key-in-use", "Idempotency key in use", std::move(detail)});
  // One second: a charge takes milliseconds, so the first request has almost always finished by then.
  r.SetHeader("Retry-After", "1");
  return r;
}

HttpResponse Mismatch(const std::string& tenant) {
  M().mismatch.Inc();
  // Operators trace a 422 spike to its caller by tenant (the key itself is the caller's, not a secret, but
  // one line per 422 with the key would let a misbehaving client flood the logs with its own strings).
  log::Info("idempotency_key_reused", {{"tenant", tenant}});
  return RenderProblem({422, "idempotency-key-reused", "Idempotency key reused",
                        "this Idempotency-Key was already used with a different request (method, path or body)"});
}

bool IsJsonContentType(std::string_view ct) {
  size_t semi = ct.find(';');
  std::string_view media = ct.substr(0, semi);
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  while (!media.empty() && media.front() == ' ') media.remove_prefix(1);
  return HeaderNameEquals(media, "application/json");
}

// expires_unix_ms 0: the key's record is gone (a replay rebuilt from the charge), so no expiry is promised.
void SetKeyHeaders(HttpResponse& r, const std::string& charge_id, int64_t expires_unix_ms) {
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Location", "/v1/charges/" + charge_id);
  if (expires_unix_ms > 0)
    r.SetHeader("Idempotency-Key-Expires",
                FormatHttpDate(std::chrono::system_clock::time_point(std::chrono::milliseconds(expires_unix_ms))));
}

std::string ChargePayload(const store::ChargeRow& ch, const std::string& message_id) {
  // The event contract lives in events/charge_event.h; created_at carries microseconds, from which the
  // consumer measures commit-to-apply delay.
  return events::EncodePayload({message_id, ch.id, ch.tenant, ch.account_id, ch.amount, ch.currency,
                                std::chrono::system_clock::time_point(std::chrono::microseconds(ch.created_unix_us))});
}

}  // namespace

std::string RenderCharge(const store::ChargeRow& ch) {
  std::string b = "{\"id\":";
  log::AppendJsonString(b, ch.id);
  b += ",\"account_id\":";
  log::AppendJsonString(b, ch.account_id);
  b += ",\"amount\":" + std::to_string(ch.amount) + ",\"currency\":";
  log::AppendJsonString(b, ch.currency);
  b += ",\"description\":";
  if (ch.description) log::AppendJsonString(b, *ch.description);
  else b += "null";
  b += ",\"status\":\"succeeded\",\"created\":" + std::to_string(ch.created_unix_us / 1000000) + "}";
  return b;
}

Status ChargeOptions::Validate() const {
  if (lease.count() <= 0) return Error::InvalidArgument("the lease must be positive");
  if (max_pending < 1) return Error::InvalidArgument("max_pending must be at least 1");
  const auto minimum = lease + std::chrono::duration_cast<std::chrono::milliseconds>(kClientRetryHorizon);
  if (retention < minimum)
    return Error::InvalidArgument(
        "retention " + std::to_string(retention.count() / 1000) + " s is shorter than the lease (" +
        std::to_string(lease.count() / 1000) + " s) plus the client retry horizon (" +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kClientRetryHorizon).count()) +
        " s): keep completed keys at least " + std::to_string((minimum.count() + 999) / 1000) + " s");
  return OkStatus();
}

ChargeApi::ChargeApi(std::map<std::string, std::string> api_keys, store::IdempotencyStore& store,
                     store::HotTier& hot, Clock& clock, Random& random, ChargeOptions options)
    : api_keys_(std::move(api_keys)),
      store_(store),
      hot_(hot),
      random_(random),
      options_(options),
      resolver_(store, clock, options.in_doubt) {
  M();  // register every series at start so /metrics shows zeros before the first request
}

const std::string* ChargeApi::Authenticate(const HttpRequest& req) const {
  auto token = BearerToken(req);
  return token ? api_keys_.Lookup(*token) : nullptr;
}

HttpResponse ChargeApi::Replay(const store::KeyRecord& rec) {
  M().replayed.Inc();
  HttpResponse r;
  r.status = rec.response_status;
  r.body = rec.response_body;
  SetKeyHeaders(r, rec.charge_id, rec.expires_at_unix_ms);
  r.SetHeader("Idempotent-Replayed", "true");
  return r;
}

HttpResponse ChargeApi::ReplayFromCharge(const store::ChargeRow& ch) {
  M().replayed.Inc();
  HttpResponse r;
  r.status = 201;  // the only status ever stored with a charge
  r.body = RenderCharge(ch);
  SetKeyHeaders(r, ch.id, /*expires_unix_ms=*/0);
  r.SetHeader("Idempotent-Replayed", "true");
  return r;
}

HttpResponse ChargeApi::AnswerFromCharge(const std::string& tenant, const store::ChargeRow& ch,
                                         const std::string& fingerprint) {
  // A charge written before fingerprints were kept cannot prove the request is the same: 422, never a
  // second charge.
  if (!ch.fingerprint.empty() && ch.fingerprint == fingerprint) return ReplayFromCharge(ch);
  return Mismatch(tenant);
}

// One POST between its phases. Owned by the continuations; Finish answers it exactly once.
struct ChargeApi::InFlightRequest {
  http::ResponderPtr out;
  Validated v;
  bool gated = false;        // entered the Redis gate: left once the answer is known (after Respond cached it)
  bool admitted = false;     // holds one unit of pending_
  Claimed c;
};

void ChargeApi::CreateAsync(const HttpRequest& req, http::ResponderPtr out) {
  auto validated = Validate(req);
  if (auto* resp = std::get_if<HttpResponse>(&validated)) return out->Send(std::move(*resp));
  auto r = std::make_shared<InFlightRequest>();
  r->out = std::move(out);
  r->v = std::move(std::get<Validated>(validated));
  if (auto answer = InDoubt(r->v)) return Finish(r, std::move(*answer));
  // The hot tier and the gate: one Redis round trip (none on a local hit), answered on this request's
  // executor.
  const Validated& v = r->v;
  hot_.BeginAsync(*v.tenant, v.key, v.fingerprint, options_.lease, Poster(r), [this, r](store::HotTier::Begun b) {
    if (auto answer = Looked(r->v, std::move(b), &r->gated)) return Finish(r, std::move(*answer));
    Admit(std::move(r));
  });
}

store::IdempotencyStore::Post ChargeApi::Poster(const std::shared_ptr<InFlightRequest>& r) {
  return [out = r->out](std::function<void()> task) { out->Post(std::move(task)); };
}

void ChargeApi::Admit(std::shared_ptr<InFlightRequest> r) {
  // Admission: the bound on requests waiting for PostgreSQL. Nothing is written for a shed request.
  for (int cur = pending_.load();;) {
    if (cur >= options_.max_pending) {
      M().shed.Inc();
      HttpResponse shed = RenderProblem({503, "overloaded", "Overloaded",
                                         "too many charges are waiting for the database; nothing was charged. Retry "
                                         "with the same Idempotency-Key"});
      shed.SetHeader("Retry-After", "1");
      return Finish(r, std::move(shed));
    }
    if (pending_.compare_exchange_weak(cur, cur + 1)) break;
  }
  r->admitted = true;
  M().pending.Add(1);
  Claim(std::move(r));
}

void ChargeApi::Claim(std::shared_ptr<InFlightRequest> r) {
  std::string owner = random_.Hex128();
  const Validated& v = r->v;
  store_.ClaimAsync(*v.tenant, v.key, v.fingerprint, owner, options_.lease, Poster(r),
                    [this, r, owner](Result<store::ClaimResult> claim) {
                      auto claimed = Decided(r->v, owner, std::move(claim));
                      if (auto* resp = std::get_if<HttpResponse>(&claimed)) return Finish(r, std::move(*resp));
                      r->c = std::move(std::get<Claimed>(claimed));
                      Execute(r);
                    });
}

void ChargeApi::Execute(std::shared_ptr<InFlightRequest> r) {
  auto prepared = Prepare(r->v, r->c);
  if (auto* resp = std::get_if<HttpResponse>(&prepared)) return Finish(r, std::move(*resp));
  Prepared& p = std::get<Prepared>(prepared);
  auto e = std::make_shared<Executed>(std::move(p.e));
  store_.CompleteAsync(std::move(p.req), Poster(r), [this, r, e](Result<store::Completion> done) {
    auto executed = Committed(r->v, r->c, std::move(*e), std::move(done));
    if (auto* resp = std::get_if<HttpResponse>(&executed)) return Finish(r, std::move(*resp));
    *e = std::move(std::get<Executed>(executed));
    Respond(r, e);
  });
}

void ChargeApi::Respond(const std::shared_ptr<InFlightRequest>& r, const std::shared_ptr<Executed>& e) {
  M().created.Inc();
  // The charge is durable; the response is not yet sent. A crash here is what the retry must survive;
  // `error` answers 503 instead of 201, the same lost-response case without losing the process. (Not on
  // the in-doubt path, which never passed here.)
  if (!e->settled_in_doubt && failpoints::Hit("api.after_commit"))
    return Finish(r, Unavailable("injected failure after commit (failpoint api.after_commit); retry with the same key", 1));
  // Cache the replay and leave the gate in one round trip, and answer only after it: a retry reaching
  // another api process then finds the replay, not an open gate.
  const bool gated = std::exchange(r->gated, false);
  hot_.CompleteAsync(*r->v.tenant, r->v.key, e->completed, gated, Poster(r),
                     [this, r, e] { Finish(r, Created(r->v, *e)); });
}

void ChargeApi::Finish(const std::shared_ptr<InFlightRequest>& r, HttpResponse response) {
  // Any answer but a 201 (which left the gate with its cache write): a fire-and-forget DEL, submitted
  // before the answer, so this process's next command on the key (same connection, in order) follows it.
  if (r->gated) hot_.LeaveAsync(*r->v.tenant, r->v.key);
  r->gated = false;
  if (r->admitted) {
    pending_.fetch_sub(1);
    M().pending.Add(-1);
    r->admitted = false;
  }
  r->out->Send(std::move(response));
}

namespace {

// Answers Create's caller, whose thread is the request's executor: Post queues the continuation and
// Create's thread runs it (never the Redis I/O thread or a batch worker, which must not block).
class BlockingResponder : public http::Responder {
 public:
  void Send(HttpResponse response) override {
    std::lock_guard lock(mu_);
    if (response_) return;
    response_ = std::move(response);
    cv_.notify_all();
  }
  void Post(http::Task task) override {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
    cv_.notify_all();
  }
  // Runs posted continuations until the response is sent and none is left.
  HttpResponse Wait() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return response_.has_value() || !tasks_.empty(); });
      if (tasks_.empty()) return std::move(*response_);
      http::Task task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<http::Task> tasks_;          // protected by mu_
  std::optional<HttpResponse> response_;  // protected by mu_
};

}  // namespace

HttpResponse ChargeApi::Create(const HttpRequest& req) {
  auto out = std::make_shared<BlockingResponder>();
  CreateAsync(req, out);
  return out->Wait();
}

ChargeApi::Phase<ChargeApi::Validated> ChargeApi::Validate(const HttpRequest& req) const {
  const std::string* tenant = Authenticate(req);
  if (tenant == nullptr)
    return Rejected(401, "unauthorized", "Unauthorized", "send a valid API key as 'Authorization: Bearer <key>'");

  int key_headers = req.HeaderCount("Idempotency-Key");
  if (key_headers == 0)
    return Rejected(400, "idempotency-key-missing", "Idempotency-Key missing",
                    "POST /v1/charges requires an Idempotency-Key header");
  if (key_headers > 1)
    return Rejected(400, "invalid-idempotency-key", "Invalid Idempotency-Key", "send exactly one Idempotency-Key header");
  auto key = ParseIdempotencyKey(*req.Header("Idempotency-Key"));
  if (!key.ok()) return Rejected(400, "invalid-idempotency-key", "Invalid Idempotency-Key", key.error().message);

  const std::string* ct = req.Header("Content-Type");
  if (ct == nullptr || !IsJsonContentType(*ct))
    return Rejected(415, "unsupported-media-type", "Unsupported media type", "send Content-Type: application/json");
  if (req.body.size() > kMaxBodyBytes)
    return Rejected(413, "body-too-large", "Body too large", "the body must be at most 16384 bytes");

  auto parsed = ParseChargeRequest(req.body);
  if (auto* fe = std::get_if<FieldError>(&parsed)) {
    std::string slug = fe->field.empty() ? "invalid-json" : "invalid-field";
    HttpResponse r = RenderProblem({400, slug, fe->field.empty() ? "Invalid JSON body" : "Invalid field", fe->message});
    M().rejected.Inc();
    return r;
  }
  Validated v;
  v.tenant = tenant;
  v.key = key.value();
  v.charge = std::move(std::get<ChargeRequest>(parsed));
  v.fingerprint = Fingerprint("POST", "/v1/charges", v.charge.canonical_body);
  return v;
}

std::optional<HttpResponse> ChargeApi::InDoubt(const Validated& v) {
  // An earlier attempt with this key is in doubt on this process: settle it first (a PostgreSQL read on
  // this thread, only while this process has attempts in doubt). Unsettled, the answer stays
  // outcome-unknown (a 409 would hide that the charge may exist); settled, the claim sees the truth (the
  // committed key replays, a released one is claimed afresh).
  if (auto earlier = resolver_.Recheck(*v.tenant, v.key); earlier && earlier->outcome == Resolution::Outcome::kPending)
    return OutcomeUnknown(
        "an earlier attempt with this Idempotency-Key is still in doubt (the database connection failed before "
        "its outcome was known); the charge may exist. Retry with the same key, never with a new one");
  return std::nullopt;
}

std::optional<HttpResponse> ChargeApi::Looked(const Validated& v, store::HotTier::Begun b, bool* gated) {
  const std::string& tenant = *v.tenant;
  // The gate's marker is ours whatever the lookup said (but a hit, where the tier deleted it): leave it once
  // the answer is known.
  if (b.gate == store::HotTier::Gate::kEntered) *gated = true;
  // Hot tier: a completed key answers without PostgreSQL. A miss or an error falls through.
  switch (b.lookup) {
    case store::HotTier::Lookup::kHit:
      M().cache_hit.Inc();
      if (DecideCompleted(b.record, v.fingerprint) == Decision::kReplay) return Replay(b.record);
      return Mismatch(tenant);
    case store::HotTier::Lookup::kMiss:
      M().cache_miss.Inc();
      // The in-flight gate, only when Redis just answered: a marker's presence may answer 409, its
      // absence (or Redis failing) decides nothing and the PostgreSQL claim decides.
      switch (b.gate) {
        case store::HotTier::Gate::kEntered:
          M().gate_entered.Inc();
          break;
        case store::HotTier::Gate::kHeld:
          M().gate_held.Inc();
          return InFlight("a request with this Idempotency-Key is still in progress");
        case store::HotTier::Gate::kOpen:
          M().gate_open.Inc();
          break;
      }
      break;
    case store::HotTier::Lookup::kError:
      M().cache_error.Inc();
      break;
    case store::HotTier::Lookup::kInvalid:
      M().cache_invalid.Inc();
      break;
  }
  return std::nullopt;
}

ChargeApi::Phase<ChargeApi::Claimed> ChargeApi::Decided(const Validated& v, std::string owner,
                                                        Result<store::ClaimResult> claim) {
  const std::string& tenant = *v.tenant;
  Claimed c;
  c.owner = std::move(owner);
  if (!claim.ok()) {
    if (claim.error().code == ErrorCode::kAborted) return InFlight("the key is under heavy contention; retry");
    if (claim.error().code == ErrorCode::kOutcomeUnknown) {
      // The claim may have landed: our in-flight row would hold the key for a lease. Nothing can have been
      // charged (the charge is a later transaction); the resolver releases the row once it can.
      log::Warn("claim_outcome_unknown", {{"tenant", tenant}, {"error", claim.error().ToString()}});
      Resolution settled = resolver_.Resolve({InDoubtPhase::kClaim, tenant, v.key, c.owner, ""});
      if (settled.outcome != Resolution::Outcome::kPending)
        return OutcomeUnknown("the database connection failed while claiming the key; nothing was charged and the "
                              "key is free again. Retry with the same Idempotency-Key");
      return OutcomeUnknown("the database connection failed while claiming the key; nothing was charged, but the "
                            "key may stay reserved for up to " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.lease).count()) +
                            " s (its lease). Retry with the same Idempotency-Key");
    }
    log::Warn("claim_failed", {{"tenant", tenant}, {"error", claim.error().ToString()}});
    return Unavailable("the database is unavailable; nothing was charged", 1);
  }
  switch (Decide(claim.value(), v.fingerprint)) {
    case Decision::kReplay:
      if (claim->kind == store::ClaimResult::Kind::kCharged) return ReplayFromCharge(claim->charge);
      hot_.PutAsync(tenant, v.key, claim->existing);
      return Replay(claim->existing);
    case Decision::kMismatch:
      return Mismatch(tenant);
    case Decision::kInFlight:
      return InFlight("a request with this Idempotency-Key is still in progress");
    case Decision::kProceed:
      break;
  }
  if (claim->kind == store::ClaimResult::Kind::kTakenOver) {
    M().takeovers.Inc();
    log::Warn("lease_taken_over", {{"tenant", tenant}});
  }
  c.claim = std::move(claim.value());
  return c;
}

ChargeApi::Phase<ChargeApi::Prepared> ChargeApi::Prepare(const Validated& v, const Claimed& c) {
  const std::string& tenant = *v.tenant;
  // Widens the in-flight window for tests (delay) or fails after the claim (error).
  if (failpoints::Hit("api.after_claim")) {
    (void)store_.Release(tenant, v.key, c.owner);
    return Unavailable("injected failure after claim (failpoint api.after_claim)", 1);
  }

  Executed e;
  store::ChargeRow& row = e.row;
  // Derived from (tenant, key), never random: a COMMIT a failover lost and its retry on the new primary
  // produce the same charge and the same event, which the ledger then applies once (events/ids.h).
  row.id = events::ChargeId(tenant, v.key);
  row.tenant = tenant;
  row.idem_key = v.key;
  row.account_id = v.charge.account_id;
  row.amount = v.charge.amount;
  row.currency = v.charge.currency;
  row.description = v.charge.description;
  row.fingerprint = v.fingerprint;
  row.created_unix_us = c.claim.claimed_at_unix_us;  // the database clock, never this host's
  e.body = RenderCharge(row);
  const std::string message_id = events::MessageId(row.id, events::kChargeSucceeded);

  store::CompletionRequest done_req;
  done_req.owner = c.owner;
  done_req.charge = row;
  done_req.response_status = 201;
  done_req.response_body = e.body;
  done_req.retention = options_.retention;
  done_req.outbox = {message_id, events::kChargeSucceeded, ChargePayload(row, message_id)};
  return Prepared{std::move(e), std::move(done_req)};
}

ChargeApi::Phase<ChargeApi::Executed> ChargeApi::Committed(const Validated& v, const Claimed& c, Executed e,
                                                           Result<store::Completion> done) {
  const std::string& tenant = *v.tenant;
  const store::ChargeRow& row = e.row;
  e.completed.completed = true;
  e.completed.fingerprint = v.fingerprint;
  e.completed.response_status = 201;
  e.completed.response_body = e.body;
  e.completed.charge_id = row.id;
  if (done.ok()) {
    M().charges.Inc();
    e.completed.expires_at_unix_ms = done->expires_at_unix_ms;
    e.completed.ttl_ms = done->ttl_ms;
    return e;
  }
  const Error& err = done.error();
  if (err.code == ErrorCode::kFailedPrecondition) {
    M().stale.Inc();
    log::Warn("stale_lease_owner", {{"tenant", tenant}});
    return InFlight("this request's lease on the key expired and another request took it over");
  }
  if (err.code == ErrorCode::kConflict) {
    // The key already has its charge (its record was purged while we held a fresh claim): answer from it.
    (void)store_.Release(tenant, v.key, c.owner);
    auto existing = store_.GetChargeByKey(tenant, v.key);
    if (existing.ok()) return AnswerFromCharge(tenant, existing.value(), v.fingerprint);
    return Unavailable("the database is unavailable; nothing was charged", 1);
  }
  if (err.code == ErrorCode::kOutcomeUnknown) {
    // The charge may be durable. The lease stays ours until settled, so nobody else runs the key.
    log::Error("commit_outcome_unknown", {{"tenant", tenant}, {"charge_id", row.id}});
    Resolution settled = resolver_.Resolve({InDoubtPhase::kCommit, tenant, v.key, c.owner, row.id});
    if (settled.outcome == Resolution::Outcome::kNotCommitted)
      return Unavailable("the database connection failed during commit and the charge did not commit; nothing "
                         "was charged. Retry with the same Idempotency-Key", 1);
    if (settled.outcome == Resolution::Outcome::kPending)
      return OutcomeUnknown("the database connection failed during commit; the charge may exist. Retry with the "
                            "same Idempotency-Key to learn its outcome, never with a new one");
    // Committed: answer as if the COMMIT had replied (the resolver counted the charge).
    e.completed.expires_at_unix_ms = settled.record.expires_at_unix_ms;
    e.completed.ttl_ms = settled.record.ttl_ms;
    e.settled_in_doubt = true;
    return e;
  }
  (void)store_.Release(tenant, v.key, c.owner);
  log::Warn("charge_failed", {{"tenant", tenant}, {"error", err.ToString()}});
  return Unavailable("the database is unavailable; nothing was charged", 1);
}

HttpResponse ChargeApi::Created(const Validated& v, const Executed& e) {
  if (e.settled_in_doubt)
    log::Info("charge_created", {{"tenant", *v.tenant}, {"charge_id", e.row.id}, {"amount", e.row.amount},
                                 {"currency", e.row.currency}, {"in_doubt", "committed"}});
  else
    log::Info("charge_created", {{"tenant", *v.tenant}, {"charge_id", e.row.id}, {"amount", e.row.amount},
                                 {"currency", e.row.currency}});
  HttpResponse r;
  r.status = 201;
  r.body = e.body;
  SetKeyHeaders(r, e.row.id, e.completed.expires_at_unix_ms);
  return r;
}

HttpResponse ChargeApi::Get(const HttpRequest& req, const std::string& id) {
  const std::string* tenant = Authenticate(req);
  if (tenant == nullptr)
    return RenderProblem({401, "unauthorized", "Unauthorized", "send a valid API key as 'Authorization: Bearer <key>'"});
  auto ch = store_.GetCharge(*tenant, id);
  if (!ch.ok()) {
    if (ch.error().code == ErrorCode::kNotFound)
      return RenderProblem({404, "not-found", "Not found", "no charge with this id for this API key"});
    HttpResponse r = RenderProblem({503, "service-unavailable", "Service unavailable", "the database is unavailable"});
    r.SetHeader("Retry-After", "1");
    return r;
  }
  HttpResponse r;
  r.status = 200;
  r.body = RenderCharge(ch.value());
  r.SetHeader("Content-Type", "application/json");
  return r;
}

}  // namespace paypath::api
