// Integration suite for POST/GET /v1/charges against real PostgreSQL and Redis (scripts/stack), with the
// real HTTP server in process on a free port.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <fstream>
#include <sstream>
#include <memory>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/charges.h"
#include "api/router.h"
#include "api/validation.h"
#include "common/config.h"
#include "common/failpoints.h"
#include "common/metrics.h"
#include "http/server.h"
#include "store/hot_tier.h"
#include "store/idempotency_store.h"
#include "store/instance_id.h"
#include "store/redis.h"
#include "store/schema.h"
#include "testing.h"

namespace paypath {
namespace {

using testing::BuildRequest;
using testing::QueryScalar;
using testing::RawHttp;
using testing::RawResponse;

const char* kKeyA = "sk_test_tenant_a";
const char* kKeyB = "sk_test_tenant_b";
const std::string kBody = R"({"account_id":"acct_1","amount":1234,"currency":"USD","description":"coffee"})";

// The request ChargeApi::Create/CreateAsync gets from the HTTP layer for a POST of kBody with tenant A's key.
http::HttpRequest ChargeRequestA(const std::string& idempotency_key) {
  http::HttpRequest req;
  req.method = "POST";
  req.target = "/v1/charges";
  req.headers = {{"Authorization", std::string("Bearer ") + kKeyA}, {"Idempotency-Key", idempotency_key},
                 {"Content-Type", "application/json"}};
  req.body = kBody;
  return req;
}

// The api host's wall clock a day behind (a badly set host clock, or a test that pins time): nothing the
// database stores or purges may depend on it.
class SkewedClock : public Clock {
 public:
  explicit SkewedClock(std::chrono::hours skew) : skew_(skew) {}
  std::chrono::steady_clock::time_point Now() override { return SystemClock::Instance().Now(); }
  std::chrono::system_clock::time_point WallNow() override { return SystemClock::Instance().WallNow() + skew_; }
  void SleepFor(Duration d) override { SystemClock::Instance().SleepFor(d); }

