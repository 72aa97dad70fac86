#include "store/idempotency_store.h"

#include <algorithm>

namespace paypath::store {
namespace {

constexpr const char* kSelectKey =
    "SELECT status, fingerprint, lease_owner, "
    "  COALESCE((EXTRACT(EPOCH FROM (lease_expires_at - now())) * 1000)::bigint, 0), "
    "  response_status, response_body, charge_id, "
    "  COALESCE((EXTRACT(EPOCH FROM expires_at) * 1000)::bigint, 0), "
    "  COALESCE((EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint, 0) "
    "FROM idempotency_keys WHERE tenant = $1 AND idem_key = $2";

constexpr const char* kSelectCharge =
    "SELECT id, tenant, idem_key, COALESCE(fingerprint, ''), account_id, amount, currency, description, "
    "  (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint "
    "FROM charges ";

KeyRecord ReadRecord(const PgResult& r) {
  KeyRecord k;
  k.completed = r.Get(0, 0) == "completed";
  k.fingerprint = r.GetString(0, 1);
  if (!r.IsNull(0, 2)) k.lease_owner = r.GetString(0, 2);
  k.lease_remaining_ms = r.GetInt(0, 3);
  if (!r.IsNull(0, 4)) k.response_status = static_cast<int>(r.GetInt(0, 4));
  if (!r.IsNull(0, 5)) k.response_body = r.GetString(0, 5);
  if (!r.IsNull(0, 6)) k.charge_id = r.GetString(0, 6);
  k.expires_at_unix_ms = r.GetInt(0, 7);
  k.ttl_ms = r.GetInt(0, 8);
  return k;
}

ChargeRow ReadCharge(const PgResult& r) {
  ChargeRow ch;
  ch.id = r.GetString(0, 0);
  ch.tenant = r.GetString(0, 1);
  ch.idem_key = r.GetString(0, 2);
  ch.fingerprint = r.GetString(0, 3);
  ch.account_id = r.GetString(0, 4);
  ch.amount = r.GetInt(0, 5);
  ch.currency = r.GetString(0, 6);
  if (!r.IsNull(0, 7)) ch.description = r.GetString(0, 7);
  ch.created_unix_us = r.GetInt(0, 8);
  return ch;
}

// A statement that may have changed the row failed after it was sent: it may have taken effect.
Error LostOrFailed(PgConn& c, const Error& e, const char* what) {
  if (c.reply_lost()) return Error::OutcomeUnknown(std::string(what) + " was sent and its reply lost: " + e.message);
  return e;
}

}  // namespace

Result<ClaimResult> IdempotencyStore::Claim(const std::string& tenant, const std::string& key,
                                            const std::string& fingerprint, const std::string& owner,
                                            std::chrono::milliseconds lease) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  PgConn& c = *conn.value();
  const std::string lease_ms = std::to_string(lease.count());
  // A row can vanish between the INSERT's conflict and the SELECT (released or purged) and a takeover can
  // race another takeover; each retry re-reads fresh state. Three rounds settle any realistic race.
  for (int round = 0; round < 3; ++round) {
    // No claim where the key already created a charge (its row purged since): the charge answers instead.
    // Both rows commit in one transaction, so no snapshot sees the charge without the row or vice versa
    // until the purge, which is retention (>= 10 minutes) later.
    auto ins = c.Exec(
        "INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, lease_owner, lease_expires_at) "
        "SELECT $1, $2, $3, 'in_flight', $4, now() + ($5::bigint * interval '1 millisecond') "
        "WHERE NOT EXISTS (SELECT 1 FROM charges WHERE tenant = $1 AND idem_key = $2) "
        "ON CONFLICT (tenant, idem_key) DO NOTHING "
        "RETURNING (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint",
        {tenant, key, fingerprint, owner, lease_ms});
    if (!ins.ok()) return LostOrFailed(c, ins.error(), "the claim");
    if (ins->rows() == 1) {
      ClaimResult claimed{ClaimResult::Kind::kClaimed, {}, {}, ins->GetInt(0, 0)};
      return claimed;
    }

    auto sel = c.Exec(kSelectKey, {tenant, key});
    if (!sel.ok()) return sel.error();
    if (sel->rows() == 0) {
      auto ch = c.Exec(std::string(kSelectCharge) + "WHERE tenant = $1 AND idem_key = $2", {tenant, key});
      if (!ch.ok()) return ch.error();
      if (ch->rows() == 1) return ClaimResult{ClaimResult::Kind::kCharged, {}, ReadCharge(ch.value()), 0};
      continue;  // gone since the INSERT: try to claim again
    }
    KeyRecord rec = ReadRecord(sel.value());
    if (rec.completed || rec.fingerprint != fingerprint || rec.lease_remaining_ms > 0)
      return ClaimResult{ClaimResult::Kind::kExisting, rec, {}, 0};

    // The lease expired: its owner died or stalled. Take over with a compare-and-set on the old owner, so
    // of several racing takers exactly one wins, and the old owner's Complete() can no longer match.
    auto upd = c.Exec(
        "UPDATE idempotency_keys SET lease_owner = $4, "
        "  lease_expires_at = now() + ($5::bigint * interval '1 millisecond') "
        "WHERE tenant = $1 AND idem_key = $2 AND status = 'in_flight' AND lease_owner = $3 "
        "  AND lease_expires_at <= now() "
        "RETURNING (EXTRACT(EPOCH FROM now()) * 1000000)::bigint",
        {tenant, key, rec.lease_owner, owner, lease_ms});
    if (!upd.ok()) return LostOrFailed(c, upd.error(), "the lease takeover");
    if (upd->rows() == 1) return ClaimResult{ClaimResult::Kind::kTakenOver, {}, {}, upd->GetInt(0, 0)};
  }
  return Error::Aborted("idempotency key kept changing under contention");
}

