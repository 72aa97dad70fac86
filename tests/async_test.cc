// Issue 11 item 2 against real PostgreSQL and Redis, with the real HTTP server in process: requests wait
// for their batches as continuations, not as parked threads, and a bounded queue sheds the excess.
//
// Both tests hold the claim batcher's only worker with the failpoint group_commit.claim.form (it sleeps
// before forming its batch) and wait, on the queued/pending gauges, for what must be waiting behind it.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "api/charges.h"
#include "api/router.h"
#include "common/failpoints.h"
#include "common/metrics.h"
#include "common/random.h"
#include "http/server.h"
#include "store/hot_tier.h"
#include "store/idempotency_store.h"
#include "store/instance_id.h"
#include "testing.h"

namespace paypath {
namespace {

using testing::BuildRequest;
using testing::QueryScalar;
using testing::RawHttp;
using testing::RawResponse;

const char* kApiKey = "sk_test_tenant_a";
const std::string kBody = R"({"account_id":"acct_1","amount":1234,"currency":"USD","description":"coffee"})";

double Metric(const std::string& series) {
  std::string text = metrics::Registry::Default().Render();
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

// Claim batches of more than 32 items seen so far.
double ClaimBatchesOver32() {
  return Metric("paypath_group_commit_batch_size_count{phase=\"claim\"}") -
         Metric("paypath_group_commit_batch_size_bucket{phase=\"claim\",le=\"32\"}");
}

class AsyncTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { db_ = new std::string(testing::FreshDatabase("pp_async_test")); }

  // Two I/O threads: with a thread parked per request, at most two requests could ever wait for PostgreSQL.
  void Start(int max_pending) {
    ASSERT_TRUE(failpoints::Configure("").ok());
    pool_ = std::make_unique<store::PgPool>(*db_, "async-test", 8);
    store::GroupCommitOptions gc;
    gc.connections = 1;  // one batch at a time: what queues while it is held forms the next batch
    gc.max_batch = 64;
    store_ = std::make_unique<store::IdempotencyStore>(*pool_, gc);
    hot_ = std::make_unique<store::HotTier>(testing::RedisUrl(), Namespace(), SystemClock::Instance(),
                                            std::chrono::milliseconds(100), std::chrono::milliseconds(50));
    api::ChargeOptions opts;
    opts.lease = std::chrono::milliseconds(5000);
    opts.max_pending = max_pending;
    charges_ = std::make_unique<api::ChargeApi>(std::map<std::string, std::string>{{kApiKey, "tenant_a"}}, *store_,
                                                *hot_, SystemClock::Instance(), SystemRandom::Instance(), opts);
    router_ = std::make_unique<api::Router>(*charges_, *store_, SystemClock::Instance());
    http::ServerOptions so;
    so.port = 0;
    so.threads = 2;
    auto s = http::Server::Start(
        so, [this](const http::HttpRequest& r, http::ResponderPtr out) { router_->HandleAsync(r, std::move(out)); });
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    server_ = std::move(s.value());
    port_ = server_->port();
  }

  void TearDown() override {
    (void)failpoints::Configure("");
    server_.reset();
  }

  static std::string Namespace() {
    auto c = store::PgConn::Connect(*db_, "async-test");
    if (!c.ok()) return "";
    auto id = store::ReadInstanceIdentity(*c.value());
    return id.ok() ? id->Namespace() : "";
  }

  std::string NewKey(const std::string& tag) { return tag + "-" + SystemRandom::Instance().Hex128(); }
  int64_t Count(const std::string& sql) { return std::stoll(QueryScalar(*db_, sql)); }
  int64_t ChargesFor(const std::string& key) { return Count("SELECT count(*) FROM charges WHERE idem_key = '" + key + "'"); }
  int64_t KeysFor(const std::string& key) { return Count("SELECT count(*) FROM idempotency_keys WHERE idem_key = '" + key + "'"); }
  int64_t OutboxFor(const std::string& key) {
    return Count("SELECT count(*) FROM outbox o JOIN charges c ON c.id = o.aggregate_id WHERE c.idem_key = '" + key + "'");
  }

  // Sends one new charge per key, all released at once; returns the responses in key order.
  std::vector<RawResponse> PostAll(const std::vector<std::string>& keys) {
    std::vector<RawResponse> out(keys.size());
    std::barrier sync(static_cast<std::ptrdiff_t>(keys.size()));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < keys.size(); ++i) {
      threads.emplace_back([&, i] {
        std::string raw = BuildRequest("POST", "/v1/charges",
                                       {{"Authorization", std::string("Bearer ") + kApiKey},
                                        {"Idempotency-Key", keys[i]},
                                        {"Content-Type", "application/json"}},
                                       kBody);
        sync.arrive_and_wait();
        out[i] = RawHttp(port_, raw, std::chrono::seconds(20));
      });
    }
    for (auto& t : threads) t.join();
    return out;
  }

