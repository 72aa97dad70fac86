#include "store/idempotency_store.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "common/failpoints.h"
#include "common/metrics.h"

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

metrics::Counter& PgClaims() {
  return metrics::Registry::Default().GetCounter(
      "paypath_idempotency_pg_claims_total",
      "Claims that reached PostgreSQL (the Redis gate answers the rest of a duplicate storm)");
}

// A statement that may have changed the row failed after it was sent: it may have taken effect.
Error LostOrFailed(PgConn& c, const Error& e, const char* what) {
  if (c.reply_lost()) return Error::OutcomeUnknown(std::string(what) + " was sent and its reply lost: " + e.message);
  return e;
}

}  // namespace

IdempotencyStore::IdempotencyStore(PgPool& pool, GroupCommitOptions options, Clock& clock)
    : pool_(pool),
      claim_metrics_(std::make_unique<GroupCommitMetrics>("claim")),
      complete_metrics_(std::make_unique<GroupCommitMetrics>("complete")) {
  PgClaims();  // registered at start, so /metrics shows 0 before the first claim
  if (!options.enabled) return;
  claims_ = std::make_unique<Batcher<ClaimItem, ClaimInsert>>(
      "claim", options, clock, [this](auto& items, auto& out) { RunClaims(items, out); });
  completions_ = std::make_unique<Batcher<CompletionRequest, Completion>>(
      "complete", options, clock, [this](auto& items, auto& out) { RunCompletions(items, out); });
}

IdempotencyStore::~IdempotencyStore() = default;

void IdempotencyStore::StopBatches() {
  if (claims_) claims_->Stop();
  if (completions_) completions_->Stop();
}

Result<IdempotencyStore::ClaimInsert> IdempotencyStore::InsertClaim(ClaimItem item) {
  if (claims_) return claims_->Submit(std::move(item));
  std::vector<ClaimItem> one{std::move(item)};
  std::vector<Result<ClaimInsert>> out(1, Result<ClaimInsert>(Error::Internal("no result")));
  RunClaims(one, out);
  return std::move(out[0]);
}

Result<ClaimResult> IdempotencyStore::Claim(const std::string& tenant, const std::string& key,
                                            const std::string& fingerprint, const std::string& owner,
                                            std::chrono::milliseconds lease) {
  PgClaims().Inc();
  // The first INSERT goes with its batch (also with group commit off: a batch of one, same statement), on
  // no connection of ours, so a request waiting for its batch holds no pool slot.
  ClaimItem item{tenant, key, fingerprint, owner, lease};
  auto first = InsertClaim(item);
  return FinishClaim(item, std::move(first));
}

void IdempotencyStore::ClaimAsync(const std::string& tenant, const std::string& key, const std::string& fingerprint,
                                  const std::string& owner, std::chrono::milliseconds lease, Post post,
                                  std::function<void(Result<ClaimResult>)> done) {
  if (!claims_) {
    auto r = std::make_shared<Result<ClaimResult>>(Claim(tenant, key, fingerprint, owner, lease));
    return post([r, done = std::move(done)] { done(std::move(*r)); });
  }
  PgClaims().Inc();
  ClaimItem item{tenant, key, fingerprint, owner, lease};
  claims_->SubmitAsync(item, [this, item, post = std::move(post), done = std::move(done)](Result<ClaimInsert> first) {
    // On the batch worker: hand the rest (maybe a blocking read) to the caller's executor at once.
    auto f = std::make_shared<Result<ClaimInsert>>(std::move(first));
    post([this, item, f, done] { done(FinishClaim(item, std::move(*f))); });
  });
}

void IdempotencyStore::CompleteAsync(CompletionRequest req, Post post, std::function<void(Result<Completion>)> done) {
  if (!completions_) {
    auto r = std::make_shared<Result<Completion>>(Complete(req));
    return post([r, done = std::move(done)] { done(std::move(*r)); });
  }
  completions_->SubmitAsync(std::move(req), [post = std::move(post), done = std::move(done)](Result<Completion> r) {
    auto shared = std::make_shared<Result<Completion>>(std::move(r));
    post([shared, done] { done(std::move(*shared)); });
  });
}

