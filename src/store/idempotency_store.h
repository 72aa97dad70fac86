// The idempotency state machine's storage in PostgreSQL, the source of truth. Every statement that
// touches idempotency_keys and charges lives in idempotency_store.cc.
//
// A request moves a (tenant, key) row through atomic phases, each one statement or one transaction:
//   Claim     INSERT ... ON CONFLICT DO NOTHING, unless a charge already exists for the key: the winner holds
//             a lease (owner token, expiry). Losers read the existing row: completed -> replay or mismatch;
//             in flight -> conflict, or take over the lease if it expired (a compare-and-set on the old
//             owner token). No row but a charge (the row was purged) -> answer from the charge.
//   Complete  one transaction: mark the key completed with the stored response *only if the caller still
//             owns the lease*, insert the charge (unique per (tenant, key)), append the outbox event. A
//             stale owner changes nothing.
//   Release   delete the caller's own in-flight row, so a request that failed before committing leaves no
//             trace and the same key can be retried at once.
//   Settle    after an in-doubt Complete or a lost claim reply: on a fresh connection, wait for the row's
//             lock and read what happened; release the caller's row if its transaction did not commit.
// Group commit (store/group_commit.h): with GroupCommitOptions::enabled, concurrent Claims' INSERTs leave as
// one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING statement, and concurrent Completes as one
// transaction of one statement (owner-checked UPDATE + charges + outbox over unnest). Per item:
//   - its own result, exactly as the unbatched call would answer it;
//   - a row refused inside a batch (a constraint, a deadlock) fails the batch's statement: the batch is
//     split in halves and each half retried, down to the refused row alone, which gets its own error;
//   - a key repeated inside one claim batch is settled there: the first item claims, the others see its
//     in-flight row (409), exactly as if they had come a moment later;
//   - a COMMIT whose reply was lost makes every completion of the batch kOutcomeUnknown, leases kept;
//     a claim statement whose reply was lost makes every claim of it kOutcomeUnknown.
// Every time is the database clock (now()), so all api processes agree on leases and expiry whatever
// their own clocks say, and the charge's created_at is the database time of its claim.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "store/group_commit.h"
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
  int64_t expires_at_unix_ms = 0;  // completed only: when the row may be purged (0: unknown)
  int64_t ttl_ms = 0;          // completed only: expires_at - now() on the database clock (the cache's TTL)
};

struct ChargeRow {
  std::string id;
  std::string tenant;
  std::string idem_key;
  std::string fingerprint;  // empty for charges written before fingerprints were kept
  std::string account_id;
  int64_t amount = 0;
  std::string currency;
  std::optional<std::string> description;
  int64_t created_unix_us = 0;  // the database time of the claim; also the response's "created"
};

struct ClaimResult {
  enum class Kind {
    kClaimed,    // a new row: this request holds the lease
    kTakenOver,  // an expired lease passed to this request
    kExisting,   // the row exists (completed or in flight): `existing`
    kCharged,    // no row, but the key's charge exists (its row was purged): `charge`
  };
  Kind kind;
  KeyRecord existing;
  ChargeRow charge;
  int64_t claimed_at_unix_us = 0;  // kClaimed/kTakenOver: now() of the claim, the charge's created_at
};

struct Completion {
  int64_t expires_at_unix_ms = 0;
  int64_t ttl_ms = 0;
};

// What an in-doubt attempt turned out to be.
struct Settlement {
  bool committed = false;  // the charge `charge_id` is durable (record holds the completed key)
  KeyRecord record;        // committed: the completed key as stored (the response to answer with)
};

// The charge's outbox event, written in the charge's transaction (the outbox table: outbox/outbox.h).
struct OutboxRow {
  std::string message_id;  // UUID
  std::string event_type;
  std::string payload_json;
};

// What Complete writes for one request.
struct CompletionRequest {
  std::string owner;  // the lease owner token from Claim
  ChargeRow charge;   // created_at = charge.created_unix_us
  int response_status = 0;
  std::string response_body;
  std::chrono::milliseconds retention{0};  // the key's record expires retention after completion (db clock)
  OutboxRow outbox;   // aggregate_id = charge.id, tenant = charge.tenant
};

class IdempotencyStore {
 public:
  // Starts the group-commit workers (2 x options.connections threads) when options.enabled; they take
  // pooled connections from `pool` per batch. `clock` times the batches' waits.
  explicit IdempotencyStore(PgPool& pool, GroupCommitOptions options = {}, Clock& clock = SystemClock::Instance());
  ~IdempotencyStore();
  IdempotencyStore(const IdempotencyStore&) = delete;
  IdempotencyStore& operator=(const IdempotencyStore&) = delete;

  // Phase 1. Claims (tenant, key) for `owner` with a lease of `lease`, takes over an expired lease held by
  // someone else if the fingerprint matches, or reports what exists (the row, or the key's charge).
  // Errors: kUnavailable (nothing written), kAborted (the row kept changing under contention),
  // kOutcomeUnknown (the claim was sent and its reply lost: the row may exist, held by `owner`).
  Result<ClaimResult> Claim(const std::string& tenant, const std::string& key, const std::string& fingerprint,
                            const std::string& owner, std::chrono::milliseconds lease);