  static std::string* db_;
  std::unique_ptr<store::PgPool> pool_;
  std::unique_ptr<store::IdempotencyStore> store_;
  std::unique_ptr<store::HotTier> hot_;
  std::unique_ptr<api::ChargeApi> charges_;
  std::unique_ptr<api::Router> router_;
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
};

std::string* AsyncTest::db_ = nullptr;

// 64 requests wait for one claim batch at once on two I/O threads, then all commit: none holds a thread.
TEST_F(AsyncTest, TwoIoThreadsHoldSixtyFourChargesWaitingInOneBatch) {
  Start(/*max_pending=*/1024);
  constexpr int kN = 64;
  const double big_batches = ClaimBatchesOver32();
  // Holds the claim worker (the first request's batch) for 5 s while the others queue behind it (they need
  // milliseconds; the margin is for a loaded machine).
  ASSERT_TRUE(failpoints::Configure("group_commit.claim.form=delay(5000)@1").ok());
  std::vector<std::string> keys;
  for (int i = 0; i < kN; ++i) keys.push_back(NewKey("async"));
  std::atomic<bool> all_queued{false};
  std::thread watcher([&] {
    all_queued = testing::WaitUntil(
        [&] { return Metric("paypath_group_commit_queued{phase=\"claim\"}") >= kN; }, std::chrono::seconds(10));
  });
  std::vector<RawResponse> rs = PostAll(keys);
  watcher.join();
  EXPECT_TRUE(all_queued) << "the 64 requests never waited for PostgreSQL at the same time";
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(rs[i].status, 201) << rs[i].body;
    EXPECT_EQ(ChargesFor(keys[i]), 1);
    EXPECT_EQ(OutboxFor(keys[i]), 1);
  }
  EXPECT_GE(ClaimBatchesOver32() - big_batches, 1) << "no claim batch held more than 32 requests";
  EXPECT_EQ(Metric("paypath_api_pending"), 0);
}

// With max_pending 8, the claim worker held: 8 requests wait, every other one is shed at once with 503
// /problems/overloaded + Retry-After and counted, and nothing is written for it; every 201 is durable.
TEST_F(AsyncTest, AFullQueueShedsWith503AndWritesNothingForTheShedRequests) {
  constexpr int kMaxPending = 8;
  Start(kMaxPending);
  constexpr int kN = 64;
  const double shed_before = Metric("paypath_api_shed_total");
  ASSERT_TRUE(failpoints::Configure("group_commit.claim.form=delay(3000)@1").ok());
  std::vector<std::string> keys;
  for (int i = 0; i < kN; ++i) keys.push_back(NewKey("shed"));
  std::atomic<bool> full{false};
  std::atomic<double> most{0};
  std::thread watcher([&] {
    full = testing::WaitUntil(
        [&] {
          double p = Metric("paypath_api_pending");
          if (p > most) most = p;
          return p >= kMaxPending && Metric("paypath_api_shed_total") - shed_before >= 1;
        },
        std::chrono::seconds(10), std::chrono::milliseconds(5));
  });
  std::vector<RawResponse> rs = PostAll(keys);
  watcher.join();
  EXPECT_TRUE(full) << "the queue never filled and shed";
  EXPECT_LE(most.load(), kMaxPending);
  int created = 0, shed = 0;
  for (int i = 0; i < kN; ++i) {
    if (rs[i].status == 201) {
      ++created;
      EXPECT_EQ(ChargesFor(keys[i]), 1);
      EXPECT_EQ(OutboxFor(keys[i]), 1);
      continue;
    }
    ++shed;
    EXPECT_EQ(rs[i].status, 503) << rs[i].body;
    EXPECT_NE(rs[i].body.find("\"type\":\"/problems/overloaded\""), std::string::npos) << rs[i].body;
    EXPECT_EQ(rs[i].headers["retry-after"], "1");
    EXPECT_EQ(KeysFor(keys[i]), 0) << "a shed request left a key row";
    EXPECT_EQ(ChargesFor(keys[i]), 0) << "a shed request charged";
  }
  EXPECT_GE(created, kMaxPending);
  EXPECT_GE(shed, 1);
  EXPECT_EQ(created + shed, kN);
  EXPECT_EQ(Metric("paypath_api_shed_total") - shed_before, shed);
  EXPECT_EQ(Metric("paypath_api_pending"), 0);
  // A shed key is free: its retry charges.
  for (int i = 0; i < kN; ++i) {
    if (rs[i].status != 503) continue;
    ASSERT_TRUE(failpoints::Configure("").ok());
    RawResponse again = RawHttp(port_, BuildRequest("POST", "/v1/charges",
                                                    {{"Authorization", std::string("Bearer ") + kApiKey},
                                                     {"Idempotency-Key", keys[i]},
                                                     {"Content-Type", "application/json"}},
                                                    kBody));
    EXPECT_EQ(again.status, 201) << again.body;
    EXPECT_EQ(ChargesFor(keys[i]), 1);
    break;
  }
}

}  // namespace
}  // namespace paypath