 private:
  std::chrono::hours skew_;
};

// The value of one series in the process's /metrics text ("name{labels}"), 0 when absent.
double Metric(const std::string& series) {
  std::string text = metrics::Registry::Default().Render();
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

// Redis for tests that inspect or delete entries: the admin URL where the stack has one.
std::unique_ptr<store::RedisConn> RedisAdmin() {
  const char* admin = std::getenv("PAYPATH_REDIS_ADMIN_URL");
  auto addr = store::ParseRedisUrl(admin && *admin ? admin : testing::RedisUrl());
  if (!addr.ok()) return nullptr;
  auto c = store::RedisConn::Connect(addr.value(), std::chrono::milliseconds(500));
  return c.ok() ? std::move(c.value()) : nullptr;
}

// Deletes every hot-tier entry for (tenant, key), whatever namespace it sits in.
void ForgetInRedis(const std::string& tenant, const std::string& key) {
  auto redis = RedisAdmin();
  ASSERT_TRUE(redis);
  auto keys = redis->Command({"EVAL",
                              "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
                              "redis.call('DEL', k) n = n + 1 end return n",
                              "0", "pp:idem:*:" + tenant + ":" + key});
  ASSERT_TRUE(keys.ok()) << keys.error().ToString();
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// `paypath api` as a child process on its own port, for tests that restart it.
class ApiProcess {
 public:
  ApiProcess(const std::string& pg_url, const std::vector<std::string>& extra = {},
             std::map<std::string, std::string> env = {})
      : port_(FreePort()) {
    std::vector<std::string> argv = {testing::PaypathBinary(), "api", "--pg-url", pg_url, "--redis-url",
                                     testing::RedisUrl(), "--listen", "127.0.0.1:" + std::to_string(port_),
                                     "--threads", "4"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    env["PAYPATH_API_KEYS"] = std::string(kKeyA) + ":tenant_a";
    child_ = std::make_unique<testing::Child>(argv, env, "/tmp/paypath-api-test-child.log");
  }
  bool Ready() {
    return testing::WaitUntil([&] { return RawHttp(port_, BuildRequest("GET", "/readyz", {})).status == 200; },
                              std::chrono::seconds(15), std::chrono::milliseconds(50));
  }
  RawResponse Post(const std::string& key, const std::string& body) {
    return RawHttp(port_, BuildRequest("POST", "/v1/charges",
                                       {{"Authorization", std::string("Bearer ") + kKeyA},
                                        {"Idempotency-Key", key},
                                        {"Content-Type", "application/json"}},
                                       body));
  }
  // One series of the child's /metrics, 0 if absent.
  double Metric(const std::string& series) {
    RawResponse r = RawHttp(port_, BuildRequest("GET", "/metrics", {}));
    size_t at = r.body.find("\n" + series + " ");
    return at == std::string::npos ? 0 : std::stod(r.body.substr(at + series.size() + 2));
  }
  void Stop() {
    child_->Kill(SIGTERM);
    child_->Wait(std::chrono::seconds(10));
  }
  testing::Child& child() { return *child_; }

 private:
  uint16_t port_;
  std::unique_ptr<testing::Child> child_;
};

class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { db_url_ = new std::string(testing::FreshDatabase("pp_api_test")); }

  void SetUp() override {
    ASSERT_TRUE(failpoints::Configure("").ok());
    pool_ = std::make_unique<store::PgPool>(*db_url_, "api-test", 24);
    store_ = std::make_unique<store::IdempotencyStore>(*pool_);
    hot_ = std::make_unique<store::HotTier>(testing::RedisUrl(), Namespace(), SystemClock::Instance(),
                                            std::chrono::milliseconds(100), std::chrono::milliseconds(50));
    api::ChargeOptions opts;
    opts.lease = std::chrono::milliseconds(5000);
    charges_ = std::make_unique<api::ChargeApi>(
        std::map<std::string, std::string>{{kKeyA, "tenant_a"}, {kKeyB, "tenant_b"}}, *store_, *hot_,
        SystemClock::Instance(), SystemRandom::Instance(), opts);
    router_ = std::make_unique<api::Router>(*charges_, *store_, SystemClock::Instance());
    http::ServerOptions so;
    so.port = 0;
    so.threads = 16;
    so.read_timeout = std::chrono::milliseconds(1500);
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

  // The hot tier's namespace for the suite's database, as `paypath api` reads it.
  static std::string Namespace() {
    auto c = store::PgConn::Connect(*db_url_, "api-test");
    if (!c.ok()) return "";
    auto id = store::ReadInstanceIdentity(*c.value());
    return id.ok() ? id->Namespace() : "";
  }

  // A fresh key per call site, so tests never collide with each other or with earlier runs.
  std::string NewKey(const std::string& tag) { return tag + "-" + SystemRandom::Instance().Hex128(); }

  // `n` requests with one key released together: how their answers split.
  struct Herd {
    int created = 0, replayed = 0, conflict = 0, other = 0;
  };
  Herd SameKeyHerd(const std::string& key, int n) {
    std::barrier sync(n);
    std::atomic<int> created{0}, conflict{0}, replayed{0}, other{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&] {
        std::string raw = BuildRequest("POST", "/v1/charges",
                                       {{"Authorization", std::string("Bearer ") + kKeyA},
                                        {"Idempotency-Key", key},
                                        {"Content-Type", "application/json"}},
                                       kBody);
        sync.arrive_and_wait();
        RawResponse r = RawHttp(port_, raw);
        if (r.status == 201 && r.headers.count("idempotent-replayed") == 0) created++;
        else if (r.status == 201) replayed++;
        else if (r.status == 409) conflict++;
        else other++;
      });
    }
    for (auto& t : threads) t.join();
    return {created.load(), replayed.load(), conflict.load(), other.load()};
  }

  RawResponse Post(const std::string& key, const std::string& body, const std::string& api_key = kKeyA,
                   const std::string& content_type = "application/json") {
    std::vector<std::pair<std::string, std::string>> h;
    if (!api_key.empty()) h.emplace_back("Authorization", "Bearer " + api_key);
    h.emplace_back("Idempotency-Key", key);
    if (!content_type.empty()) h.emplace_back("Content-Type", content_type);
    return RawHttp(port_, BuildRequest("POST", "/v1/charges", h, body));
  }

  RawResponse Get(const std::string& target, const std::string& api_key = kKeyA) {
    return RawHttp(port_, BuildRequest("GET", target, {{"Authorization", "Bearer " + api_key}}));
  }

  // A charge row for driving the store directly (as a request that claimed `key` would).
  static store::ChargeRow Row(const std::string& id_prefix, const std::string& key, int64_t amount,
                              const std::string& currency, int64_t created_unix_us) {
    store::ChargeRow row;
    row.id = id_prefix + key.substr(key.size() - 8);
    row.tenant = "tenant_a";
    row.idem_key = key;
    row.fingerprint = std::string(64, 'a');
    row.account_id = "acct_1";
    row.amount = amount;
    row.currency = currency;
    row.created_unix_us = created_unix_us;
    return row;
  }

  int64_t Count(const std::string& sql) { return std::stoll(QueryScalar(*db_url_, sql)); }
  int64_t ChargesFor(const std::string& key) {
    return Count("SELECT count(*) FROM charges WHERE idem_key = '" + key + "'");
  }
  int64_t KeysFor(const std::string& key) {
    return Count("SELECT count(*) FROM idempotency_keys WHERE idem_key = '" + key + "'");
  }
  int64_t OutboxFor(const std::string& key) {
    return Count("SELECT count(*) FROM outbox o JOIN charges c ON c.id = o.aggregate_id WHERE c.idem_key = '" + key + "'");
  }

  static std::string* db_url_;
  std::unique_ptr<store::PgPool> pool_;
  std::unique_ptr<store::IdempotencyStore> store_;
  std::unique_ptr<store::HotTier> hot_;
  std::unique_ptr<api::ChargeApi> charges_;
  std::unique_ptr<api::Router> router_;
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
};

std::string* ApiTest::db_url_ = nullptr;

TEST_F(ApiTest, CreatedThenReplayedWithByteIdenticalBody) {
  std::string key = NewKey("replay");
  const double created = Metric("paypath_charges_created_total");
  RawResponse first = Post(key, kBody);
  ASSERT_EQ(first.status, 201) << first.body;
  EXPECT_EQ(first.headers.count("idempotent-replayed"), 0u);
  EXPECT_EQ(first.headers["content-type"], "application/json");
  ASSERT_TRUE(first.headers.count("location"));
  EXPECT_TRUE(first.headers["location"].starts_with("/v1/charges/ch_"));
  EXPECT_TRUE(first.headers.count("idempotency-key-expires"));
  EXPECT_NE(first.body.find("\"status\":\"succeeded\""), std::string::npos);
  EXPECT_NE(first.body.find("\"amount\":1234"), std::string::npos);

  RawResponse again = Post(key, kBody);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.headers["idempotent-replayed"], "true");
  EXPECT_EQ(again.headers["location"], first.headers["location"]);
  EXPECT_EQ(again.headers["idempotency-key-expires"], first.headers["idempotency-key-expires"]);
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
  EXPECT_EQ(Metric("paypath_charges_created_total"), created + 1);
}

TEST_F(ApiTest, ChangedBodyUnderSameKeyIs422) {
  std::string key = NewKey("mismatch");
  ASSERT_EQ(Post(key, kBody).status, 201);
  RawResponse r = Post(key, R"({"account_id":"acct_1","amount":1235,"currency":"USD","description":"coffee"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.headers["content-type"], "application/problem+json");
  EXPECT_NE(r.body.find("\"status\":422"), std::string::npos);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, ReorderedKeysAndWhitespaceReplay) {
  std::string key = NewKey("canonical");
  RawResponse first = Post(key, kBody);
  ASSERT_EQ(first.status, 201);
  RawResponse r = Post(key, "{ \"description\" : \"coffee\",\n \"currency\":\"USD\", \"amount\": 1234, \"account_id\":\"acct_1\" }");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.headers["idempotent-replayed"], "true");
  EXPECT_EQ(r.body, first.body);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, QuotedKeyIsTheSameKey) {
  std::string key = NewKey("sf");
  ASSERT_EQ(Post(key, kBody).status, 201);
  RawResponse r = Post("\"" + key + "\"", kBody);
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.headers["idempotent-replayed"], "true");
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, AuthKeyAndMediaTypeErrorsWriteNothing) {
  std::string key = NewKey("rejects");
  int64_t keys_before = Count("SELECT count(*) FROM idempotency_keys");
  int64_t charges_before = Count("SELECT count(*) FROM charges");

  EXPECT_EQ(Post(key, kBody, "").status, 401);
  EXPECT_EQ(Post(key, kBody, "sk_unknown").status, 401);
  EXPECT_EQ(RawHttp(port_, BuildRequest("POST", "/v1/charges",
                                        {{"Authorization", "Bearer " + std::string(kKeyA)},
                                         {"Content-Type", "application/json"}},
                                        kBody)).status, 400);  // no Idempotency-Key
  EXPECT_EQ(Post("", kBody).status, 400);
  EXPECT_EQ(Post(std::string(256, 'k'), kBody).status, 400);
  EXPECT_EQ(Post(std::string(255, 'k') + "", kBody, kKeyA, "text/plain").status, 415);  // 255 is fine; media type is not
  EXPECT_EQ(Post("has space", kBody).status, 400);
  EXPECT_EQ(Post("caf\xc3\xa9", kBody).status, 400);
  EXPECT_EQ(Post("\"unterminated", kBody).status, 400);
  EXPECT_EQ(Post(key, kBody, kKeyA, "").status, 415);
  RawResponse big = Post(key, std::string(16 * 1024 + 1, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.headers["content-type"], "application/problem+json");
  RawResponse unauthorized = Post(key, kBody, "");
  EXPECT_EQ(unauthorized.headers["content-type"], "application/problem+json");
  EXPECT_NE(unauthorized.body.find("\"title\""), std::string::npos);
  EXPECT_NE(unauthorized.body.find("\"detail\""), std::string::npos);

  EXPECT_EQ(Count("SELECT count(*) FROM idempotency_keys"), keys_before);
  EXPECT_EQ(Count("SELECT count(*) FROM charges"), charges_before);
  // None of those answers was stored against the key: a correct request with it is processed normally.
  RawResponse ok = Post(key, kBody);
  EXPECT_EQ(ok.status, 201);
  EXPECT_EQ(ok.headers.count("idempotent-replayed"), 0u);
}

TEST_F(ApiTest, BadBodiesAre400NamingTheFieldAndNotStored) {
  struct Case {
    std::string body;
    std::string field;
  };
  std::vector<Case> cases = {
      {R"({"account_id":"acct_1","amount":1234,"currency":"USD")", ""},  // malformed JSON
      {R"([1,2])", ""},
      {R"({"account_id":"acct_1","amount":"1234","currency":"USD"})", "amount"},
      {R"({"account_id":"acct_1","amount":12.5,"currency":"USD"})", "amount"},
      {R"({"account_id":"acct_1","amount":0,"currency":"USD"})", "amount"},
      {R"({"account_id":"acct_1","amount":-5,"currency":"USD"})", "amount"},
      {R"({"account_id":"acct_1","amount":100000000001,"currency":"USD"})", "amount"},
      {R"({"account_id":"acct_1","amount":99999999999999999999999,"currency":"USD"})", "amount"},
      {R"({"account_id":"acct_1","amount":1234,"currency":"usd"})", "currency"},
      {R"({"account_id":"acct_1","amount":1234,"currency":"USDX"})", "currency"},
      {R"({"account_id":"acct 1","amount":1234,"currency":"USD"})", "account_id"},
      {R"({"account_id":7,"amount":1234,"currency":"USD"})", "account_id"},
      {R"({"amount":1234,"currency":"USD"})", "account_id"},
      {R"({"account_id":"acct_1","amount":1234,"currency":"USD","extra":1})", "extra"},
      {"{\"account_id\":\"acct_1\",\"amount\":1234,\"currency\":\"USD\",\"description\":\"\xff\xfe\"}", "description"},
      {R"({"account_id":"acct_1","amount":1234,"currency":"USD","description":)" + std::string("\"") +
           std::string(501, 'x') + "\"}",
       "description"},
  };
  for (const Case& c : cases) {
    std::string key = NewKey("bad");
    RawResponse r = Post(key, c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(r.headers["content-type"], "application/problem+json") << c.body;
    if (!c.field.empty()) {
      EXPECT_NE(r.body.find(c.field), std::string::npos) << r.body;
    }
    EXPECT_EQ(KeysFor(key), 0) << c.body;
    // The validation 400 is not stored: the corrected request with the same key is processed normally.
    if (&c == &cases.front()) {
      RawResponse fixed = Post(key, kBody);
      EXPECT_EQ(fixed.status, 201);
      EXPECT_EQ(fixed.headers.count("idempotent-replayed"), 0u);
    }
  }
}

TEST_F(ApiTest, KeysAreScopedPerTenant) {
  std::string key = NewKey("tenant");
  RawResponse a = Post(key, kBody, kKeyA);
  RawResponse b = Post(key, kBody, kKeyB);
  ASSERT_EQ(a.status, 201);
  ASSERT_EQ(b.status, 201);
  EXPECT_EQ(b.headers.count("idempotent-replayed"), 0u);
  EXPECT_NE(a.headers["location"], b.headers["location"]);
  EXPECT_EQ(ChargesFor(key), 2);

  EXPECT_EQ(Get(a.headers["location"], kKeyA).status, 200);
  EXPECT_EQ(Get(a.headers["location"], kKeyA).body, a.body);
  EXPECT_EQ(Get(a.headers["location"], kKeyB).status, 404);
  EXPECT_EQ(Get(b.headers["location"], kKeyA).status, 404);
  EXPECT_EQ(Get("/v1/charges/ch_doesnotexist", kKeyA).status, 404);
  EXPECT_EQ(Get(a.headers["location"], "sk_nobody").status, 401);
}

TEST_F(ApiTest, TwoSimultaneousRequestsWithOneKeyChargeOnce) {
  for (int round = 0; round < 100; ++round) {
    std::string key = NewKey("pair");
    std::barrier sync(2);
    RawResponse out[2];
    auto go = [&](int i) {
      std::string raw = BuildRequest("POST", "/v1/charges",
                                     {{"Authorization", std::string("Bearer ") + kKeyA},
                                      {"Idempotency-Key", key},
                                      {"Content-Type", "application/json"}},
                                     kBody);
      sync.arrive_and_wait();
      out[i] = RawHttp(port_, raw);
    };
    std::thread t0(go, 0), t1(go, 1);
    t0.join();
    t1.join();
    int created = 0, other_ok = 0;
    for (auto& r : out) {
      if (r.status == 201 && r.headers.count("idempotent-replayed") == 0) created++;
      else if (r.status == 409 && r.headers.count("retry-after")) other_ok++;
      else if (r.status == 201 && r.headers["idempotent-replayed"] == "true") other_ok++;
    }
    ASSERT_EQ(created, 1) << "round " << round << ": " << out[0].status << " " << out[1].status;
    ASSERT_EQ(other_ok, 1) << "round " << round << ": " << out[0].status << " " << out[1].status;
    ASSERT_EQ(ChargesFor(key), 1) << "round " << round;
  }
}

TEST_F(ApiTest, SixtyFourConcurrentRequestsWithOneKeyChargeOnce) {
  std::string key = NewKey("herd");
  Herd h = SameKeyHerd(key, 64);
  EXPECT_EQ(h.created, 1);
  EXPECT_EQ(h.other, 0);
  EXPECT_EQ(h.created + h.replayed + h.conflict, 64);
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
}

// Issue 11 item 4: while the first request is at work, its Redis marker answers the storm (409 from
// Redis), so PostgreSQL sees a handful of claims, not 64.
TEST_F(ApiTest, ADuplicateStormIsAnsweredByTheRedisGateWithFewPostgresClaims) {
  ASSERT_TRUE(failpoints::Configure("api.after_claim=delay(500)@1").ok());  // the first stays in flight
  const double claims = Metric("paypath_idempotency_pg_claims_total");
  const double held = Metric("paypath_idempotency_gate_total{result=\"held\"}");
  std::string key = NewKey("storm");
  constexpr int kN = 64;
  Herd h = SameKeyHerd(key, kN);
  EXPECT_EQ(h.created, 1);
  EXPECT_EQ(h.other, 0);
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
  const double pg_claims = Metric("paypath_idempotency_pg_claims_total") - claims;
  EXPECT_GE(pg_claims, 1);
  EXPECT_LE(pg_claims, 8) << "the gate should answer the storm; " << h.conflict << " 409s, " << h.replayed << " replays";
  EXPECT_GE(Metric("paypath_idempotency_gate_total{result=\"held\"}") - held, kN - 8);
}

// A marker lost between the gate and the claim (Redis flushed) decides nothing: the next request goes
// through to PostgreSQL, which still holds the first request's lease (409), and the key charges once.
TEST_F(ApiTest, ARedisGateMarkerLostBetweenGateAndClaimStillChargesOnce) {
  ASSERT_TRUE(failpoints::Configure("api.after_claim=delay(1500)@1").ok());
  const double entered = Metric("paypath_idempotency_gate_total{result=\"entered\"}");
  const double claims = Metric("paypath_idempotency_pg_claims_total");
  std::string key = NewKey("gate-lost");
  RawResponse first;
  std::thread t([&] { first = Post(key, kBody); });
  ASSERT_TRUE(testing::WaitUntil([&] { return KeysFor(key) == 1; }, std::chrono::seconds(5)));  // gated and claimed
  auto addr = store::ParseRedisUrl(testing::RedisAdminUrl());
  ASSERT_TRUE(addr.ok());
  auto redis = store::RedisConn::Connect(addr.value(), std::chrono::milliseconds(500));
  ASSERT_TRUE(redis.ok());
  auto marker = redis.value()->Get(store::HotTier::GateKey(hot_->ns(), "tenant_a", key));
  ASSERT_TRUE(marker.ok());
  EXPECT_TRUE(marker->has_value());
  ASSERT_TRUE(redis.value()->Command({"FLUSHALL"}).ok());
  RawResponse second = Post(key, kBody);  // enters the (empty) gate again; PostgreSQL answers 409
  EXPECT_EQ(second.status, 409) << second.body;
  t.join();
  EXPECT_EQ(first.status, 201);
  RawResponse third = Post(key, kBody);
  EXPECT_EQ(third.status, 201);
  EXPECT_EQ(third.headers["idempotent-replayed"], "true");
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
  EXPECT_EQ(Metric("paypath_idempotency_gate_total{result=\"entered\"}") - entered, 2);
  EXPECT_EQ(Metric("paypath_idempotency_pg_claims_total") - claims, 2);
}

TEST_F(ApiTest, InFlightKeyGets409WithRetryAfter) {
  ASSERT_TRUE(failpoints::Configure("api.after_claim=delay(1500)@1").ok());
  std::string key = NewKey("inflight");
  RawResponse first;
  std::thread t([&] { first = Post(key, kBody); });
  ASSERT_TRUE(testing::WaitUntil([&] { return KeysFor(key) == 1; }, std::chrono::seconds(5)));
  RawResponse second = Post(key, kBody);
  t.join();
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(second.headers["retry-after"], "1");
  EXPECT_EQ(second.headers["content-type"], "application/problem+json");
  EXPECT_EQ(first.status, 201);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, LostResponseAfterCommitIsReplayedOnRetry) {
  // api.after_commit=error: the charge commits, the client gets a 503 instead of the 201 (as if the
  // response were lost). The retry must replay the committed charge, not create another.
  ASSERT_TRUE(failpoints::Configure("api.after_commit=error@1").ok());
  std::string key = NewKey("lost");
  RawResponse lost = Post(key, kBody);
  EXPECT_EQ(lost.status, 503);
  RawResponse retry = Post(key, kBody);
  EXPECT_EQ(retry.status, 201);
  EXPECT_EQ(retry.headers["idempotent-replayed"], "true");
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, RedisFlushBetweenRequestAndRetryReplaysFromPostgres) {
  std::string key = NewKey("flush");
  RawResponse first = Post(key, kBody);
  ASSERT_EQ(first.status, 201);
  auto addr = store::ParseRedisUrl(testing::RedisAdminUrl());  // FLUSHALL needs Redis' admin user
  ASSERT_TRUE(addr.ok());
  auto redis = store::RedisConn::Connect(addr.value(), std::chrono::milliseconds(500));
  ASSERT_TRUE(redis.ok());
  // The hot tier holds the response before the flush...
  auto cached = redis.value()->Get(store::HotTier::RedisKey(hot_->ns(), "tenant_a", key));
  ASSERT_TRUE(cached.ok());
  EXPECT_TRUE(cached->has_value());
  ASSERT_TRUE(redis.value()->Command({"FLUSHALL"}).ok());
  RawResponse retry = Post(key, kBody);
  EXPECT_EQ(retry.status, 201);
  EXPECT_EQ(retry.headers["idempotent-replayed"], "true");
  EXPECT_EQ(retry.body, first.body);
  EXPECT_EQ(ChargesFor(key), 1);
  // ...and the replay from PostgreSQL refilled it.
  auto refilled = redis.value()->Get(store::HotTier::RedisKey(hot_->ns(), "tenant_a", key));
  ASSERT_TRUE(refilled.ok());
  EXPECT_TRUE(refilled->has_value());
}

TEST_F(ApiTest, RedisStoppedStillDeduplicates) {
  std::string stack = testing::StackScript();
  ASSERT_EQ(testing::RunShell(stack + " stop redis"), 0);
  std::string key = NewKey("noredis");
  RawResponse first = Post(key, kBody);
  RawResponse again = Post(key, kBody);
  RawResponse changed = Post(key, R"({"account_id":"acct_2","amount":1234,"currency":"USD"})");
  ASSERT_EQ(testing::RunShell(stack + " start redis"), 0);
  EXPECT_EQ(first.status, 201);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.headers["idempotent-replayed"], "true");
  EXPECT_EQ(changed.status, 422);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, PostgresStoppedGives503AndWritesNothing) {
  std::string stack = testing::StackScript();
  std::string key = NewKey("nopg");
  ASSERT_EQ(testing::RunShell(stack + " stop postgres"), 0);
  RawResponse r = Post(key, kBody);
  RawResponse ready = RawHttp(port_, BuildRequest("GET", "/readyz", {}));
  RawResponse healthy = RawHttp(port_, BuildRequest("GET", "/healthz", {}));
  ASSERT_EQ(testing::RunShell(stack + " start postgres"), 0);
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(r.headers.count("retry-after"));
  EXPECT_EQ(r.headers["content-type"], "application/problem+json");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(healthy.status, 200);
  EXPECT_EQ(KeysFor(key), 0);
  EXPECT_EQ(ChargesFor(key), 0);
  // Nothing was stored against the key: once PostgreSQL is back the same request creates the charge.
  RawResponse after;
  ASSERT_TRUE(testing::WaitUntil([&] { after = Post(key, kBody); return after.status != 503; }, std::chrono::seconds(10),
                                 std::chrono::milliseconds(100)));
  EXPECT_EQ(after.status, 201);
  EXPECT_EQ(after.headers.count("idempotent-replayed"), 0u);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, ExpiredLeaseIsTakenOverAndStaleOwnerCannotComplete) {
  std::string key = NewKey("takeover");
  auto req = api::ParseChargeRequest(kBody);
  ASSERT_TRUE(std::holds_alternative<api::ChargeRequest>(req));
  std::string fp = api::Fingerprint("POST", "/v1/charges", std::get<api::ChargeRequest>(req).canonical_body);
  // A request claims the key and "crashes": it never completes nor releases.
  auto claim = store_->Claim("tenant_a", key, fp, "dead-owner", std::chrono::milliseconds(800));
  ASSERT_TRUE(claim.ok());
  ASSERT_EQ(claim->kind, store::ClaimResult::Kind::kClaimed);
  EXPECT_EQ(Post(key, kBody).status, 409);  // lease still live
  RawResponse r;
  ASSERT_TRUE(testing::WaitUntil([&] { r = Post(key, kBody); return r.status != 409; }, std::chrono::seconds(5),
                                 std::chrono::milliseconds(100)));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.headers.count("idempotent-replayed"), 0u);

  // The stale owner wakes up and tries to complete: refused, nothing written.
  store::ChargeRow row = Row("ch_stale_", key, 1234, "USD", 1);
  store::CompletionRequest stale{"dead-owner", row, 201, "{}", std::chrono::hours(1),
                                 {SystemRandom::Instance().Uuid4(), "charge.succeeded", "{}"}};
  auto done = store_->Complete(stale);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(Count("SELECT count(*) FROM outbox WHERE aggregate_id = '" + row.id + "'"), 0);
  EXPECT_EQ(ChargesFor(key), 1);
  RawResponse replay = Post(key, kBody);
  EXPECT_EQ(replay.headers["idempotent-replayed"], "true");
  EXPECT_EQ(replay.body, r.body);
}

TEST_F(ApiTest, ExpiredKeysArePurgedInBoundedBatches) {
  std::string key = NewKey("purge");
  ASSERT_TRUE(store_->Claim("tenant_a", key, std::string(64, 'a'), "o1", std::chrono::milliseconds(5000)).ok());
  // Created in 1970: with 1 ms retention the key is long expired.
  store::ChargeRow row = Row("ch_purge_", key, 1, "EUR", 1000000);
  auto done = store_->Complete({"o1", row, 201, "{}", std::chrono::milliseconds(1),
                                {SystemRandom::Instance().Uuid4(), "charge.succeeded", "{}"}});
  ASSERT_TRUE(done.ok()) << done.error().ToString();
  EXPECT_EQ(KeysFor(key), 1);
  auto n = store_->PurgeExpired(1, std::chrono::hours(24));
  ASSERT_TRUE(n.ok());
  EXPECT_LE(n.value(), 1);
  ASSERT_TRUE(testing::WaitUntil([&] { return store_->PurgeExpired(1000, std::chrono::hours(24)).ok() && KeysFor(key) == 0; },
                                 std::chrono::seconds(5)));
  EXPECT_EQ(ChargesFor(key), 1);  // the charge itself is kept; only the key is forgotten
}

TEST_F(ApiTest, HostileClientsAreCutOffAndServerStaysHealthy) {
  int64_t keys_before = Count("SELECT count(*) FROM idempotency_keys");
  // Oversized header block.
  std::string huge = BuildRequest("POST", "/v1/charges", {{"X-Big", std::string(20000, 'a')}}, kBody);
  RawResponse r1 = RawHttp(port_, huge);
  EXPECT_TRUE(r1.status == 431 || r1.status == 0) << r1.status;
  // Thousands of headers.
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 5000; ++i) many.emplace_back("X-H" + std::to_string(i), "v");
  RawResponse r2 = RawHttp(port_, BuildRequest("POST", "/v1/charges", many, kBody));
  EXPECT_TRUE(r2.status == 431 || r2.status == 0) << r2.status;
  // Garbage instead of HTTP.
  RawResponse r3 = RawHttp(port_, "THIS IS NOT HTTP\r\n\r\n");
  EXPECT_TRUE(r3.status == 400 || r3.status == 0) << r3.status;
  // A declared body larger than the limit is refused before it is sent.
  RawResponse r4 = RawHttp(port_, "POST /v1/charges HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 10000000\r\n\r\n");
  EXPECT_EQ(r4.status, 413);