Result<Completion> IdempotencyStore::Complete(const std::string& owner, const ChargeRow& ch, int response_status,
                                              const std::string& response_body, std::chrono::milliseconds retention,
                                              const std::function<Status(PgConn&)>& append_outbox) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  PgConn& c = *conn.value();
  auto tx = Transaction::Start(c);
  if (!tx.ok()) return tx.error();
  // The owner check and the completion are one statement; the row lock it takes is held to COMMIT, so a
  // concurrent takeover either happened before (we match nothing) or waits and then sees 'completed'.
  auto upd = c.Exec(
      "UPDATE idempotency_keys SET status = 'completed', lease_owner = NULL, lease_expires_at = NULL, "
      "  response_status = $4, response_body = $5, charge_id = $6, completed_at = now(), "
      "  expires_at = now() + ($7::bigint * interval '1 millisecond') "
      "WHERE tenant = $1 AND idem_key = $2 AND lease_owner = $3 AND status = 'in_flight' "
      "RETURNING (EXTRACT(EPOCH FROM expires_at) * 1000)::bigint, "
      "  (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint",
      {ch.tenant, ch.idem_key, owner, std::to_string(response_status), response_body, ch.id,
       std::to_string(retention.count())});
  if (!upd.ok()) return upd.error();
  if (upd->rows() == 0) return Error::FailedPrecondition("the lease on this idempotency key is held by another request");
  Completion done{upd->GetInt(0, 0), upd->GetInt(0, 1)};
  // created_at from integer microseconds: exact (no float round trip), so a body rebuilt from this row
  // later says the same "created" as the stored one.
  auto ins = c.Exec(
      "INSERT INTO charges (id, tenant, idem_key, fingerprint, account_id, amount, currency, description, status, "
      "  created_at) "
      "VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8, 'succeeded', "
      "  to_timestamp($9::bigint / 1000000) + ($9::bigint % 1000000) * interval '1 microsecond')",
      {ch.id, ch.tenant, ch.idem_key, ch.fingerprint, ch.account_id, std::to_string(ch.amount), ch.currency,
       ch.description, std::to_string(ch.created_unix_us)});
  if (!ins.ok()) {
    // 23505 here is (tenant, idem_key): the id is 128 random bits.
    if (ins.error().code == ErrorCode::kConflict)
      return Error::Conflict("a charge already exists for this idempotency key");
    return ins.error();
  }
  Status ob = append_outbox(c);
  if (!ob.ok()) return ob.error();
  Status commit = tx.value()->Commit();
  if (!commit.ok()) return commit.error();
  return done;
}

