#include "store/idempotency_store.h"

namespace paypath::store {
namespace {

constexpr const char* kSelectKey =
    "SELECT status, fingerprint, lease_owner, "
    "  COALESCE((EXTRACT(EPOCH FROM (lease_expires_at - now())) * 1000)::bigint, 0), "
    "  response_status, response_body, charge_id, "
    "  COALESCE((EXTRACT(EPOCH FROM expires_at) * 1000)::bigint, 0) "
    "FROM idempotency_keys WHERE tenant = $1 AND idem_key = $2";

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
  return k;
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
    auto ins = c.Exec(
        "INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, lease_owner, lease_expires_at) "
        "VALUES ($1, $2, $3, 'in_flight', $4, now() + ($5::bigint * interval '1 millisecond')) "
        "ON CONFLICT (tenant, idem_key) DO NOTHING",
        {tenant, key, fingerprint, owner, lease_ms});
    if (!ins.ok()) return ins.error();
    if (ins->affected() == 1) return ClaimResult{ClaimResult::Kind::kClaimed, {}};

    auto sel = c.Exec(kSelectKey, {tenant, key});
    if (!sel.ok()) return sel.error();
    if (sel->rows() == 0) continue;  // gone since the INSERT: try to claim again
    KeyRecord rec = ReadRecord(sel.value());
    if (rec.completed || rec.fingerprint != fingerprint || rec.lease_remaining_ms > 0)
      return ClaimResult{ClaimResult::Kind::kExisting, rec};

    // The lease expired: its owner died or stalled. Take over with a compare-and-set on the old owner, so
    // of several racing takers exactly one wins, and the old owner's Complete() can no longer match.
    auto upd = c.Exec(
        "UPDATE idempotency_keys SET lease_owner = $4, "
        "  lease_expires_at = now() + ($5::bigint * interval '1 millisecond') "
        "WHERE tenant = $1 AND idem_key = $2 AND status = 'in_flight' AND lease_owner = $3 "
        "  AND lease_expires_at <= now()",
        {tenant, key, rec.lease_owner, owner, lease_ms});
    if (!upd.ok()) return upd.error();
    if (upd->affected() == 1) return ClaimResult{ClaimResult::Kind::kTakenOver, {}};
  }
  return Error::Aborted("idempotency key kept changing under contention");
}

Result<int64_t> IdempotencyStore::Complete(const std::string& owner, const ChargeRow& ch, int response_status,
                                           const std::string& response_body, std::chrono::milliseconds retention,
                                           const std::function<Status(PgConn&)>& append_outbox) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  PgConn& c = *conn.value();
  auto tx = Transaction::Start(c);
  if (!tx.ok()) return tx.error();
  const std::string created_us = std::to_string(ch.created_unix_us);
  // The owner check and the completion are one statement; the row lock it takes is held to COMMIT, so a
  // concurrent takeover either happened before (we match nothing) or waits and then sees 'completed'.
  auto upd = c.Exec(
      "UPDATE idempotency_keys SET status = 'completed', lease_owner = NULL, lease_expires_at = NULL, "
      "  response_status = $4, response_body = $5, charge_id = $6, completed_at = now(), "
      "  expires_at = to_timestamp($7::bigint / 1000000.0) + ($8::bigint * interval '1 millisecond') "
      "WHERE tenant = $1 AND idem_key = $2 AND lease_owner = $3 AND status = 'in_flight' "
      "RETURNING (EXTRACT(EPOCH FROM expires_at) * 1000)::bigint",
      {ch.tenant, ch.idem_key, owner, std::to_string(response_status), response_body, ch.id, created_us,
       std::to_string(retention.count())});
  if (!upd.ok()) return upd.error();
  if (upd->rows() == 0) return Error::FailedPrecondition("the lease on this idempotency key is held by another request");
  int64_t expires_ms = upd->GetInt(0, 0);
  auto ins = c.Exec(
      "INSERT INTO charges (id, tenant, idem_key, account_id, amount, currency, description, status, created_at) "
      "VALUES ($1, $2, $3, $4, $5::bigint, $6, $7, 'succeeded', to_timestamp($8::bigint / 1000000.0))",
      {ch.id, ch.tenant, ch.idem_key, ch.account_id, std::to_string(ch.amount), ch.currency, ch.description,
       created_us});
  if (!ins.ok()) return ins.error();
  Status ob = append_outbox(c);
  if (!ob.ok()) return ob.error();
  Status commit = tx.value()->Commit();
  if (!commit.ok()) return commit.error();
  return expires_ms;
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

Result<ChargeRow> IdempotencyStore::GetCharge(const std::string& tenant, const std::string& id) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.error();
  auto r = conn.value()->Exec(
      "SELECT id, tenant, idem_key, account_id, amount, currency, description, "
      "  (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint "
      "FROM charges WHERE id = $1 AND tenant = $2",
      {id, tenant});
  if (!r.ok()) return r.error();
  if (r->rows() == 0) return Error::NotFound("no such charge");
  ChargeRow ch;
  ch.id = r->GetString(0, 0);
  ch.tenant = r->GetString(0, 1);
  ch.idem_key = r->GetString(0, 2);
  ch.account_id = r->GetString(0, 3);
  ch.amount = r->GetInt(0, 4);
  ch.currency = r->GetString(0, 5);
  if (!r->IsNull(0, 6)) ch.description = r->GetString(0, 6);
  ch.created_unix_us = r->GetInt(0, 7);
  return ch;
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