  // Phase 2. In one transaction: completes the key with (status, body) if `owner` still holds its lease
  // (expiry = now() + retention), inserts the charge and its outbox row. Returns after the COMMIT returned
  // OK. The failpoint api.before_commit fires (once per transaction) between the statement and COMMIT.
  // Errors: kFailedPrecondition (lease lost to another owner; nothing written), kConflict (a charge for
  // (tenant, key) already exists; nothing written), kUnavailable (nothing written), kOutcomeUnknown
  // (COMMIT's fate unknown: do not release the lease; settle it with Settle), kInvalidArgument/kAborted
  // (this row refused or lost a deadlock; nothing written).
  Result<Completion> Complete(const CompletionRequest& req);

  // The same two phases without a waiting thread (issue 11 item 2). `done` runs exactly once, always
  // through `post` (the caller's executor, e.g. http::Responder::Post), never on a batch worker, with what
  // Claim / Complete would have returned. While the item waits for its batch no thread of the caller waits.
  // ClaimAsync's rare follow-up read (the key already exists: its row or charge) runs inside the posted
  // task, on the caller's thread. With group commit off, both run the blocking call on this thread and post
  // `done` afterwards.
  using Post = std::function<void(std::function<void()>)>;
  void ClaimAsync(const std::string& tenant, const std::string& key, const std::string& fingerprint,
                  const std::string& owner, std::chrono::milliseconds lease, Post post,
                  std::function<void(Result<ClaimResult>)> done);
  void CompleteAsync(CompletionRequest req, Post post, std::function<void(Result<Completion>)> done);

  // Stops the group-commit workers (Batcher::Stop): batches in flight finish and answer, queued items are
  // answered kUnavailable (nothing of theirs was sent), later async calls fail at once. The api calls it at
  // shutdown, before its I/O threads stop, so every waiting request gets its answer. Idempotent.
  void StopBatches();

  // Deletes the in-flight row if `owner` still holds it. Best effort: on failure the lease expires.
  Status Release(const std::string& tenant, const std::string& key, const std::string& owner);

  // Settles an attempt whose outcome was lost: `charge_id` is the charge its Complete tried to commit
  // (empty for a lost claim reply). On a fresh connection opened and used within `deadline`, locks the
  // key's row (waiting at most `lock_timeout` for the in-doubt transaction to end) and reads it:
  //   completed with charge_id            -> committed (record = the stored response)
  //   in flight held by owner             -> not committed; the row is deleted (the lease released)
  //   anything else (no row, another owner, another charge) -> not committed by this attempt
  // Errors (the outcome is still unknown; try again later): kUnavailable, kAborted (lock wait timed out).
  Result<Settlement> Settle(const std::string& tenant, const std::string& key, const std::string& owner,
                            const std::string& charge_id, Clock& clock,
                            std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds lock_timeout);

  // The tenant's charge `id`, or kNotFound (also for another tenant's charge).
  Result<ChargeRow> GetCharge(const std::string& tenant, const std::string& id);
  // The charge created under (tenant, key), or kNotFound.
  Result<ChargeRow> GetChargeByKey(const std::string& tenant, const std::string& key);

  // Deletes up to `batch` completed keys past their expiry, and in-flight rows whose lease expired more
  // than `stale_after` ago (their owner is gone). Returns rows deleted.
  Result<int64_t> PurgeExpired(int batch, std::chrono::milliseconds stale_after);

  // SELECT 1, for readiness.
  Status Ping();

 private:
  struct ClaimItem {
    std::string tenant, key, fingerprint, owner;
    std::chrono::milliseconds lease{0};
  };
  struct ClaimInsert {
    enum class Kind {
      kInserted,         // the row is ours: claimed_at_unix_us
      kNotInserted,      // a row or the key's charge exists: read it (the unbatched path)
      kInFlightInBatch,  // an earlier item of the same batch claimed the key: `in_flight` is its row
    };
    Kind kind = Kind::kNotInserted;
    int64_t claimed_at_unix_us = 0;
    KeyRecord in_flight;
  };
  // The batch functions (one result per item; see the group-commit contract above).
  void RunClaims(std::vector<ClaimItem>& items, std::vector<Result<ClaimInsert>>& out);
  void ExecClaims(PgConn& c, const std::vector<ClaimItem>& items, const std::vector<size_t>& idx,
                  std::vector<Result<ClaimInsert>>& out);
  void RunCompletions(std::vector<CompletionRequest>& items, std::vector<Result<Completion>>& out);
  void ExecCompletions(PgConn& c, const std::vector<CompletionRequest>& items, const std::vector<size_t>& idx,
                       std::vector<Result<Completion>>& out);
  Result<ClaimInsert> InsertClaim(ClaimItem item);
  // Claim after its batched INSERT: the answer, or the unbatched read of what exists.
  Result<ClaimResult> FinishClaim(const ClaimItem& item, Result<ClaimInsert> first);

  PgPool& pool_;
  std::unique_ptr<Batcher<ClaimItem, ClaimInsert>> claims_;            // null when group commit is off
  std::unique_ptr<Batcher<CompletionRequest, Completion>> completions_;  // null when group commit is off
  std::unique_ptr<GroupCommitMetrics> claim_metrics_, complete_metrics_;
};

}  // namespace paypath::store