  // A slow client trickling a header byte by byte is disconnected at the read deadline (1.5 s here).
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string partial = "POST /v1/charges HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    auto start = std::chrono::steady_clock::now();
    bool closed = false;
    for (size_t i = 0; i < 200 && !closed; ++i) {
      char c = i < partial.size() ? partial[i] : 'a';
      if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) closed = true;
      // Pacing the attack itself (one byte per 50 ms), not synchronizing on the server.
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        char buf[256];
        if (recv(fd, buf, sizeof buf, 0) <= 0) closed = true;
      }
    }
    auto elapsed = std::chrono::steady_clock::now() - start;
    close(fd);
    EXPECT_TRUE(closed);
    EXPECT_LT(elapsed, std::chrono::seconds(5));
  }
  EXPECT_EQ(RawHttp(port_, BuildRequest("GET", "/healthz", {})).status, 200);
  EXPECT_EQ(Post(NewKey("after-hostile"), kBody).status, 201);
  EXPECT_EQ(Count("SELECT count(*) FROM idempotency_keys"), keys_before + 1);
}

TEST_F(ApiTest, OperationalEndpoints) {
  EXPECT_EQ(RawHttp(port_, BuildRequest("GET", "/healthz", {})).status, 200);
  EXPECT_EQ(RawHttp(port_, BuildRequest("GET", "/readyz", {})).status, 200);
  ASSERT_EQ(Post(NewKey("metrics"), kBody).status, 201);
  RawResponse m = RawHttp(port_, BuildRequest("GET", "/metrics", {}));
  EXPECT_EQ(m.status, 200);
  for (const char* name : {"paypath_idempotency_requests_total{outcome=\"created\"}", "paypath_charges_created_total",
                           "paypath_idempotency_cache_total{result=\"miss\"}",
                           "paypath_http_request_duration_seconds_bucket"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(RawHttp(port_, BuildRequest("GET", "/v1/charges", {})).status, 405);
  EXPECT_EQ(RawHttp(port_, BuildRequest("GET", "/nope", {})).status, 404);
}

TEST_F(ApiTest, ApiClockOffByADayNeitherPurgesEarlyNorDatesTheCharge) {
  SkewedClock slow(std::chrono::hours(-24));
  api::ChargeOptions opts;
  opts.lease = std::chrono::milliseconds(5000);
  api::ChargeApi skewed({{kKeyA, "tenant_a"}}, *store_, *hot_, slow, SystemRandom::Instance(), opts);
  api::Router router(skewed, *store_, slow);
  http::ServerOptions so;
  so.port = 0;
  so.threads = 2;
  auto server = http::Server::Start(so, [&router](const http::HttpRequest& r) { return router.Handle(r); });
  ASSERT_TRUE(server.ok());
  std::string key = NewKey("skew");
  RawResponse r = RawHttp(server.value()->port(),
                          BuildRequest("POST", "/v1/charges",
                                       {{"Authorization", std::string("Bearer ") + kKeyA},
                                        {"Idempotency-Key", key},
                                        {"Content-Type", "application/json"}},
                                       kBody));
  ASSERT_EQ(r.status, 201) << r.body;
  // Expiry is the database's now() + retention (24 h), not the api's clock + retention.
  EXPECT_EQ(QueryScalar(*db_url_, "SELECT abs(EXTRACT(EPOCH FROM expires_at - (now() + interval '24 hours'))) < 120 "
                                  "FROM idempotency_keys WHERE idem_key = '" + key + "'"),
            "t");
  // "created" is the charge's created_at, taken from the database clock.
  int64_t db_now = std::stoll(QueryScalar(*db_url_, "SELECT EXTRACT(EPOCH FROM now())::bigint"));
  size_t at = r.body.find("\"created\":");
  ASSERT_NE(at, std::string::npos);
  int64_t created = std::stoll(r.body.substr(at + 10));
  EXPECT_LT(std::llabs(created - db_now), 120) << r.body;
  EXPECT_EQ(QueryScalar(*db_url_, "SELECT floor(EXTRACT(EPOCH FROM created_at))::bigint = " + std::to_string(created) +
                                  " FROM charges WHERE idem_key = '" + key + "'"),
            "t");
  auto expires = ParseHttpDate(r.headers["idempotency-key-expires"]);
  ASSERT_TRUE(expires.ok()) << r.headers["idempotency-key-expires"];
  auto until = std::chrono::duration_cast<std::chrono::seconds>(expires.value().time_since_epoch()).count() - db_now;
  EXPECT_GT(until, 24 * 3600 - 120);
  EXPECT_LT(until, 24 * 3600 + 120);
  // The purge runs on the database clock: a key completed just now is kept.
  ASSERT_TRUE(store_->PurgeExpired(1000, std::chrono::hours(24)).ok());
  EXPECT_EQ(KeysFor(key), 1);
  RawResponse replay = Post(key, kBody);
  EXPECT_EQ(replay.headers["idempotent-replayed"], "true");
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, PurgedKeyRetriedReplaysFromItsChargeAndAChangedBodyIs422) {
  std::string key = NewKey("late");
  RawResponse first = Post(key, kBody);
  ASSERT_EQ(first.status, 201);
  // The key's retention ends and the purge forgets it; the hot tier has forgotten it too.
  ASSERT_EQ(QueryScalar(*db_url_, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
                                  "WHERE idem_key = '" + key + "'"),
            "");
  ASSERT_TRUE(testing::WaitUntil([&] { return store_->PurgeExpired(1000, std::chrono::hours(24)).ok() && KeysFor(key) == 0; },
                                 std::chrono::seconds(5)));
  ForgetInRedis("tenant_a", key);
  RawResponse late = Post(key, kBody);
  EXPECT_EQ(late.status, 201) << late.body;
  EXPECT_EQ(late.headers["idempotent-replayed"], "true");
  EXPECT_EQ(late.body, first.body);
  EXPECT_EQ(late.headers["location"], first.headers["location"]);
  RawResponse changed = Post(key, R"({"account_id":"acct_1","amount":999,"currency":"USD"})");
  EXPECT_EQ(changed.status, 422) << changed.body;
  EXPECT_EQ(ChargesFor(key), 1);
  EXPECT_EQ(OutboxFor(key), 1);
}

// Issue 11 item 3: with the in-process cache, a replay needs neither Redis nor PostgreSQL.
TEST_F(ApiTest, AReplayIsServedFromTheInProcessCacheWithoutRedisOrPostgres) {
  store::HotTier tier(testing::RedisUrl(), Namespace(), SystemClock::Instance(), std::chrono::milliseconds(100),
                      std::chrono::milliseconds(50), /*local_entries=*/16);
  api::ChargeOptions opts;
  opts.lease = std::chrono::milliseconds(5000);
  api::ChargeApi charges({{kKeyA, "tenant_a"}}, *store_, tier, SystemClock::Instance(), SystemRandom::Instance(), opts);
  const std::string key = NewKey("local");
  const http::HttpRequest req = ChargeRequestA(key);
  http::HttpResponse first = charges.Create(req);
  ASSERT_EQ(first.status, 201) << first.body;
  ForgetInRedis("tenant_a", key);  // Redis no longer has it
  const double hits = Metric("paypath_idempotency_local_cache_total{result=\"hit\"}");
  const double claims = Metric("paypath_idempotency_pg_claims_total");
  http::HttpResponse again = charges.Create(req);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.body, first.body);
  ASSERT_NE(again.Header("Idempotent-Replayed"), nullptr);
  EXPECT_EQ(*again.Header("Idempotent-Replayed"), "true");
  EXPECT_EQ(Metric("paypath_idempotency_local_cache_total{result=\"hit\"}"), hits + 1);
  EXPECT_EQ(Metric("paypath_idempotency_pg_claims_total"), claims);  // PostgreSQL not asked
  tier.SetNamespace("another-instance");  // a restore: the warm process forgets, PostgreSQL answers
  http::HttpResponse after = charges.Create(req);
  EXPECT_EQ(after.status, 201);
  EXPECT_EQ(Metric("paypath_idempotency_pg_claims_total"), claims + 1);
  EXPECT_EQ(ChargesFor(key), 1);
}

// Issue 11 item 3: no request holds a thread for Redis. Against a Redis that accepts and never answers
// (2 s tier timeout), CreateAsync returns at once; the request waits as a continuation, falls through to
// PostgreSQL once the round trip fails, and is charged once. (Before: CreateAsync sat in a blocking GET
// on the caller's thread for the whole timeout.)
TEST_F(ApiTest, CreateAsyncNeverWaitsForRedisOnTheCallersThread) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 128), 0);  // the kernel completes handshakes; nobody ever reads or answers
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string url = "redis://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/0";
  store::HotTier tier(url, Namespace(), SystemClock::Instance(), std::chrono::milliseconds(2000),
                      std::chrono::milliseconds(1000));
  api::ChargeOptions opts;
  opts.lease = std::chrono::milliseconds(5000);
  api::ChargeApi charges({{kKeyA, "tenant_a"}}, *store_, tier, SystemClock::Instance(), SystemRandom::Instance(), opts);
  // A responder whose executor is a thread per task (as an I/O thread would run it).
  struct Answer : http::Responder {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<http::HttpResponse> response;
    void Send(http::HttpResponse r) override {
      std::lock_guard lock(mu);
      if (!response) response = std::move(r);
      cv.notify_all();
    }
    void Post(http::Task task) override { std::thread(std::move(task)).detach(); }
  };
  auto out = std::make_shared<Answer>();
  const std::string key = NewKey("noblock");
  const http::HttpRequest req = ChargeRequestA(key);
  const auto start = std::chrono::steady_clock::now();
  charges.CreateAsync(req, out);
  const auto returned = std::chrono::steady_clock::now() - start;
  EXPECT_LT(returned, std::chrono::milliseconds(1000)) << "CreateAsync waited for Redis on the caller's thread";
  {
    std::unique_lock lock(out->mu);
    ASSERT_TRUE(out->cv.wait_for(lock, std::chrono::seconds(10), [&] { return out->response.has_value(); }));
    EXPECT_EQ(out->response->status, 201) << out->response->body;
  }
  out.reset();
  EXPECT_EQ(ChargesFor(key), 1);
  close(fd);
}

