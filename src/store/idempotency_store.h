// The idempotency state machine's storage in PostgreSQL, the source of truth. Every statement that
// touches idempotency_keys and charges lives in idempotency_store.cc.
//
// A request moves a (tenant, key) row through atomic phases, each one statement or one transaction:
//   Claim     INSERT ... ON CONFLICT DO NOTHING: the winner holds a lease (owner token, expiry). Losers read
//             the existing row: completed -> replay or mismatch; in flight -> conflict, or take over the
//             lease if it expired (a compare-and-set on the old owner token).
//   Complete  one transaction: mark the key completed with the stored response *only if the caller still
//             owns the lease*, insert the charge, append the outbox event. A stale owner changes nothing.
//   Release   delete the caller's own in-flight row, so a request that failed before committing leaves no
//             trace and the same key can be retried at once.
// Lease times use the database clock (now()), so every api process agrees on expiry.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "store/pg.h"

namespace paypath::store {

struct KeyRecord {
  bool completed = false;
  std::string fingerprint;
  std::string lease_owner;     // in flight only
  int64_t lease_remaining_ms = 0;  // in flight only; <= 0 means the lease has expired
  int response_status = 0;     // completed only
  std::string response_body;   // completed only
  std::string charge_id;       // completed only
  int64_t expires_at_unix_ms = 0;  // completed only: when the key is forgotten
};

struct ClaimResult {
  enum class Kind { kClaimed, kTakenOver, kExisting };
  Kind kind;
  KeyRecord existing;  // kExisting: the row as it stands (completed or in flight)
};

struct ChargeRow {
  std::string id;
  std::string tenant;
  std::string idem_key;
  std::string account_id;
  int64_t amount = 0;
  std::string currency;
  std::optional<std::string> description;
  int64_t created_unix_us = 0;  // wall time chosen by the api; also the response's "created"
};

class IdempotencyStore {
 public:
  explicit IdempotencyStore(PgPool& pool) : pool_(pool) {}

  // Phase 1. Claims (tenant, key) for `owner` with a lease of `lease`, takes over an expired lease held by
  // someone else if the fingerprint matches, or returns the existing row untouched.
  // Errors: kUnavailable (database down; nothing written).
  Result<ClaimResult> Claim(const std::string& tenant, const std::string& key, const std::string& fingerprint,
                            const std::string& owner, std::chrono::milliseconds lease);

  // Phase 2. In one transaction: completes the key with (status, body) if `owner` still holds its lease,
  // inserts `charge`, and calls `append_outbox(conn)` to write the outbox event. Returns the key's
  // expiry (unix ms) on success.
  // Errors: kFailedPrecondition (lease lost to another owner; nothing written), kUnavailable (nothing
  // written), kOutcomeUnknown (COMMIT's fate unknown: do not release the lease; let a retry find out).
  Result<int64_t> Complete(const std::string& owner, const ChargeRow& charge, int response_status,
                           const std::string& response_body, std::chrono::milliseconds retention,
                           const std::function<Status(PgConn&)>& append_outbox);

  // Deletes the in-flight row if `owner` still holds it. Best effort: on failure the lease expires.
  Status Release(const std::string& tenant, const std::string& key, const std::string& owner);

  // The tenant's charge `id`, or kNotFound (also for another tenant's charge).
  Result<ChargeRow> GetCharge(const std::string& tenant, const std::string& id);

  // Deletes up to `batch` completed keys past their expiry, and in-flight rows whose lease expired more
  // than `stale_after` ago (their owner is gone). Returns rows deleted.
  Result<int64_t> PurgeExpired(int batch, std::chrono::milliseconds stale_after);

  // SELECT 1, for readiness.
  Status Ping();

 private:
  PgPool& pool_;
};

}  // namespace paypath::store
