// POST /v1/charges and GET /v1/charges/{id}: pure request -> response handling over the idempotency
// store, the hot tier and the outbox. No sockets here (src/http moves the bytes).
//
// POST runs the phases of store/idempotency_store.h:
//   validate (401, 400, 415, 413, 400 - never stored) -> in doubt here? (api/in_doubt.h: settle it or
//   answer outcome-unknown) -> hot tier lookup (replay or 422 without touching PostgreSQL) -> Redis
//   in-flight gate (409 from Redis while the same request is at work; store/hot_tier.h) -> Claim ->
//   Decide -> [proceed] build the response -> Complete (charge + outbox + stored response, one
//   transaction) -> cache in Redis -> 201.
// Every error after a successful claim releases the lease, except an unknown outcome (COMMIT, or the
// claim's own reply, lost with the connection): the attempt goes to the in-doubt resolver, which tries to
// settle it at once (answer 201, or "nothing was charged") and otherwise answers 503 outcome-unknown with
// Retry-After: 1 while it keeps trying; settling releases the lease of an attempt that did not commit.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "api/auth.h"
#include "http/message.h"
#include "api/in_doubt.h"
#include "api/validation.h"
#include "common/clock.h"
#include "common/random.h"
#include "common/result.h"
#include "store/hot_tier.h"
#include "store/idempotency_store.h"

namespace paypath::api {

using http::HttpRequest;
using http::HttpResponse;
using http::HeaderNameEquals;

// How long after its first attempt a client may come back with the same key and still be answered from
// the key's stored record: the client's 10 s deadline many times over, a person re-running `paypath charge
// --key` after an outcome-unknown exit, a job queue retrying a failed task. After the record is purged the
// key still never charges again (it replays from its charge, or 422s), so the horizon is about answering
// from the record, with its Idempotency-Key-Expires, not about safety. Documented in docs/api.md.
inline constexpr std::chrono::minutes kClientRetryHorizon{10};

// Seconds a client should wait after outcome-unknown: the resolver retries every 200 ms, so one second
// usually finds the attempt settled, and a client with the default 10 s deadline honours it three times.
inline constexpr int kOutcomeUnknownRetryAfterS = 1;

struct ChargeOptions {
  // The lease must outlive the longest normal request (tens of ms) by far, yet a crashed owner blocks the
  // key only this long. 10 s: far above the p99.9 of a charge, short enough that a client retrying with
  // backoff after a crash gets through within its budget.
  std::chrono::milliseconds lease{10000};
  // How long a completed key's record (stored response, fingerprint, expiry) is kept after completion, on
  // the database clock. 24 h matches common client retry horizons. The charge itself is kept for ever.
  std::chrono::milliseconds retention{24 * 3600 * 1000};
  InDoubtOptions in_doubt;
  // Requests admitted past the hot tier and waiting for PostgreSQL (queued for a batch, in one, or between
  // the two phases); beyond it a new charge is shed with 503. 1024: at the ~3,000 charges/s this machine
  // commits, a full queue is ~0.3 s of work, past which a client does better retrying after Retry-After
  // than waiting; it is a quarter of max_connections. A pending request holds ~1 KiB for a typical charge,
  // ~40 KiB with a maximal 16 KiB body (its canonical form and response): 1-40 MiB for a full queue.
  int max_pending = 1024;

  // kInvalidArgument when retention < lease + kClientRetryHorizon (the record must outlive every lease and
  // every retry a client may still make), lease <= 0, or max_pending < 1.
  Status Validate() const;
};

class ChargeApi {
 public:
  ChargeApi(std::map<std::string, std::string> api_keys, store::IdempotencyStore& store, store::HotTier& hot,
            Clock& clock, Random& random, ChargeOptions options);

  // POST /v1/charges without a waiting thread: returns once the request waits for Redis or its claim batch
  // (or has its answer); every continuation (after the Redis round trip before the claim, the claim, the
  // completion, the Redis round trip after the commit) runs through out->Post, on the request's I/O thread.
  // No Redis call blocks a thread (store/hot_tier.h's async forms). What may still block that thread: the
  // rare PostgreSQL reads off the batched path (an existing key's row, a lease release after a failure,
  // the in-doubt resolver's first attempt and its recheck while this process has attempts in doubt). No
  // thread waits for a batch.
  // Admission: at most options.max_pending requests are between their claim's submission and their
  // answer; one more is answered 503 /problems/overloaded with Retry-After: 1 (paypath_api_shed_total)
  // before anything is written for it.
  void CreateAsync(const HttpRequest& req, http::ResponderPtr out);
  // The blocking form (tools, tests): the continuations run on the calling thread.
  HttpResponse Create(const HttpRequest& req);
  HttpResponse Get(const HttpRequest& req, const std::string& id);