TEST_F(ApiTest, ACachedValueNotNamingThisInstanceIsAnInvalidMiss) {
  std::string key = NewKey("stale-cache");
  store::HotTier tier(testing::RedisUrl(), "inst-now", SystemClock::Instance());
  auto redis = RedisAdmin();
  ASSERT_TRUE(redis);
  const std::string fp(64, 'a');
  // The pre-instance encoding, and one that names another instance: both decode, neither is ours.
  std::string v1 = "v1\n" + fp + "\n201\n4102444800000\nch_old\n{}";
  std::string other = "v2\ninst-before\n" + fp + "\n201\n4102444800000\nch_old\n2\n{}";
  for (const std::string& value : {v1, other, std::string("v2\ninst-now\n") + fp + "\n201\n41024448"}) {
    ASSERT_TRUE(redis->Set(store::HotTier::RedisKey("inst-now", "tenant_a", key), value, std::chrono::seconds(60)).ok());
    store::KeyRecord rec;
    EXPECT_NE(tier.Get("tenant_a", key, &rec), store::HotTier::Lookup::kHit) << value;
  }
  // Through the api: such an entry (here claiming the key for another body, which a hit would answer
  // with 422) is counted as invalid, and PostgreSQL answers.
  api::ChargeOptions opts;
  api::ChargeApi charges({{kKeyA, "tenant_a"}}, *store_, tier, SystemClock::Instance(), SystemRandom::Instance(), opts);
  api::Router router(charges, *store_, SystemClock::Instance());
  http::ServerOptions so;
  so.port = 0;
  so.threads = 2;
  auto server = http::Server::Start(so, [&router](const http::HttpRequest& r) { return router.Handle(r); });
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(redis->Set(store::HotTier::RedisKey("inst-now", "tenant_a", key), v1, std::chrono::seconds(60)).ok());
  const double invalid = Metric("paypath_idempotency_cache_total{result=\"invalid\"}");
  RawResponse r = RawHttp(server.value()->port(),
                          BuildRequest("POST", "/v1/charges",
                                       {{"Authorization", std::string("Bearer ") + kKeyA},
                                        {"Idempotency-Key", key},
                                        {"Content-Type", "application/json"}},
                                       kBody));
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers.count("idempotent-replayed"), 0u);
  EXPECT_EQ(Metric("paypath_idempotency_cache_total{result=\"invalid\"}"), invalid + 1);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, ADatabaseDroppedAndRecreatedNeverReplaysFromAWarmRedis) {
  std::string db = testing::FreshDatabase("pp_api_recreate_test");
  std::string key = NewKey("recreated");
  {
    ApiProcess api(db);
    ASSERT_TRUE(api.Ready());
    RawResponse first = api.Post(key, kBody);
    ASSERT_EQ(first.status, 201) << first.body;
    ASSERT_EQ(api.Post(key, kBody).headers["idempotent-replayed"], "true");  // Redis holds it now
    api.Stop();
  }
  db = testing::FreshDatabase("pp_api_recreate_test");  // same name, empty: the charge is gone
  ApiProcess api(db);
  ASSERT_TRUE(api.Ready());
  RawResponse again = api.Post(key, kBody);
  EXPECT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.headers.count("idempotent-replayed"), 0u) << "replayed a charge the database does not hold";
  EXPECT_EQ(QueryScalar(db, "SELECT count(*) FROM charges WHERE idem_key = '" + key + "'"), "1");
}

