// Group commit against real PostgreSQL: concurrent claims and completions gathered into one batch (the
// failpoint group_commit.<phase>.form holds the only worker while the test waits, on the queued gauge, for
// every item to be queued), then checked item by item and in the database.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "common/failpoints.h"
#include "common/metrics.h"
#include "common/random.h"
#include "store/group_commit.h"
#include "store/idempotency_store.h"
#include "testing.h"

namespace paypath {
namespace {

using testing::QueryScalar;

double Metric(const std::string& series) {
  std::string text = metrics::Registry::Default().Render();
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

std::string Fp(char c) { return std::string(64, c); }

class GroupCommitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { db_ = new std::string(testing::FreshDatabase("pp_group_commit_test")); }

  void SetUp() override {
    ASSERT_TRUE(failpoints::Configure("").ok());
    pool_ = std::make_unique<store::PgPool>(*db_, "group-commit-test", 16);
    store::GroupCommitOptions o;
    o.connections = 1;  // one batch at a time: what is queued while it is held forms the next batch
    o.max_batch = 64;
    store_ = std::make_unique<store::IdempotencyStore>(*pool_, o);
  }
  void TearDown() override { ASSERT_TRUE(failpoints::Configure("").ok()); }

  std::string NewKey(const std::string& tag) { return tag + "-" + SystemRandom::Instance().Hex128(); }
  int64_t Count(const std::string& sql) { return std::stoll(QueryScalar(*db_, sql)); }

  // Holds the next batch of `phase` for up to `hold_ms` (the failpoint's delay) once it has started forming;
  // the caller then waits until `n` items are queued behind it.
  void HoldNextBatch(const std::string& phase, int hold_ms) {
    ASSERT_TRUE(failpoints::Configure("group_commit." + phase + ".form=delay(" + std::to_string(hold_ms) + ")@1").ok());
  }
  bool WaitQueued(const std::string& phase, double n) {
    return testing::WaitUntil([&] { return Metric("paypath_group_commit_queued{phase=\"" + phase + "\"}") >= n; },
                              std::chrono::seconds(10));
  }

  store::ChargeRow Charge(const std::string& key, int64_t created_us) {
    store::ChargeRow ch;
    ch.id = "ch_" + SystemRandom::Instance().Hex128();
    ch.tenant = "tenant_a";
    ch.idem_key = key;
    ch.fingerprint = Fp('a');
    ch.account_id = "acct_1";
    ch.amount = 500;
    ch.currency = "EUR";
    ch.created_unix_us = created_us;
    return ch;
  }
  store::CompletionRequest Completion(const std::string& owner, const store::ChargeRow& ch) {
    store::CompletionRequest q;
    q.owner = owner;
    q.charge = ch;
    q.response_status = 201;
    q.response_body = "{\"id\":\"" + ch.id + "\"}";
    q.retention = std::chrono::hours(1);
    const std::string mid = SystemRandom::Instance().Uuid4();
    q.outbox = {mid, "charge.succeeded", "{\"charge_id\":\"" + ch.id + "\"}"};
    return q;
  }

  static std::string* db_;
  std::unique_ptr<store::PgPool> pool_;
  std::unique_ptr<store::IdempotencyStore> store_;
};

std::string* GroupCommitTest::db_ = nullptr;

TEST_F(GroupCommitTest, ACompletionBatchWithARefusedRowCommitsTheOthersEachWithItsOwnAnswer) {
  constexpr int kN = 6;
  constexpr int kBad = 3;
  std::vector<std::string> keys, owners;
  std::vector<int64_t> created;
  for (int i = 0; i < kN; ++i) {
    keys.push_back(NewKey("split"));
    owners.push_back(SystemRandom::Instance().Hex128());
    auto c = store_->Claim("tenant_a", keys[i], Fp('a'), owners[i], std::chrono::seconds(30));
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    ASSERT_EQ(c->kind, store::ClaimResult::Kind::kClaimed);
    created.push_back(c->claimed_at_unix_us);
  }
  const double splits = Metric("paypath_group_commit_splits_total{phase=\"complete\"}");
  const double batches = Metric("paypath_group_commit_batch_size_count{phase=\"complete\"}");
  HoldNextBatch("complete", 3000);
  std::vector<std::future<Result<store::Completion>>> done;
  for (int i = 0; i < kN; ++i) {
    store::CompletionRequest q = Completion(owners[i], Charge(keys[i], created[i]));
    if (i == kBad) q.charge.currency = "eur";  // refused by the charges CHECK (^[A-Z]{3}$)
    done.push_back(std::async(std::launch::async, [this, q] { return store_->Complete(q); }));
  }
  ASSERT_TRUE(WaitQueued("complete", kN));
  for (int i = 0; i < kN; ++i) {
    auto r = done[i].get();
    if (i == kBad) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().ToString();
    } else {
      ASSERT_TRUE(r.ok()) << i << ": " << r.error().ToString();
      EXPECT_GT(r->ttl_ms, 0);
    }
  }
  EXPECT_EQ(Metric("paypath_group_commit_batch_size_count{phase=\"complete\"}"), batches + 1);  // one batch
  EXPECT_GE(Metric("paypath_group_commit_splits_total{phase=\"complete\"}"), splits + 2);  // 6 -> 3 -> 2 -> 1
  for (int i = 0; i < kN; ++i) {
    const std::string where = " WHERE idem_key = '" + keys[i] + "'";
    EXPECT_EQ(Count("SELECT count(*) FROM charges" + where), i == kBad ? 0 : 1) << i;
    EXPECT_EQ(Count("SELECT count(*) FROM outbox o JOIN charges c ON c.id = o.aggregate_id" + where), i == kBad ? 0 : 1);
    EXPECT_EQ(QueryScalar(*db_, "SELECT status FROM idempotency_keys" + where), i == kBad ? "in_flight" : "completed");
  }
}

TEST_F(GroupCommitTest, AClaimBatchWithARefusedRowClaimsTheOthers) {
  constexpr int kN = 5;
  std::vector<std::string> keys;
  for (int i = 0; i < kN; ++i) keys.push_back(NewKey("claim-split"));
  HoldNextBatch("claim", 3000);
  std::vector<std::future<Result<store::ClaimResult>>> claims;
  for (int i = 0; i < kN; ++i) {
    // Tenant names are checked by the api; the table's CHECK refuses this one (a space).
    std::string tenant = i == 1 ? "tenant a" : "tenant_a";
    claims.push_back(std::async(std::launch::async, [this, tenant, key = keys[i]] {
      return store_->Claim(tenant, key, Fp('a'), SystemRandom::Instance().Hex128(), std::chrono::seconds(30));
    }));
  }
  ASSERT_TRUE(WaitQueued("claim", kN));
  for (int i = 0; i < kN; ++i) {
    auto r = claims[i].get();
    if (i == 1) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().ToString();
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->kind, store::ClaimResult::Kind::kClaimed);
    EXPECT_EQ(Count("SELECT count(*) FROM idempotency_keys WHERE idem_key = '" + keys[i] + "'"), 1);
  }
}