Result<ClaimResult> IdempotencyStore::FinishClaim(const ClaimItem& item, Result<ClaimInsert> first) {
  const std::string& tenant = item.tenant;
  const std::string& key = item.key;
  const std::string& fingerprint = item.fingerprint;
  const std::string& owner = item.owner;
  const std::chrono::milliseconds lease = item.lease;
  if (!first.ok()) return first.error();
  switch (first->kind) {
    case ClaimInsert::Kind::kInserted:
      return ClaimResult{ClaimResult::Kind::kClaimed, {}, {}, first->claimed_at_unix_us};
    case ClaimInsert::Kind::kInFlightInBatch:
      return ClaimResult{ClaimResult::Kind::kExisting, first->in_flight, {}, 0};
    case ClaimInsert::Kind::kNotInserted:
      break;  // read what exists below
  }
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
    if (round > 0) {  // round 0 was the batched INSERT above
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

Result<Completion> IdempotencyStore::Complete(const CompletionRequest& req) {
  if (completions_) return completions_->Submit(req);
  std::vector<CompletionRequest> one{req};
  std::vector<Result<Completion>> out(1, Result<Completion>(Error::Internal("no result")));
  RunCompletions(one, out);
  return std::move(out[0]);
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
      if (s.committed) {
        // The primary's own view can show a commit no synchronous standby has (its wait was cancelled, or
        // the server restarted in place): a failover could still lose it. Our row lock gave this
        // transaction an id, so its COMMIT waits, under synchronous replication, until a standby has the
        // WAL up to here, the charge's commit included. Only that OK says "committed"; a COMMIT still
        // waiting at the deadline leaves the attempt unsettled (kOutcomeUnknown: the resolver tries again).
        Status replicated = tx.value()->CommitWithin(clock, deadline);
        if (!replicated.ok()) return replicated.error();
        s.record = rec;
      }
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

namespace {

// Rows of one batch statement whose SQLSTATE says the data (or the race) is the problem, not the database:
// retrying the batch without the refused row can succeed.
bool RowRefused(const Error& e) {
  return e.code == ErrorCode::kInvalidArgument || e.code == ErrorCode::kConflict || e.code == ErrorCode::kAborted;
}

std::pair<std::vector<size_t>, std::vector<size_t>> Halves(const std::vector<size_t>& idx) {
  auto mid = idx.begin() + static_cast<std::ptrdiff_t>(idx.size() / 2);
  return {std::vector<size_t>(idx.begin(), mid), std::vector<size_t>(mid, idx.end())};
}

}  // namespace

void IdempotencyStore::RunClaims(std::vector<ClaimItem>& items, std::vector<Result<ClaimInsert>>& out) {
  // A key repeated in the batch: only its first item goes to PostgreSQL; the others are settled from its
  // answer below (one INSERT cannot claim one key twice, and the answer would not say which item won).
  std::map<std::pair<std::string, std::string>, size_t> first;
  std::vector<size_t> leaders;
  std::vector<std::pair<size_t, size_t>> repeats;  // (item, its leader)
  for (size_t i = 0; i < items.size(); ++i) {
    auto [it, fresh] = first.emplace(std::make_pair(items[i].tenant, items[i].key), i);
    if (fresh) leaders.push_back(i);
    else repeats.emplace_back(i, it->second);
  }
  // One order of keys for every batch: two batches claiming overlapping keys then wait for each other
  // instead of deadlocking (a deadlock would still only split the batch and retry).
  std::sort(leaders.begin(), leaders.end(), [&](size_t a, size_t b) {
    return std::tie(items[a].tenant, items[a].key) < std::tie(items[b].tenant, items[b].key);
  });
  auto conn = pool_.Acquire();
  if (!conn.ok()) {
    for (auto& o : out) o = conn.error();
    return;
  }
  ExecClaims(*conn.value(), items, leaders, out);
  for (auto [i, leader] : repeats) {
    if (!out[leader].ok()) {
      // The leader's statement failed: this item was never sent, so nothing of its own was written.
      out[i] = out[leader].error().code == ErrorCode::kOutcomeUnknown
                   ? Error::Unavailable("the claim of the same key in this batch lost its reply")
                   : out[leader].error();
    } else if (out[leader]->kind == ClaimInsert::Kind::kInserted) {
      ClaimInsert seen;
      seen.kind = ClaimInsert::Kind::kInFlightInBatch;
      seen.in_flight.fingerprint = items[leader].fingerprint;
      seen.in_flight.lease_owner = items[leader].owner;
      seen.in_flight.lease_remaining_ms = items[leader].lease.count();
      out[i] = seen;
    } else {
      out[i] = ClaimInsert{};  // kNotInserted: the row exists; read it on the unbatched path
    }
  }
}

void IdempotencyStore::ExecClaims(PgConn& c, const std::vector<ClaimItem>& items, const std::vector<size_t>& idx,
                                  std::vector<Result<ClaimInsert>>& out) {
  std::vector<Param> tenants, keys, fps, owners, leases;
  for (size_t i : idx) {
    tenants.emplace_back(items[i].tenant);
    keys.emplace_back(items[i].key);
    fps.emplace_back(items[i].fingerprint);
    owners.emplace_back(items[i].owner);
    leases.emplace_back(std::to_string(items[i].lease.count()));
  }
  // The unbatched claim over arrays: no claim where the key already created a charge, ON CONFLICT DO
  // NOTHING for rows that exist. RETURNING names the owner (unique per request) so each item finds its row.
  auto ins = c.Exec(
      "INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, lease_owner, lease_expires_at) "
      "SELECT i.tenant, i.idem_key, i.fingerprint, 'in_flight', i.owner, "
      "  now() + (i.lease_ms * interval '1 millisecond') "
      "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) "
      "  AS i(tenant, idem_key, fingerprint, owner, lease_ms) "
      "WHERE NOT EXISTS (SELECT 1 FROM charges ch WHERE ch.tenant = i.tenant AND ch.idem_key = i.idem_key) "
      "ON CONFLICT (tenant, idem_key) DO NOTHING "
      "RETURNING lease_owner, (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint",
      {ArrayLiteral(tenants), ArrayLiteral(keys), ArrayLiteral(fps), ArrayLiteral(owners), ArrayLiteral(leases)});
  if (!ins.ok()) {
    const Error e = LostOrFailed(c, ins.error(), "the claim");
    if (idx.size() > 1 && RowRefused(e)) {
      claim_metrics_->splits.Inc();
      auto [left, right] = Halves(idx);
      ExecClaims(c, items, left, out);
      ExecClaims(c, items, right, out);
      return;
    }
    for (size_t i : idx) out[i] = e;
    return;
  }
  std::map<std::string, int64_t> claimed;  // owner -> claimed_at
  for (int r = 0; r < ins->rows(); ++r) claimed.emplace(ins->GetString(r, 0), ins->GetInt(r, 1));
  for (size_t i : idx) {
    ClaimInsert res;
    if (auto it = claimed.find(items[i].owner); it != claimed.end()) {
      res.kind = ClaimInsert::Kind::kInserted;
      res.claimed_at_unix_us = it->second;
    }
    out[i] = res;
  }
}

void IdempotencyStore::RunCompletions(std::vector<CompletionRequest>& items, std::vector<Result<Completion>>& out) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) {
    for (auto& o : out) o = conn.error();
    return;
  }
  std::vector<size_t> all(items.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  ExecCompletions(*conn.value(), items, all, out);
}

void IdempotencyStore::ExecCompletions(PgConn& c, const std::vector<CompletionRequest>& items,
                                       const std::vector<size_t>& idx, std::vector<Result<Completion>>& out) {
  std::vector<Param> tenant, key, owner, status, body, charge_id, retention, fp, account, amount, currency, descr,
      created, message_id, event_type, payload;
  for (size_t i : idx) {
    const CompletionRequest& q = items[i];
    tenant.emplace_back(q.charge.tenant);
    key.emplace_back(q.charge.idem_key);
    owner.emplace_back(q.owner);
    status.emplace_back(std::to_string(q.response_status));
    body.emplace_back(q.response_body);
    charge_id.emplace_back(q.charge.id);
    retention.emplace_back(std::to_string(q.retention.count()));
    fp.emplace_back(q.charge.fingerprint);
    account.emplace_back(q.charge.account_id);
    amount.emplace_back(std::to_string(q.charge.amount));
    currency.emplace_back(q.charge.currency);
    descr.emplace_back(q.charge.description);
    created.emplace_back(std::to_string(q.charge.created_unix_us));
    message_id.emplace_back(q.outbox.message_id);
    event_type.emplace_back(q.outbox.event_type);
    payload.emplace_back(q.outbox.payload_json);
  }
  Status result = [&]() -> Status {
    auto tx = Transaction::Start(c);
    if (!tx.ok()) return tx.error();
    // One statement: the owner check and completion (its row lock held to COMMIT, so a concurrent takeover
    // either happened before, and this item matches nothing, or waits and then sees 'completed'); the
    // charges and outbox rows only for the items whose key this request still owned. created_at from
    // integer microseconds: exact, so a body rebuilt from the charge later says the same "created".
    auto r = c.Exec(
        "WITH i AS ("
        "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[], "
        "    $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13::bigint[], $14::uuid[], $15::text[], "
        "    $16::jsonb[]) AS t(tenant, idem_key, owner, response_status, response_body, charge_id, retention_ms, "
        "    fingerprint, account_id, amount, currency, description, created_us, message_id, event_type, payload)), "
        "done AS ("
        "  UPDATE idempotency_keys k SET status = 'completed', lease_owner = NULL, lease_expires_at = NULL, "
        "    response_status = i.response_status, response_body = i.response_body, charge_id = i.charge_id, "
        "    completed_at = now(), expires_at = now() + (i.retention_ms * interval '1 millisecond') "
        "  FROM i WHERE k.tenant = i.tenant AND k.idem_key = i.idem_key AND k.lease_owner = i.owner "
        "    AND k.status = 'in_flight' "
        "  RETURNING i.charge_id, (EXTRACT(EPOCH FROM k.expires_at) * 1000)::bigint AS expires_ms, "
        "    (EXTRACT(EPOCH FROM (k.expires_at - now())) * 1000)::bigint AS ttl_ms), "
        "ch AS ("
        "  INSERT INTO charges (id, tenant, idem_key, fingerprint, account_id, amount, currency, description, "
        "    status, created_at) "
        "  SELECT i.charge_id, i.tenant, i.idem_key, i.fingerprint, i.account_id, i.amount, i.currency, "
        "    i.description, 'succeeded', "
        "    to_timestamp(i.created_us / 1000000) + (i.created_us % 1000000) * interval '1 microsecond' "
        "  FROM i JOIN done USING (charge_id) RETURNING 1), "
        "ob AS ("
        "  INSERT INTO outbox (message_id, tenant, aggregate_id, event_type, payload) "
        "  SELECT i.message_id, i.tenant, i.charge_id, i.event_type, i.payload FROM i JOIN done USING (charge_id) "
        "  RETURNING 1) "
        "SELECT charge_id, expires_ms, ttl_ms FROM done",
        {ArrayLiteral(tenant), ArrayLiteral(key), ArrayLiteral(owner), ArrayLiteral(status), ArrayLiteral(body),
         ArrayLiteral(charge_id), ArrayLiteral(retention), ArrayLiteral(fp), ArrayLiteral(account),
         ArrayLiteral(amount), ArrayLiteral(currency), ArrayLiteral(descr), ArrayLiteral(created),
         ArrayLiteral(message_id), ArrayLiteral(event_type), ArrayLiteral(payload)});
    if (!r.ok()) {
      // 23505 here is charges (tenant, idem_key): the ids are 128 random bits.
      if (r.error().code == ErrorCode::kConflict)
        return Error::Conflict("a charge already exists for this idempotency key");
      return r.error();
    }
    std::map<std::string, Completion> done;
    for (int row = 0; row < r->rows(); ++row) done.emplace(r->GetString(row, 0), Completion{r->GetInt(row, 1), r->GetInt(row, 2)});
    if (failpoints::Hit("api.before_commit")) return Error::Unavailable("injected failure before commit");
    Status commit = tx.value()->Commit();
    for (size_t i : idx) {
      auto it = done.find(items[i].charge.id);
      if (it == done.end())  // nothing of this item was in the transaction, whatever the COMMIT did
        out[i] = Error::FailedPrecondition("the lease on this idempotency key is held by another request");
      else if (!commit.ok())
        out[i] = commit.error();
      else
        out[i] = it->second;
    }
    return OkStatus();
  }();
  if (result.ok()) return;
  const Error& e = result.error();
  if (idx.size() > 1 && RowRefused(e)) {
    complete_metrics_->splits.Inc();
    auto [left, right] = Halves(idx);
    ExecCompletions(c, items, left, out);
    ExecCompletions(c, items, right, out);
    return;
  }
  for (size_t i : idx) out[i] = e;
}

}  // namespace paypath::store