TEST_F(ApiTest, ARestoreWithARotatedInstanceIdNeverReplaysFromAWarmRedis) {
  std::string db = testing::FreshDatabase("pp_api_restore_test");
  std::string key = NewKey("restored");
  ApiProcess before(db);
  ASSERT_TRUE(before.Ready());
  ASSERT_EQ(before.Post(key, kBody).status, 201);
  before.Stop();
  // A restore to a point before the charge: the rows are gone, Redis still holds the response.
  ASSERT_EQ(QueryScalar(db, "DELETE FROM outbox; DELETE FROM charges; DELETE FROM idempotency_keys"), "");
  std::string out;
  int st = testing::RunShell(testing::PaypathBinary() + " migrate --rotate-instance-id --pg-url '" + db + "'", &out);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  ApiProcess after(db);
  ASSERT_TRUE(after.Ready());
  RawResponse r = after.Post(key, kBody);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers.count("idempotent-replayed"), 0u) << "replayed a charge the restored database does not hold";
}

TEST_F(ApiTest, RetentionShorterThanTheLeasePlusTheClientRetryHorizonIsRefused) {
  ApiProcess api(*db_url_, {"--retention-s", "60"});
  int status = 0;
  ASSERT_TRUE(api.child().Wait(std::chrono::seconds(10), &status)) << "the api started with a 60 s retention";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
}

