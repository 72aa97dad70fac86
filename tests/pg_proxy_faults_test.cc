// The PostgreSQL fault proxy against the real server: it relays a session untouched, and its cuts leave
// exactly the state they promise (a forwarded COMMIT or claim is durable although the client never heard
// back; a dropped one is not).
#include <gtest/gtest.h>

#include "chaos/pg_fault_proxy.h"
#include "common/clock.h"
#include "store/pg.h"
#include "testing.h"

namespace paypath {
namespace {

using chaos::PgCutMode;
using chaos::PgCutTarget;
using testing::QueryScalar;

// The stack's URL for `db`, with host:port replaced by the proxy's and a plain (no TLS, no GSS) stream.
std::string ViaProxy(const std::string& url, uint16_t port) {
  size_t slash = url.rfind('/');
  size_t colon = url.rfind(':', slash);
  return url.substr(0, colon + 1) + std::to_string(port) + url.substr(slash) + "?sslmode=disable&gssencmode=disable";
}

class PgProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = new std::string(testing::FreshDatabase("pp_pgproxy_test"));
    ASSERT_EQ(QueryScalar(*db_, "CREATE TABLE t (id text PRIMARY KEY)"), "");
  }

  void SetUp() override {
    chaos::PgFaultProxyOptions o;
    std::string admin = testing::PgUrl();
    size_t slash = admin.rfind('/');
    o.upstream_port = static_cast<uint16_t>(std::stoi(admin.substr(admin.rfind(':', slash) + 1, slash - admin.rfind(':', slash) - 1)));
    auto p = chaos::PgFaultProxy::Start(o, SystemClock::Instance());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    proxy_ = std::move(p.value());
    url_ = ViaProxy(*db_, proxy_->port());
  }

  int64_t Rows(const std::string& where) {
    return std::stoll(QueryScalar(*db_, "SELECT count(*) FROM t WHERE " + where));
  }
  // True once no server backend of the cut session is left (it has finished or rolled back).
  bool SessionGone(const std::string& app) {
    return QueryScalar(*db_, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'") == "0";
  }
  std::unique_ptr<store::PgConn> Connect(const std::string& app) {
    auto c = store::PgConn::Connect(url_, app);
    EXPECT_TRUE(c.ok()) << c.error().ToString();
    return c.ok() ? std::move(c.value()) : nullptr;
  }

  static std::string* db_;
  std::unique_ptr<chaos::PgFaultProxy> proxy_;
  std::string url_;
};

std::string* PgProxyTest::db_ = nullptr;

TEST_F(PgProxyTest, RelaysASessionUntouchedWhenNothingIsArmed) {
  auto c = Connect("pgproxy-plain");
  ASSERT_TRUE(c);
  auto tx = store::Transaction::Start(*c);
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(c->Exec("INSERT INTO t (id) VALUES ($1)", {std::string("plain")}).ok());
  EXPECT_TRUE(tx.value()->Commit().ok());
  EXPECT_EQ(Rows("id = 'plain'"), 1);
  auto r = c->Exec("SELECT $1::text", {std::string("still here")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->GetString(0, 0), "still here");
  EXPECT_EQ(proxy_->counts().commits, 1);
  EXPECT_EQ(proxy_->counts().commit_cuts, 0);
}

TEST_F(PgProxyTest, AForwardedCommitIsDurableThoughTheClientNeverHearsBack) {
  proxy_->Arm(PgCutTarget::kCommit, 1, PgCutMode::kForwardThenCut);
  auto c = Connect("pgproxy-commit");
  ASSERT_TRUE(c);
  auto tx = store::Transaction::Start(*c);
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(c->Exec("INSERT INTO t (id) VALUES ($1)", {std::string("committed")}).ok());
  Status s = tx.value()->Commit();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kOutcomeUnknown) << s.error().ToString();
  EXPECT_TRUE(testing::WaitUntil([&] { return Rows("id = 'committed'") == 1; }, std::chrono::seconds(5)));
  EXPECT_EQ(proxy_->counts().commit_cuts, 1);
}

TEST_F(PgProxyTest, ACommitCutBeforeForwardingRollsBack) {
  proxy_->Arm(PgCutTarget::kCommit, 1, PgCutMode::kCutBeforeForward);
  auto c = Connect("pgproxy-dropped");
  ASSERT_TRUE(c);
  auto tx = store::Transaction::Start(*c);
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(c->Exec("INSERT INTO t (id) VALUES ($1)", {std::string("dropped")}).ok());
  EXPECT_FALSE(tx.value()->Commit().ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return SessionGone("pgproxy-dropped"); }, std::chrono::seconds(5)));
  EXPECT_EQ(Rows("id = 'dropped'"), 0);
}