Status IdempotencyStore::Release(const std::string& tenant, const std::string& key, const std::string& owner) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  auto r = conn.value()->Exec(
      "DELETE FROM idempotency_keys WHERE tenant = $1 AND idem_key = $2 AND lease_owner = $3 "
      "AND status = 'in_flight'",
      {tenant, key, owner});
  if (!r.ok()) return r.error();
  return OkStatus();
}

Result<Settlement> IdempotencyStore::Settle(const std::string& tenant, const std::string& key,
                                            const std::string& owner, const std::string& charge_id, Clock& clock,
                                            std::chrono::steady_clock::time_point deadline,
                                            std::chrono::milliseconds lock_timeout) {
  // A fresh connection: the pooled one that lost the reply is gone, and the pool may be exhausted by
  // requests waiting on the same database.
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.Now());
  auto conn = pool_.OpenFresh(clock, deadline, std::max(left, std::chrono::milliseconds(100)));
  if (!conn.ok()) return conn.error();
  PgConn& c = *conn.value();
  auto tx = Transaction::Start(c);
  if (!tx.ok()) return tx.error();
  auto lt = c.Exec("SELECT set_config('lock_timeout', $1, true)", {std::to_string(lock_timeout.count())});
  if (!lt.ok()) return lt.error();
  // The lock is what waits for the in-doubt transaction: while it runs (or is being rolled back after its
  // connection died) it holds this row; once it has ended, the row says how.
  auto sel = c.Exec(std::string(kSelectKey) + " FOR UPDATE", {tenant, key});
  if (!sel.ok()) return sel.error();
  Settlement s;
  if (sel->rows() == 1) {
    KeyRecord rec = ReadRecord(sel.value());
    if (rec.completed) {
      s.committed = !charge_id.empty() && rec.charge_id == charge_id;
      if (s.committed) s.record = rec;
      return s;
    }
    if (rec.lease_owner != owner) return s;  // in flight under someone else: not ours
    auto del = c.Exec(
        "DELETE FROM idempotency_keys WHERE tenant = $1 AND idem_key = $2 AND lease_owner = $3 "
        "AND status = 'in_flight'",
        {tenant, key, owner});
    if (!del.ok()) return del.error();
    Status commit = tx.value()->Commit();
    if (!commit.ok()) return commit.error();
    return s;
  }
  // No row: never claimed, released, or purged. Only a committed charge can tell the last case apart.
  if (!charge_id.empty()) {
    auto ch = c.Exec("SELECT 1 FROM charges WHERE id = $1", {charge_id});
    if (!ch.ok()) return ch.error();
    if (ch->rows() == 1) {
      s.committed = true;
      s.record.completed = true;
      s.record.charge_id = charge_id;
    }
  }
  return s;
}

Result<ChargeRow> IdempotencyStore::GetCharge(const std::string& tenant, const std::string& id) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  auto r = conn.value()->Exec(std::string(kSelectCharge) + "WHERE id = $1 AND tenant = $2", {id, tenant});
  if (!r.ok()) return r.error();
  if (r->rows() == 0) return Error::NotFound("no such charge");
  return ReadCharge(r.value());
}

Result<ChargeRow> IdempotencyStore::GetChargeByKey(const std::string& tenant, const std::string& key) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  auto r = conn.value()->Exec(std::string(kSelectCharge) + "WHERE tenant = $1 AND idem_key = $2", {tenant, key});
  if (!r.ok()) return r.error();
  if (r->rows() == 0) return Error::NotFound("no charge for this key");
  return ReadCharge(r.value());
}

Result<int64_t> IdempotencyStore::PurgeExpired(int batch, std::chrono::milliseconds stale_after) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  auto r = conn.value()->Exec(
      "DELETE FROM idempotency_keys WHERE ctid IN ("
      "  SELECT ctid FROM idempotency_keys WHERE (status = 'completed' AND expires_at < now()) "
      "    OR (status = 'in_flight' AND lease_expires_at < now() - ($2::bigint * interval '1 millisecond')) "
      "  LIMIT $1)",
      {std::to_string(batch), std::to_string(stale_after.count())});
  if (!r.ok()) return r.error();
  return r->affected();
}

Status IdempotencyStore::Ping() {
  auto conn = pool_.Acquire(std::chrono::milliseconds(500));
  if (!conn.ok()) return conn.error();
  auto r = conn.value()->Exec("SELECT 1");
  if (!r.ok()) return r.error();
  return OkStatus();
}

}  // namespace paypath::store