TEST_F(ApiTest, ChargeCommandExitCodesNameTheOutcome) {
  auto run = [&](const std::string& args, uint16_t port, std::string* out) {
    int st = testing::RunShell("PAYPATH_API_KEY=" + std::string(kKeyA) + " " + testing::PaypathBinary() +
                                   " charge --url http://127.0.0.1:" + std::to_string(port) + " " + args,
                               out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  std::string key = NewKey("cli");
  std::string out;
  EXPECT_EQ(run("--account acct_1 --amount 5 --currency EUR --key " + key, port_, &out), 0) << out;
  EXPECT_EQ(run("--account acct_1 --amount 5 --currency EUR --key " + key, port_, &out), 0) << out;  // replay
  EXPECT_EQ(run("--account acct_1 --amount 6 --currency EUR --key " + key, port_, &out), 1) << out;  // 422
  EXPECT_EQ(run("--account acct_1 --amount 5 --currency EUR --max-attempts 99", port_, &out), 2) << out;
  EXPECT_EQ(run("--account acct_1 --currency EUR", port_, &out), 2) << out;  // --amount missing
  // Nothing listens there: every attempt was refused, so nothing can have been charged.
  EXPECT_EQ(run("--account acct_1 --amount 5 --currency EUR --deadline-ms 1000", FreePort(), &out), 4) << out;
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, TheHotTierNamespaceIsTheInstanceIdWithTheClustersIdentityAndRotates) {
  std::string db = testing::FreshDatabase("pp_api_instance_test");
  auto c = store::PgConn::Connect(db, "api-test");
  ASSERT_TRUE(c.ok());
  auto id = store::ReadInstanceIdentity(*c.value());
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(id->instance_id.size(), 32u);
  EXPECT_EQ(id->instance_id.find_first_not_of("0123456789abcdef"), std::string::npos);
  // The suite's role may read the control functions, so the cluster and its timeline are folded in.
  EXPECT_EQ(id->system_identifier, QueryScalar(db, "SELECT system_identifier::text FROM pg_control_system()"));
  EXPECT_EQ(id->timeline, QueryScalar(db, "SELECT timeline_id::text FROM pg_control_checkpoint()"));
  EXPECT_EQ(id->Namespace(), id->instance_id + "-" + id->system_identifier + "-" + id->timeline);
  EXPECT_EQ(id->Namespace().find(':'), std::string::npos);
  // Another database on the same cluster has its own id, and a rotation replaces it.
  auto mine = store::PgConn::Connect(*db_url_, "api-test");
  ASSERT_TRUE(mine.ok());
  EXPECT_NE(store::ReadInstanceIdentity(*mine.value())->instance_id, id->instance_id);
  auto rotated = store::RotateInstanceId(*c.value());
  ASSERT_TRUE(rotated.ok());
  EXPECT_NE(rotated.value(), id->instance_id);
  EXPECT_EQ(store::ReadInstanceIdentity(*c.value())->instance_id, rotated.value());
  // Migrating again keeps the id (written once).
  ASSERT_TRUE(store::Migrate(*c.value()).ok());
  EXPECT_EQ(store::ReadInstanceIdentity(*c.value())->instance_id, rotated.value());
}

// A database that was read-only for a while (a failover's old primary, an operator's
// default_transaction_read_only during a full disk): sessions opened meanwhile are read-only for life. Once
// the database is writable again the api must charge again — a pooled connection that answered 25006 is
// closed, not handed out again, so the next one is opened writable (and, with a multi-host URL and
// target_session_attrs=read-write, on the current primary).
TEST_F(ApiTest, ConnectionsOpenedWhileTheDatabaseWasReadOnlyAreReplacedOnceItIsWritable) {
  ASSERT_EQ(Post(NewKey("warm"), kBody).status, 201);
  const std::string db = QueryScalar(*db_url_, "SELECT current_database()");
  struct Writable {
    std::string url, db;
    ~Writable() { QueryScalar(url, "ALTER DATABASE \"" + db + "\" RESET default_transaction_read_only"); }
  } restore{testing::PgUrl(), db};  // from another database: a read-only session cannot ALTER DATABASE
  QueryScalar(testing::PgUrl(), "ALTER DATABASE \"" + db + "\" SET default_transaction_read_only = on");
  // The pool's sessions end (as in a failover); the ones it opens next are read-only.
  ASSERT_GE(testing::TerminateSessions(*db_url_, "api-test"), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Post(NewKey("read-only"), kBody).status, 503);
  QueryScalar(testing::PgUrl(), "ALTER DATABASE \"" + db + "\" RESET default_transaction_read_only");
  // A session opened read-only that has not been refused yet may still serve one more request; after that
  // none is left. (Before: the pool kept its read-only sessions and every charge failed until a restart.)
  std::string key = NewKey("writable-again");
  RawResponse r;
  int attempts = 0;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        attempts++;
        r = Post(key, kBody);
        return r.status == 201;
      },
      std::chrono::seconds(10)))
      << r.status << " " << r.body;
  EXPECT_LE(attempts, 3);
  EXPECT_EQ(ChargesFor(key), 1);
}