  // The tenant for the request's bearer token, or nullptr.
  const std::string* Authenticate(const HttpRequest& req) const;

  // The in-doubt attempts of this process; `paypath api` runs its RunOnce in a worker loop.
  InDoubtResolver& resolver() { return resolver_; }

 private:
  // Create runs four phases, each returning exactly one outcome: either the next phase's input or the
  // response that ends the request (rocket-rides' atomic phases; TigerBeetle's one result per event).
  //   Validate  auth, Idempotency-Key, media type, size, body -> Validated, or 401/400/415/413 (never stored)
  //   Resolve   in-doubt recheck, hot tier, Redis gate, Claim -> Claimed (this request holds the lease), or
  //             the answer for an existing key (replay, 422, 409, outcome-unknown, 503)
  //   Execute   Complete (charge + outbox + stored response)  -> Executed (the COMMIT returned OK, or the
  //             in-doubt resolver proved it did), or 409/503/outcome-unknown with the lease released or kept
  //   Respond   cache in Redis and leave the gate (one round trip, awaited), log, 201
  template <typename T>
  using Phase = std::variant<T, HttpResponse>;  // T: go on to the next phase; HttpResponse: answer now
  struct Validated {
    const std::string* tenant = nullptr;
    std::string key;
    ChargeRequest charge;
    std::string fingerprint;
  };
  struct Claimed {
    std::string owner;
    store::ClaimResult claim;
  };
  struct Executed {
    store::ChargeRow row;
    std::string body;
    store::KeyRecord completed;  // the key as stored: expiry and TTL for the response and the cache
    bool settled_in_doubt = false;  // the COMMIT's reply was lost and the resolver proved it committed
  };
  // Resolve and Execute each wait once for PostgreSQL (the claim batch, the completion batch), so each is
  // split at that wait: the part before it submits, the part after it runs in the continuation.
  struct Prepared {  // Execute before the completion batch
    Executed e;
    store::CompletionRequest req;
  };
  struct InFlightRequest;  // one POST between its phases (charges.cc)
  Phase<Validated> Validate(const HttpRequest& req) const;
  // Resolve before the claim, in two steps: the in-doubt recheck, then the hot tier's one round trip
  // (lookup and gate). Each: the answer, or nullopt to go on. *gated: this request holds the Redis
  // in-flight gate's marker (left once the answer is known).
  std::optional<HttpResponse> InDoubt(const Validated& v);
  std::optional<HttpResponse> Looked(const Validated& v, store::HotTier::Begun b, bool* gated);
  // Resolve after the claim.
  Phase<Claimed> Decided(const Validated& v, std::string owner, Result<store::ClaimResult> claim);
  Phase<Prepared> Prepare(const Validated& v, const Claimed& c);
  Phase<Executed> Committed(const Validated& v, const Claimed& c, Executed e, Result<store::Completion> done);
  HttpResponse Created(const Validated& v, const Executed& e);  // the 201 (logged)
  // The continuations of CreateAsync.
  static store::IdempotencyStore::Post Poster(const std::shared_ptr<InFlightRequest>& r);  // r's executor
  void Admit(std::shared_ptr<InFlightRequest> r);
  void Claim(std::shared_ptr<InFlightRequest> r);
  void Execute(std::shared_ptr<InFlightRequest> r);
  void Respond(const std::shared_ptr<InFlightRequest>& r, const std::shared_ptr<Executed>& e);
  void Finish(const std::shared_ptr<InFlightRequest>& r, HttpResponse response);

  HttpResponse Replay(const store::KeyRecord& rec);
  // A replay built from the key's charge (its record was purged): same status and body as the stored one.
  HttpResponse ReplayFromCharge(const store::ChargeRow& ch);
  // The key's charge answers: replay when `fingerprint` matches it, 422 otherwise.
  HttpResponse AnswerFromCharge(const std::string& tenant, const store::ChargeRow& ch, const std::string& fingerprint);

  const ApiKeys api_keys_;  // digests only: compared in constant time (api/auth.h)
  store::IdempotencyStore& store_;
  store::HotTier& hot_;
  Random& random_;
  const ChargeOptions options_;
  InDoubtResolver resolver_;
  std::atomic<int> pending_{0};  // admitted requests not yet answered (<= options_.max_pending)
};

// The charge's public JSON, identical for the 201, every replay and GET.
std::string RenderCharge(const store::ChargeRow& ch);

}  // namespace paypath::api