TEST_F(GroupCommitTest, AKeyRepeatedInOneClaimBatchIsClaimedOnceAndTheOthersSeeItInFlight) {
  const std::string key = NewKey("repeat");
  const std::string other = NewKey("neighbour");
  HoldNextBatch("claim", 3000);
  std::vector<std::future<Result<store::ClaimResult>>> claims;
  std::vector<std::string> owners;
  for (int i = 0; i < 4; ++i) {
    owners.push_back(SystemRandom::Instance().Hex128());
    const std::string k = i == 3 ? other : key;
    claims.push_back(std::async(std::launch::async, [this, k, o = owners[i]] {
      return store_->Claim("tenant_a", k, Fp('a'), o, std::chrono::seconds(30));
    }));
  }
  ASSERT_TRUE(WaitQueued("claim", 4));
  int claimed = 0;
  std::string winner;
  for (int i = 0; i < 3; ++i) {
    auto r = claims[i].get();
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    if (r->kind == store::ClaimResult::Kind::kClaimed) {
      ++claimed;
      winner = owners[i];
    } else {
      EXPECT_EQ(r->kind, store::ClaimResult::Kind::kExisting);
      EXPECT_FALSE(r->existing.completed);
      EXPECT_GT(r->existing.lease_remaining_ms, 0);  // in flight: the api answers 409
    }
  }
  EXPECT_EQ(claimed, 1);
  auto n = claims[3].get();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->kind, store::ClaimResult::Kind::kClaimed);  // the neighbour is unaffected
  EXPECT_EQ(QueryScalar(*db_, "SELECT lease_owner FROM idempotency_keys WHERE idem_key = '" + key + "'"), winner);
}