TEST_F(ApiTest, AConnectionTheServerClosedWhileIdleIsReplacedNotAFailedRequest) {
  ASSERT_EQ(Post(NewKey("warm"), kBody).status, 201);
  // The server ends every idle connection of this pool (what a restart or an idle timeout does), and the
  // backends have exited (so their close has reached the pool's sockets) before the next request.
  ASSERT_GT(testing::TerminateSessions(*db_url_, "api-test"), 0);
  std::string key = NewKey("after-terminate");
  RawResponse r = Post(key, kBody);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(ChargesFor(key), 1);
}

// Issue 12 item 3: a COMMIT that a failover loses (the old primary wrote it, the new one never had it)
// leaves nothing on the new primary, exactly as if every row of the key were gone; the client's retry
// with the same key commits the charge again. It must carry the same charge id and the same outbox
// message id, so the ledger, which may already hold the first commit's event (a relay published it from
// the old primary), absorbs the second as a duplicate. Shown twice: the rows purged, and a second database.
TEST_F(ApiTest, TheSameKeyCommittedAgainAfterItsRowsAreLostGetsTheSameChargeAndMessageIds) {
  std::string key = NewKey("lost-commit");
  RawResponse first = Post(key, kBody);
  ASSERT_EQ(first.status, 201) << first.body;
  const std::string charge_id = first.headers["location"].substr(std::string("/v1/charges/").size());
  const std::string message_id = QueryScalar(*db_url_, "SELECT message_id FROM outbox WHERE aggregate_id = '" + charge_id + "'");
  ASSERT_FALSE(message_id.empty());
  // The failover lost the whole transaction: key, charge and outbox row; Redis forgot it too.
  ASSERT_EQ(QueryScalar(*db_url_, "WITH k AS (DELETE FROM idempotency_keys WHERE idem_key = '" + key + "'), "
                                  "o AS (DELETE FROM outbox WHERE aggregate_id = '" + charge_id + "') "
                                  "DELETE FROM charges WHERE id = '" + charge_id + "'"),
            "");
  ForgetInRedis("tenant_a", key);
  RawResponse again = Post(key, kBody);
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.headers.count("idempotent-replayed"), 0u) << "the rows were gone: this is a new commit";
  EXPECT_EQ(again.headers["location"], first.headers["location"]);
  EXPECT_EQ(QueryScalar(*db_url_, "SELECT message_id FROM outbox WHERE aggregate_id = '" + charge_id + "'"), message_id);
  EXPECT_EQ(ChargesFor(key), 1);

  // Another database entirely (a restore, another cluster): the same (tenant, key), the same ids.
  std::string other = testing::FreshDatabase("pp_api_ids_test");
  ApiProcess api(other);
  ASSERT_TRUE(api.Ready());
  RawResponse there = api.Post(key, kBody);
  ASSERT_EQ(there.status, 201) << there.body;
  EXPECT_EQ(there.headers["location"], first.headers["location"]);
  EXPECT_EQ(QueryScalar(other, "SELECT message_id FROM outbox WHERE aggregate_id = '" + charge_id + "'"), message_id);
  api.Stop();
}

