// In-doubt outcomes, end to end: the api talks to PostgreSQL through PgFaultProxy, which cuts the
// charge's COMMIT or the claim's INSERT around the server's answer. The api must name the outcome (settle
// it, or answer outcome-unknown), the client must report it (`paypath charge` exit 3 with the key), and a
// retry with the same key must end with exactly one charge and one outbox row.
#include <gtest/gtest.h>

#include <libpq-fe.h>
#include <sys/wait.h>

#include <future>
#include <memory>

#include "api/charges.h"
#include "api/router.h"
#include "chaos/pg_fault_proxy.h"
#include "common/failpoints.h"
#include "common/metrics.h"
#include "http/server.h"
#include "store/hot_tier.h"
#include "store/idempotency_store.h"
#include "testing.h"

namespace paypath {
namespace {

using chaos::PgCutMode;
using chaos::PgCutTarget;
using testing::BuildRequest;
using testing::QueryScalar;
using testing::RawHttp;
using testing::RawResponse;

const char* kApiKey = "sk_test_tenant_a";
const std::string kBody = R"({"account_id":"acct_1","amount":1234,"currency":"USD","description":"coffee"})";

std::string ViaProxy(const std::string& url, uint16_t port) {
  size_t slash = url.rfind('/');
  size_t colon = url.rfind(':', slash);
  return url.substr(0, colon + 1) + std::to_string(port) + url.substr(slash) + "?sslmode=disable&gssencmode=disable";
}

uint16_t PortOf(const std::string& url) {
  size_t slash = url.rfind('/');
  size_t colon = url.rfind(':', slash);
  return static_cast<uint16_t>(std::stoi(url.substr(colon + 1, slash - colon - 1)));
}

// The value of one series in the process's /metrics text ("name{labels}"), 0 when absent.
double Metric(const std::string& series) {
  std::string text = metrics::Registry::Default().Render();
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

std::string ProblemType(const RawResponse& r) {
  size_t at = r.body.find("\"type\":\"");
  if (at == std::string::npos) return "";
  size_t end = r.body.find('"', at + 8);
  return r.body.substr(at + 8, end - at - 8);
}

class InDoubtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A run that crashed inside the synchronous-standby test would have left every commit waiting.
    QueryScalar(testing::PgUrl(), "ALTER SYSTEM RESET synchronous_standby_names");
    QueryScalar(testing::PgUrl(), "SELECT pg_reload_conf()");
    db_ = new std::string(testing::FreshDatabase("pp_in_doubt_test"));
  }

  void SetUp() override {
    ASSERT_TRUE(failpoints::Configure("").ok());
    chaos::PgFaultProxyOptions po;
    po.upstream_port = PortOf(testing::PgUrl());
    auto p = chaos::PgFaultProxy::Start(po, SystemClock::Instance());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    proxy_ = std::move(p.value());
    pool_ = std::make_unique<store::PgPool>(ViaProxy(*db_, proxy_->port()), "in-doubt-test", 8);
    store::GroupCommitOptions gc;
    // One batch at a time, so requests queued while a batch is held form the next batch together.
    gc.connections = 1;
    store_ = std::make_unique<store::IdempotencyStore>(*pool_, gc);
    hot_ = std::make_unique<store::HotTier>("", "unused", SystemClock::Instance());  // PostgreSQL answers alone
    api::ChargeOptions opts;
    opts.lease = std::chrono::milliseconds(5000);
    charges_ = std::make_unique<api::ChargeApi>(std::map<std::string, std::string>{{kApiKey, "tenant_a"}}, *store_,
                                                *hot_, SystemClock::Instance(), SystemRandom::Instance(), opts);
    router_ = std::make_unique<api::Router>(*charges_, *store_, SystemClock::Instance());
    http::ServerOptions so;
    so.port = 0;
    so.threads = 4;
    auto s = http::Server::Start(
        so, [this](const http::HttpRequest& r, http::ResponderPtr out) { router_->HandleAsync(r, std::move(out)); });
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    server_ = std::move(s.value());
    port_ = server_->port();
    // One charge opens a pooled connection, so a later request needs no new one while the proxy refuses them.
    ASSERT_EQ(Post(NewKey("warm"), kBody).status, 201);
  }