TEST_F(PgProxyTest, AForwardedClaimIsExecutedAndItsReplyLost) {
  proxy_->Arm(PgCutTarget::kClaim, 1, PgCutMode::kForwardThenCut);
  auto c = Connect("pgproxy-claim");
  ASSERT_TRUE(c);
  auto r = c->Exec(
      "INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, lease_owner, lease_expires_at) "
      "VALUES ('tenant_a', $1, repeat('a', 64), 'in_flight', 'o', now() + interval '1 minute')",
      {std::string("claim-forwarded")});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return QueryScalar(*db_, "SELECT count(*) FROM idempotency_keys WHERE idem_key = 'claim-forwarded'") == "1"; },
      std::chrono::seconds(5)));
  EXPECT_EQ(proxy_->counts().claims, 1);
  EXPECT_EQ(proxy_->counts().claim_cuts, 1);
}

TEST_F(PgProxyTest, AClaimCutBeforeItsExecuteIsNeverRun) {
  proxy_->Arm(PgCutTarget::kClaim, 1, PgCutMode::kCutBeforeForward);
  auto c = Connect("pgproxy-claim-dropped");
  ASSERT_TRUE(c);
  auto r = c->Exec(
      "INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, lease_owner, lease_expires_at) "
      "VALUES ('tenant_a', $1, repeat('a', 64), 'in_flight', 'o', now() + interval '1 minute')",
      {std::string("claim-dropped")});
  ASSERT_FALSE(r.ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return SessionGone("pgproxy-claim-dropped"); }, std::chrono::seconds(5)));
  EXPECT_EQ(QueryScalar(*db_, "SELECT count(*) FROM idempotency_keys WHERE idem_key = 'claim-dropped'"), "0");
}

TEST_F(PgProxyTest, CutsOnlyAsManyAsArmedThenRelaysAgain) {
  proxy_->Arm(PgCutTarget::kCommit, 2, PgCutMode::kCutBeforeForward);
  int failed = 0;
  for (int i = 0; i < 4; ++i) {
    auto c = Connect("pgproxy-count");
    ASSERT_TRUE(c);
    auto tx = store::Transaction::Start(*c);
    ASSERT_TRUE(tx.ok());
    if (!tx.value()->Commit().ok()) failed++;
  }
  EXPECT_EQ(failed, 2);
  EXPECT_EQ(proxy_->counts().commit_cuts, 2);
  EXPECT_EQ(proxy_->counts().commits, 4);
}

TEST_F(PgProxyTest, RefusesNewConnectionsWhileEstablishedOnesKeepWorking) {
  auto established = Connect("pgproxy-established");
  ASSERT_TRUE(established);
  proxy_->SetRefuseConnections(true);
  auto refused = store::PgConn::Connect(url_, "pgproxy-refused");
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(established->Exec("SELECT 1").ok());
  proxy_->SetRefuseConnections(false);
  EXPECT_TRUE(store::PgConn::Connect(url_, "pgproxy-again").ok());
  EXPECT_GE(proxy_->counts().refused, 1);
}

}  // namespace
}  // namespace paypath