// SIGTERM while a charge waits on PostgreSQL for longer than the server's drain (5 s): the api answers the
// waiting request (its completion never ran: 503, nothing charged, the key free again) and exits 0. Before,
// the I/O threads stopped after the drain while the batch still held the request, and the batch's
// continuation then ran against a stopped server and a destroyed ChargeApi.
TEST_F(ApiTest, StoppingWhileAChargeWaitsPastTheDrainAnswersItAndExitsCleanly) {
  ApiProcess api(*db_url_, {}, {{"PAYPATH_FAILPOINTS", "group_commit.complete.form=delay(8000)@1"}});
  ASSERT_TRUE(api.Ready());
  const std::string key = NewKey("stop-waiting");
  std::promise<RawResponse> answer;
  std::thread client([&] { answer.set_value(api.Post(key, kBody)); });  // RawHttp: 10 s at most
  ASSERT_TRUE(testing::WaitUntil([&] { return api.Metric("paypath_group_commit_queued{phase=\"complete\"}") >= 1; },
                                 std::chrono::seconds(10)));
  api.child().Kill(SIGTERM);
  int status = 0;
  const bool exited = api.child().Wait(std::chrono::seconds(30), &status);
  if (!exited) api.child().Kill(SIGKILL);
  client.join();
  ASSERT_TRUE(exited) << "still running 30 s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(status)) << "ended by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (WIFEXITED(status)) {
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  RawResponse r = answer.get_future().get();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(std::stoll(QueryScalar(*db_url_, "SELECT count(*) FROM charges WHERE idem_key = '" + key + "'")), 0);
  EXPECT_EQ(std::stoll(QueryScalar(*db_url_, "SELECT count(*) FROM idempotency_keys WHERE idem_key = '" + key +
                                                 "' AND status = 'in_flight'")),
            0);
}

}  // namespace
}  // namespace paypath