  void TearDown() override {
    server_.reset();
    proxy_->Stop();
  }

  std::string NewKey(const std::string& tag) { return tag + "-" + SystemRandom::Instance().Hex128(); }

  RawResponse Post(const std::string& key, const std::string& body) {
    return RawHttp(port_, BuildRequest("POST", "/v1/charges",
                                       {{"Authorization", std::string("Bearer ") + kApiKey},
                                        {"Idempotency-Key", key},
                                        {"Content-Type", "application/json"}},
                                       body));
  }

  // Retries `key` until it is answered 201 (the attempt settled), up to 15 s; the last answer in *last.
  bool PostUntilCreated(const std::string& key, RawResponse* last) {
    return testing::WaitUntil(
        [&] {
          *last = Post(key, kBody);
          return last->status == 201;
        },
        std::chrono::seconds(15));
  }

  int64_t Count(const std::string& sql) { return std::stoll(QueryScalar(*db_, sql)); }
  int64_t ChargesFor(const std::string& key) { return Count("SELECT count(*) FROM charges WHERE idem_key = '" + key + "'"); }
  int64_t KeysFor(const std::string& key) { return Count("SELECT count(*) FROM idempotency_keys WHERE idem_key = '" + key + "'"); }
  int64_t OutboxFor(const std::string& key) {
    return Count("SELECT count(*) FROM outbox o JOIN charges c ON c.id = o.aggregate_id WHERE c.idem_key = '" + key + "'");
  }

  // Runs `paypath charge` against this api with `key`; returns its exit code and fills *out.
  int ChargeCli(const std::string& key, std::string* out) {
    std::string cmd = testing::PaypathBinary() + " charge --url http://127.0.0.1:" + std::to_string(port_) +
                      " --account acct_1 --amount 1234 --currency USD --description coffee --key " + key;
    int st = testing::RunShell("PAYPATH_API_KEY=" + std::string(kApiKey) + " " + cmd, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  static std::string* db_;
  std::unique_ptr<chaos::PgFaultProxy> proxy_;
  std::unique_ptr<store::PgPool> pool_;
  std::unique_ptr<store::IdempotencyStore> store_;
  std::unique_ptr<store::HotTier> hot_;
  std::unique_ptr<api::ChargeApi> charges_;
  std::unique_ptr<api::Router> router_;
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
};

std::string* InDoubtTest::db_ = nullptr;

TEST_F(InDoubtTest, CommitCutIsSettledAsCommittedAndAnsweredWithTheCharge) {
  const double committed = Metric("paypath_idempotency_in_doubt_total{phase=\"commit\",result=\"committed\"}");
  proxy_->Arm(PgCutTarget::kCommit, 1, PgCutMode::kForwardThenCut);
  std::string key = NewKey("commit-cut");
  RawResponse r = Post(key, kBody);
  ASSERT_EQ(proxy_->counts().commit_cuts, 1);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers.count("idempotent-replayed"), 0u);
  EXPECT_TRUE(r.headers.count("idempotency-key-expires"));
  RawResponse again = Post(key, kBody);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.headers["idempotent-replayed"], "true");
  EXPECT_EQ(again.body, r.body);
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
  EXPECT_EQ(Metric("paypath_idempotency_in_doubt_total{phase=\"commit\",result=\"committed\"}"), committed + 1);
}

TEST_F(InDoubtTest, CommitDroppedIsSettledAsNotCommittedSoTheRetryChargesAtOnce) {
  const double not_committed = Metric("paypath_idempotency_in_doubt_total{phase=\"commit\",result=\"not_committed\"}");
  proxy_->Arm(PgCutTarget::kCommit, 1, PgCutMode::kCutBeforeForward);
  std::string key = NewKey("commit-dropped");
  RawResponse r = Post(key, kBody);
  ASSERT_EQ(proxy_->counts().commit_cuts, 1);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ProblemType(r), "/problems/service-unavailable") << r.body;
  EXPECT_NE(r.body.find("nothing was charged"), std::string::npos) << r.body;
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(KeysFor(key), 0);  // the lease was released: the retry need not wait for it
  RawResponse retry = Post(key, kBody);
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.headers.count("idempotent-replayed"), 0u);
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
  EXPECT_EQ(Metric("paypath_idempotency_in_doubt_total{phase=\"commit\",result=\"not_committed\"}"), not_committed + 1);
}