TEST_F(GroupCommitTest, AFailedBatchCommitAnswersNoItemAsDoneAndWritesNothing) {
  constexpr int kN = 4;
  std::vector<std::string> keys, owners;
  std::vector<int64_t> created;
  for (int i = 0; i < kN; ++i) {
    keys.push_back(NewKey("no-commit"));
    owners.push_back(SystemRandom::Instance().Hex128());
    auto c = store_->Claim("tenant_a", keys[i], Fp('a'), owners[i], std::chrono::seconds(30));
    ASSERT_TRUE(c.ok());
    created.push_back(c->claimed_at_unix_us);
  }
  // The batch is held while all four queue, then its transaction fails just before COMMIT.
  ASSERT_TRUE(failpoints::Configure("group_commit.complete.form=delay(3000)@1,api.before_commit=error@1").ok());
  std::vector<std::future<Result<store::Completion>>> done;
  for (int i = 0; i < kN; ++i) {
    store::CompletionRequest q = Completion(owners[i], Charge(keys[i], created[i]));
    done.push_back(std::async(std::launch::async, [this, q] { return store_->Complete(q); }));
  }
  ASSERT_TRUE(WaitQueued("complete", kN));
  for (auto& f : done) {
    auto r = f.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  }
  for (const auto& k : keys) EXPECT_EQ(Count("SELECT count(*) FROM charges WHERE idem_key = '" + k + "'"), 0);
}

TEST_F(GroupCommitTest, BatchesAreDurableAndLogged) {
  // A 201 follows a COMMIT that waited for its WAL flush: synchronous_commit on, no unlogged table.
  auto conn = pool_->Acquire();
  ASSERT_TRUE(conn.ok());
  auto sc = conn.value()->Exec("SHOW synchronous_commit");
  ASSERT_TRUE(sc.ok());
  EXPECT_EQ(sc->GetString(0, 0), "on");
  auto unlogged = conn.value()->Exec(
      "SELECT count(*) FROM pg_class WHERE relname IN ('idempotency_keys', 'charges', 'outbox') "
      "AND relpersistence <> 'p'");
  ASSERT_TRUE(unlogged.ok());
  EXPECT_EQ(unlogged->GetInt(0, 0), 0);
}

TEST_F(GroupCommitTest, ConcurrentChargesShareBatchesAndEachGetsItsOwnCompletion) {
  constexpr int kN = 32;
  const double before = Metric("paypath_group_commit_batch_size_count{phase=\"complete\"}");
  std::vector<std::future<bool>> all;
  for (int i = 0; i < kN; ++i) {
    all.push_back(std::async(std::launch::async, [this] {
      const std::string key = NewKey("many");
      const std::string owner = SystemRandom::Instance().Hex128();
      auto c = store_->Claim("tenant_a", key, Fp('a'), owner, std::chrono::seconds(30));
      if (!c.ok() || c->kind != store::ClaimResult::Kind::kClaimed) return false;
      store::ChargeRow ch = Charge(key, c->claimed_at_unix_us);
      auto r = store_->Complete(Completion(owner, ch));
      if (!r.ok()) return false;
      return Count("SELECT count(*) FROM charges WHERE id = '" + ch.id + "' AND idem_key = '" + key + "'") == 1;
    }));
  }
  for (auto& f : all) EXPECT_TRUE(f.get());
  const double batches = Metric("paypath_group_commit_batch_size_count{phase=\"complete\"}") - before;
  EXPECT_GE(batches, 1);
  EXPECT_LE(batches, kN);
}

