// POST /v1/charges and GET /v1/charges/{id}: pure request -> response handling over the idempotency
// store, the hot tier and the outbox. No sockets here (src/http moves the bytes).
//
// POST runs the phases of store/idempotency_store.h:
//   validate (401, 400, 415, 413, 400 - never stored) -> hot tier lookup (replay or 422 without touching
//   PostgreSQL) -> Claim -> Decide -> [proceed] build the response -> Complete (charge + outbox + stored
//   response, one transaction) -> cache in Redis -> 201.
// Every error after a successful claim releases the lease, except an unknown COMMIT outcome: then the
// lease is kept to expire, so a retry either replays the committed charge or takes over a clean key.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "api/auth.h"
#include "http/message.h"
#include "common/clock.h"
#include "common/random.h"
#include "store/hot_tier.h"
#include "store/idempotency_store.h"

namespace paypath::api {

using http::HttpRequest;
using http::HttpResponse;
using http::HeaderNameEquals;

struct ChargeOptions {
  // The lease must outlive the longest normal request (tens of ms) by far, yet a crashed owner blocks the
  // key only this long. 10 s: far above the p99.9 of a charge, short enough that a client retrying with
  // backoff after a crash gets through within its budget.
  std::chrono::milliseconds lease{10000};
  // How long a completed key is remembered (and replayed). 24 h matches common client retry horizons.
  std::chrono::milliseconds retention{24 * 3600 * 1000};
};

class ChargeApi {
 public:
  ChargeApi(std::map<std::string, std::string> api_keys, store::IdempotencyStore& store, store::HotTier& hot,
            Clock& clock, Random& random, ChargeOptions options);

  HttpResponse Create(const HttpRequest& req);
  HttpResponse Get(const HttpRequest& req, const std::string& id);

  // The tenant for the request's bearer token, or nullptr.
  const std::string* Authenticate(const HttpRequest& req) const;

 private:
  HttpResponse Replay(const store::KeyRecord& rec);

  const ApiKeys api_keys_;  // digests only: compared in constant time (api/auth.h)
  store::IdempotencyStore& store_;
  store::HotTier& hot_;
  Clock& clock_;
  Random& random_;
  const ChargeOptions options_;
};

// The charge's public JSON, identical for the 201, every replay and GET.
std::string RenderCharge(const store::ChargeRow& ch);

}  // namespace paypath::api