TEST_F(InDoubtTest, CommitCutWhileTheDatabaseIsUnreachableIsOutcomeUnknownAndTheClientExits3) {
  const double unknown = Metric("paypath_idempotency_requests_total{outcome=\"outcome_unknown\"}");
  const double created = Metric("paypath_charges_created_total");
  std::string key = NewKey("commit-unknown");
  proxy_->Arm(PgCutTarget::kCommit, 1, PgCutMode::kForwardThenCut);
  proxy_->SetRefuseConnections(true);  // the resolver cannot reach the database to settle it
  std::string out;
  int rc = ChargeCli(key, &out);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("--key " + key), std::string::npos) << out;
  EXPECT_GE(Metric("paypath_idempotency_requests_total{outcome=\"outcome_unknown\"}"), unknown + 1);
  // Still unsettled: this process answers outcome-unknown again, never a 409 and never "nothing charged".
  RawResponse r = Post(key, kBody);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ProblemType(r), "/problems/outcome-unknown") << r.body;
  EXPECT_EQ(r.body.find("nothing was charged"), std::string::npos) << r.body;
  EXPECT_TRUE(r.headers["retry-after"] == "1" || r.headers["retry-after"] == "2") << r.headers["retry-after"];

  proxy_->SetRefuseConnections(false);
  rc = ChargeCli(key, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("replayed"), std::string::npos) << out;
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
  // Settled by the retry's recheck, the charge is counted once although no request was answered 201.
  EXPECT_EQ(Metric("paypath_charges_created_total"), created + 1);
}

TEST_F(InDoubtTest, ClaimReplyCutReleasesTheKeySoTheRetryChargesOnce) {
  proxy_->Arm(PgCutTarget::kClaim, 1, PgCutMode::kForwardThenCut);
  std::string key = NewKey("claim-cut");
  RawResponse r = Post(key, kBody);
  ASSERT_EQ(proxy_->counts().claim_cuts, 1);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ProblemType(r), "/problems/outcome-unknown") << r.body;
  EXPECT_NE(r.body.find("nothing was charged"), std::string::npos) << r.body;
  EXPECT_EQ(KeysFor(key), 0);  // the claim landed, and the resolver released it
  RawResponse retry = Post(key, kBody);
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.headers.count("idempotent-replayed"), 0u);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(InDoubtTest, ClaimReplyCutWhileUnreachableIsOutcomeUnknownNot409UntilSettled) {
  std::string key = NewKey("claim-unknown");
  proxy_->Arm(PgCutTarget::kClaim, 1, PgCutMode::kForwardThenCut);
  proxy_->SetRefuseConnections(true);
  RawResponse first = Post(key, kBody);
  EXPECT_EQ(first.status, 503);
  EXPECT_EQ(ProblemType(first), "/problems/outcome-unknown") << first.body;
  ASSERT_TRUE(testing::WaitUntil([&] { return KeysFor(key) == 1; }, std::chrono::seconds(5)));  // the claim exists
  RawResponse again = Post(key, kBody);
  EXPECT_EQ(again.status, 503);
  EXPECT_EQ(ProblemType(again), "/problems/outcome-unknown") << again.body;

  proxy_->SetRefuseConnections(false);
  RawResponse settled = Post(key, kBody);  // settles (releases our claim) and charges, well inside the lease
  EXPECT_EQ(settled.status, 201) << settled.body;
  EXPECT_EQ(settled.headers.count("idempotent-replayed"), 0u);
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
}