// A fresh database's tables are tiny when the api's sessions first run the batch statements; a plan chosen
// then must not stay once the tables hold real data. (Prepared statements switch to a cached generic plan
// after five executions; planned against near-empty, never-analysed tables with arrays of unknown length, it
// hash-joined a sequential scan of charges and of idempotency_keys into every batch: a cost that grows with
// the tables, ~2 ms per batch at 15,000 rows in the bench.) The buffers each statement touches, from
// pg_stat_statements, tell an index plan (tens per call) from a scan (the whole table).
TEST_F(GroupCommitTest, BatchStatementsKeepUsingIndexesAfterTheTablesGrowFromEmpty) {
  const std::string db = testing::FreshDatabase("pp_plan_growth_test");
  // No autovacuum analyse during the test (it would replan, hiding what a busy api sees between analyses).
  testing::QueryScalar(db, "ALTER TABLE charges SET (autovacuum_enabled = off); "
                           "ALTER TABLE idempotency_keys SET (autovacuum_enabled = off); SELECT 1");
  testing::QueryScalar(db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT 1");
  store::PgPool pool(db, "plan-growth-test", 4, store::PgSessionOptions::Api());
  store::GroupCommitOptions o;
  o.connections = 1;
  store::IdempotencyStore st(pool, o);
  auto charge_one = [&](const std::string& key) {
    const std::string owner = SystemRandom::Instance().Hex128();
    auto c = st.Claim("tenant_a", key, Fp('a'), owner, std::chrono::seconds(30));
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    ASSERT_EQ(c->kind, store::ClaimResult::Kind::kClaimed);
    auto done = st.Complete(Completion(owner, Charge(key, c->claimed_at_unix_us)));
    ASSERT_TRUE(done.ok()) << done.error().ToString();
  };
  for (int i = 0; i < 10; ++i) charge_one(NewKey("small"));  // the tables hold a few rows
  // The tables grow (as in a day of traffic, or a benchmark's first seconds) while the sessions stay.
  testing::QueryScalar(db,
                       "INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, response_status, "
                       "  response_body, charge_id, completed_at, expires_at) "
                       "SELECT 'tenant_a', 'bulk-' || g, repeat('a', 64), 'completed', 201, '{}', 'ch_bulk_' || g, "
                       "  now(), now() + interval '1 day' FROM generate_series(1, 100000) g; "
                       "INSERT INTO charges (id, tenant, idem_key, fingerprint, account_id, amount, currency, status) "
                       "SELECT 'ch_bulk_' || g, 'tenant_a', 'bulk-' || g, repeat('a', 64), 'acct_1', 1, 'EUR', "
                       "  'succeeded' FROM generate_series(1, 100000) g; SELECT 1");
  testing::QueryScalar(db, "SELECT pg_stat_statements_reset()::text");
  for (int i = 0; i < 5; ++i) charge_one(NewKey("large"));
  const int64_t table_blocks =
      std::stoll(testing::QueryScalar(db, "SELECT pg_relation_size('charges') / 8192"));
  ASSERT_GT(table_blocks, 1000);
  for (const char* like : {"INSERT INTO idempotency_keys%unnest%", "WITH i AS (%"}) {
    const std::string per_call = testing::QueryScalar(
        db, std::string("SELECT coalesce(max((shared_blks_hit + shared_blks_read) / calls), -1) FROM "
                        "pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
                        "current_database()) AND calls > 0 AND query LIKE '") + like + "'");
    EXPECT_GE(std::stoll(per_call), 0) << like << ": statement not seen";
    EXPECT_LT(std::stoll(per_call), 200) << like << ": buffers per call, against a table of " << table_blocks
                                          << " blocks: the plan scans the table";
  }
}

// The api's sessions plan each batch statement once (store::PgSessionOptions::Api: a generic plan that
// finds rows by index whatever the statistics say), not once per batch: planning the completion statement
// cost ~350 us of PostgreSQL's CPU per batch and the claim ~190 us (pg_stat_statements with
// track_planning, 32 clients, batches of ~7), a quarter of the database's CPU per charge.
TEST_F(GroupCommitTest, TheApisSessionsPlanEachBatchStatementOnce) {
  const std::string db = testing::FreshDatabase("pp_plan_once_test");
  store::PgPool pool(db, "plan-once-test", 2, store::PgSessionOptions::Api());
  store::GroupCommitOptions o;
  o.connections = 1;
  store::IdempotencyStore st(pool, o);
  const int kCharges = 12;
  for (int i = 0; i < kCharges; ++i) {
    const std::string key = NewKey("plan-once"), owner = SystemRandom::Instance().Hex128();
    auto c = st.Claim("tenant_a", key, Fp('a'), owner, std::chrono::seconds(30));
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    ASSERT_EQ(c->kind, store::ClaimResult::Kind::kClaimed);
    auto done = st.Complete(Completion(owner, Charge(key, c->claimed_at_unix_us)));
    ASSERT_TRUE(done.ok()) << done.error().ToString();
  }
  // pg_prepared_statements is per session: look into every session of the pool (both leases at once, so
  // each is a different connection).
  int64_t generic = 0, custom = 0;
  {
    auto a = pool.Acquire();
    auto b = pool.Acquire();
    ASSERT_TRUE(a.ok() && b.ok());
    for (auto* lease : {&a.value(), &b.value()}) {
      auto r = (*lease)->Exec(
          "SELECT coalesce(sum(generic_plans), 0)::text, coalesce(sum(custom_plans), 0)::text "
          "FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO idempotency_keys%unnest%' "
          "OR statement LIKE 'WITH i AS (%'");
      ASSERT_TRUE(r.ok()) << r.error().ToString();
      generic += std::stoll(r->GetString(0, 0));
      custom += std::stoll(r->GetString(0, 1));
    }
  }
  EXPECT_EQ(custom, 0) << "batch statements planned again for each batch (custom plans)";
  EXPECT_GE(generic, 2 * kCharges) << "claim and completion batches not seen on the pool's sessions";
}

}  // namespace
}  // namespace paypath