// The resolver on its own, with a FakeClock: it retries an unsettled attempt only when due, settles it
// once the database answers, and stays within its bound.
TEST_F(InDoubtTest, TheResolverRetriesWhenDueUntilTheDatabaseAnswersAndStaysBounded) {
  FakeClock clock;
  api::InDoubtOptions o;
  o.max_entries = 1;
  o.retry_interval = std::chrono::milliseconds(200);
  api::InDoubtResolver resolver(*store_, clock, o);
  std::string key = NewKey("resolver");
  // A claim that landed, owned by "o-1", whose reply was lost.
  ASSERT_TRUE(store_->Claim("tenant_a", key, std::string(64, 'a'), "o-1", std::chrono::seconds(30)).ok());
  const double untracked = Metric("paypath_idempotency_in_doubt_total{phase=\"claim\",result=\"untracked\"}");

  proxy_->SetRefuseConnections(true);
  api::Resolution first = resolver.Resolve({api::InDoubtPhase::kClaim, "tenant_a", key, "o-1", ""});
  EXPECT_EQ(first.outcome, api::Resolution::Outcome::kPending);
  EXPECT_EQ(resolver.pending(), 1u);
  // Full: another attempt is left to its lease, and counted.
  api::Resolution other = resolver.Resolve({api::InDoubtPhase::kClaim, "tenant_a", key + "-2", "o-2", ""});
  EXPECT_EQ(other.outcome, api::Resolution::Outcome::kPending);
  EXPECT_EQ(resolver.pending(), 1u);
  EXPECT_EQ(Metric("paypath_idempotency_in_doubt_total{phase=\"claim\",result=\"untracked\"}"), untracked + 1);

  const int64_t refused = proxy_->counts().refused;
  EXPECT_EQ(resolver.RunOnce(), 0);  // not due yet: no attempt made
  EXPECT_EQ(proxy_->counts().refused, refused);
  clock.Advance(std::chrono::milliseconds(200));
  EXPECT_EQ(resolver.RunOnce(), 0);  // due, tried, still unreachable
  EXPECT_EQ(proxy_->counts().refused, refused + 1);
  EXPECT_EQ(KeysFor(key), 1);

  proxy_->SetRefuseConnections(false);
  // Each failed attempt doubles the wait (200 ms, then 400 ms): not due 200 ms later.
  const int64_t connections = proxy_->counts().connections;
  clock.Advance(std::chrono::milliseconds(200));
  EXPECT_EQ(resolver.RunOnce(), 0);
  EXPECT_EQ(proxy_->counts().connections, connections);
  clock.Advance(std::chrono::milliseconds(200));
  EXPECT_EQ(resolver.RunOnce(), 1);
  EXPECT_EQ(resolver.pending(), 0u);
  EXPECT_EQ(KeysFor(key), 0);  // our claim released
  EXPECT_FALSE(resolver.Recheck("tenant_a", key).has_value());
}

// A batch of completions whose COMMIT reply is lost while the database cannot be reached: every request of
// the batch is outcome-unknown (never 201, never "nothing was charged", never 409) with its key held, and
// once the database answers each retry settles to its own single charge.
TEST_F(InDoubtTest, AnInDoubtBatchCommitLeavesEveryRequestInItOutcomeUnknownWithItsLeaseKept) {
  constexpr int kN = 4;
  std::vector<std::string> keys;
  for (int i = 0; i < kN; ++i) keys.push_back(NewKey("batch-unknown"));
  const double batches = Metric("paypath_group_commit_batch_size_count{phase=\"complete\"}");
  const double items = Metric("paypath_group_commit_batch_size_sum{phase=\"complete\"}");
  ASSERT_TRUE(failpoints::Configure("group_commit.complete.form=delay(3000)@1").ok());
  std::vector<std::future<RawResponse>> posts;
  for (const auto& k : keys) posts.push_back(std::async(std::launch::async, [this, k] { return Post(k, kBody); }));
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return Metric("paypath_group_commit_queued{phase=\"complete\"}") >= kN; }, std::chrono::seconds(10)));
  // The held batch's COMMIT reaches the server and its reply is lost; nobody can connect to settle it.
  proxy_->Arm(PgCutTarget::kCommit, 1, PgCutMode::kForwardThenCut);
  proxy_->SetRefuseConnections(true);
  for (auto& p : posts) {
    RawResponse r = p.get();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(ProblemType(r), "/problems/outcome-unknown") << r.body;
  }
  EXPECT_EQ(proxy_->counts().commit_cuts, 1);  // one COMMIT for the four
  EXPECT_EQ(Metric("paypath_group_commit_batch_size_count{phase=\"complete\"}"), batches + 1);
  EXPECT_EQ(Metric("paypath_group_commit_batch_size_sum{phase=\"complete\"}"), items + kN);
  for (const auto& k : keys) {
    RawResponse again = Post(k, kBody);  // still unsettled: outcome-unknown again, never 409
    EXPECT_EQ(again.status, 503);
    EXPECT_EQ(ProblemType(again), "/problems/outcome-unknown") << again.body;
  }
  proxy_->SetRefuseConnections(false);
  for (const auto& k : keys) {
    RawResponse settled = Post(k, kBody);
    EXPECT_EQ(settled.status, 201) << settled.body;
    EXPECT_EQ(settled.headers["idempotent-replayed"], "true");
    EXPECT_EQ(ChargesFor(k), 1);
    EXPECT_EQ(OutboxFor(k), 1);
    EXPECT_EQ(KeysFor(k), 1);
  }
}

// Makes every COMMIT on the server wait for a synchronous standby that never comes (what a primary under
// synchronous_mode_strict does while its standby is unreachable), and undoes it on destruction. Ready()
// proves the setting is in force: a probe COMMIT is seen waiting on SyncRep, then cancelled.
class NoSynchronousStandby {
 public:
  explicit NoSynchronousStandby(const std::string& db) {
    // Created before commits start waiting (its own commit would wait too).
    QueryScalar(db, "CREATE TABLE IF NOT EXISTS syncrep_probe (n int)");
    QueryScalar(testing::PgUrl(), "ALTER SYSTEM SET synchronous_standby_names = 'paypath_ghost_standby'");
    QueryScalar(testing::PgUrl(), "SELECT pg_reload_conf()");
  }
  ~NoSynchronousStandby() { Lift(); }
  // The standby "confirms": the requirement goes, and commits waiting for it return.
  static void Lift() {
    QueryScalar(testing::PgUrl(), "ALTER SYSTEM RESET synchronous_standby_names");
    QueryScalar(testing::PgUrl(), "SELECT pg_reload_conf()");
  }
  bool Ready(const std::string& db) {
    PGconn* c = PQconnectdb(db.c_str());
    if (PQstatus(c) != CONNECTION_OK) return PQfinish(c), false;
    const int pid = PQbackendPID(c);
    bool waiting = PQsendQuery(c, "INSERT INTO syncrep_probe VALUES (1)") == 1 &&
                   testing::WaitUntil([&] { return Waiting(pid); }, std::chrono::seconds(10));
    PGcancel* cancel = PQgetCancel(c);
    char err[256];
    PQcancel(cancel, err, sizeof err);
    PQfreeCancel(cancel);
    while (PGresult* r = PQgetResult(c)) PQclear(r);
    PQfinish(c);
    return waiting;
  }
  static bool Waiting(int pid) {
    return QueryScalar(testing::PgUrl(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND pid = " +
                                             std::to_string(pid)) == "1";
  }
  static int64_t Waiters() {
    return std::stoll(QueryScalar(testing::PgUrl(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"));
  }
};

// F6b of docs/design.md: the COMMIT's answer is lost while the commit waits for its synchronous standby
// (the primary alive, the standby unreachable: a failover could still lose that commit). The resolver must
// not call it committed from the primary's local view — and it does not: while PostgreSQL waits on SyncRep the
// transaction still shows as running and keeps its row locks, so the resolver's FOR UPDATE meets its
// lock_timeout and the answer is outcome-unknown. When the standby confirms (here: the requirement is
// lifted, which releases the wait) the same key settles to the one charge.
TEST_F(InDoubtTest, ACommitWaitingForItsSynchronousStandbyIsOutcomeUnknownNeverCommitted) {
  // The claim must commit before the standby goes (it waits for one too): the request is held after its
  // claim while the standby requirement comes into force, then goes on to its COMMIT.
  ASSERT_TRUE(failpoints::Configure("api.after_claim=delay(4000)").ok());
  std::string key = NewKey("syncrep-wait");
  proxy_->Arm(PgCutTarget::kCommit, 1, PgCutMode::kForwardThenCut);
  auto pending = std::async(std::launch::async, [&] { return Post(key, kBody); });
  ASSERT_TRUE(testing::WaitUntil([&] { return KeysFor(key) == 1; }, std::chrono::seconds(10)));
  NoSynchronousStandby no_standby(*db_);
  ASSERT_TRUE(no_standby.Ready(*db_)) << "the server did not make commits wait for a synchronous standby";
  RawResponse r = pending.get();
  ASSERT_TRUE(failpoints::Configure("").ok());
  ASSERT_EQ(proxy_->counts().commit_cuts, 1);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(ProblemType(r), "/problems/outcome-unknown") << r.body;
  // The commit is still waiting on the server, and nobody else sees its charge.
  EXPECT_GE(NoSynchronousStandby::Waiters(), 1);
  EXPECT_EQ(ChargesFor(key), 0);
  RawResponse again = Post(key, kBody);
  EXPECT_EQ(again.status, 503) << again.body;
  EXPECT_EQ(ProblemType(again), "/problems/outcome-unknown") << again.body;

  // The standby "confirms": the requirement is lifted and the waiting commit completes.
  NoSynchronousStandby::Lift();
  ASSERT_TRUE(testing::WaitUntil([] { return NoSynchronousStandby::Waiters() == 0; }, std::chrono::seconds(10)));
  RawResponse settled;
  EXPECT_TRUE(PostUntilCreated(key, &settled)) << settled.status << " " << settled.body;
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
}

// F6 of docs/design.md: the commit's wait for its synchronous standby is cancelled (an operator's
// pg_cancel_backend; PostgreSQL then answers the COMMIT "OK" with a warning that it committed locally and
// might not be replicated). That OK is not a 201: the api answers outcome-unknown, and the resolver, which
// now sees the charge in the primary's local view, still does not call it committed until a COMMIT of its
// own has waited for the standby. Once the standby confirms, the same key replays the one charge.
TEST_F(InDoubtTest, ACommitWhoseStandbyWaitWasCancelledIsOutcomeUnknownUntilReplicated) {
  ASSERT_TRUE(failpoints::Configure("api.after_claim=delay(4000)").ok());
  std::string key = NewKey("syncrep-cancelled");
  auto pending = std::async(std::launch::async, [&] { return Post(key, kBody); });
  ASSERT_TRUE(testing::WaitUntil([&] { return KeysFor(key) == 1; }, std::chrono::seconds(10)));
  NoSynchronousStandby no_standby(*db_);
  ASSERT_TRUE(no_standby.Ready(*db_)) << "the server did not make commits wait for a synchronous standby";
  const std::string dbname = QueryScalar(*db_, "SELECT current_database()");
  // The request's COMMIT reaches the server and waits for the standby; an operator cancels the wait.
  ASSERT_TRUE(testing::WaitUntil([] { return NoSynchronousStandby::Waiters() >= 1; }, std::chrono::seconds(15)));
  QueryScalar(testing::PgUrl(), "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = "
                                "'SyncRep' AND datname = '" + dbname + "'");
  RawResponse r = pending.get();
  ASSERT_TRUE(failpoints::Configure("").ok());
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(ProblemType(r), "/problems/outcome-unknown") << r.body;
  // Committed locally (visible on this server), not replicated: still unknown for a retry.
  EXPECT_EQ(ChargesFor(key), 1);
  RawResponse again = Post(key, kBody);
  EXPECT_EQ(again.status, 503) << again.body;
  EXPECT_EQ(ProblemType(again), "/problems/outcome-unknown") << again.body;

  // The standby "confirms": the requirement is lifted, and the resolver's own COMMIT returns.
  NoSynchronousStandby::Lift();
  RawResponse settled;
  EXPECT_TRUE(PostUntilCreated(key, &settled)) << settled.status << " " << settled.body;
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
}

TEST_F(InDoubtTest, SettlingNeverReleasesAnotherOwnersLease) {
  std::string key = NewKey("not-ours");
  ASSERT_TRUE(store_->Claim("tenant_a", key, std::string(64, 'a'), "someone-else", std::chrono::seconds(30)).ok());
  auto s = store_->Settle("tenant_a", key, "me", "", SystemClock::Instance(),
                          SystemClock::Instance().Now() + std::chrono::seconds(1), std::chrono::milliseconds(500));
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_FALSE(s->committed);
  EXPECT_EQ(KeysFor(key), 1);
}

}  // namespace
}  // namespace paypath
