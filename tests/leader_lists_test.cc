// Issue 12 item 2: the services find the new leader by themselves. A node of each engine is stood in for
// by a NodeProxy in front of the real server (node_proxy.h): killing it is that node dying. The relay and
// the consumer get AMQP node lists (amqp::Settings::url), the api, relay and consumer multi-host libpq
// URLs; whichever node dies, they carry on through the next one and every charge is posted exactly once.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/amqp.h"
#include "ledger_fixture.h"
#include "node_proxy.h"

namespace paypath::testing {
namespace {

uint16_t ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // nothing listens there any more: connects are refused
  return ntohs(a.sin_port);
}

// The URL's authority (between "@", or "://" without credentials, and the next '/'), e.g. "127.0.0.1:5432".
std::pair<size_t, size_t> Authority(const std::string& url) {
  size_t scheme = url.find("://") + 3;
  size_t slash = url.find('/', scheme);
  size_t at = url.rfind('@', slash);
  size_t begin = at == std::string::npos || at < scheme ? scheme : at + 1;
  return {begin, slash};
}

int PortOf(const std::string& url) {
  auto [b, e] = Authority(url);
  std::string hostport = url.substr(b, e - b);
  return std::stoi(hostport.substr(hostport.rfind(':') + 1));
}

// `url` with its host:port replaced by 127.0.0.1:port.
std::string OnPort(const std::string& url, int port) {
  auto [b, e] = Authority(url);
  return url.substr(0, b) + "127.0.0.1:" + std::to_string(port) + url.substr(e);
}

// An AMQP node list: `url` once per port, in order.
std::string NodeList(const std::string& url, const std::vector<int>& ports) {
  std::string out;
  for (int p : ports) out += (out.empty() ? "" : ",") + OnPort(url, p);
  return out;
}

// A libpq multi-host URL for `url`'s database on these ports, as scripts/stack-ha prints them.
std::string MultiHost(const std::string& url, const std::vector<int>& ports) {
  auto [b, e] = Authority(url);
  std::string hosts;
  for (int p : ports) hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(p);
  std::string out = url.substr(0, b) + hosts + url.substr(e);
  return out + (out.find('?') == std::string::npos ? "?" : "&") + "target_session_attrs=read-write&connect_timeout=2";
}

class LeaderListsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = new LedgerFixture("paypath_leader_lists_test"); }
  static void TearDownTestSuite() { delete fx_; }
  void SetUp() override { fx_->Reset(); }
  static LedgerFixture* fx_;
};
LedgerFixture* LeaderListsTest::fx_ = nullptr;

TEST_F(LeaderListsTest, AnAmqpNodeListIsSplitOnlyWhereTheNextUrlStarts) {
  EXPECT_EQ(amqp::SplitNodes("amqp://u:p@h1:1/v"), std::vector<std::string>({"amqp://u:p@h1:1/v"}));
  EXPECT_EQ(amqp::SplitNodes("amqp://u:p@h1:1/v,amqp://u:p@h2:2/v"),
            std::vector<std::string>({"amqp://u:p@h1:1/v", "amqp://u:p@h2:2/v"}));
  EXPECT_EQ(amqp::SplitNodes("amqp://u:a,b@h1:1/v, amqp://u:a,b@h2:2/v"),
            std::vector<std::string>({"amqp://u:a,b@h1:1/v", "amqp://u:a,b@h2:2/v"}));
  EXPECT_TRUE(amqp::SplitNodes("").empty());
}

TEST_F(LeaderListsTest, AnAmqpNodeListWhoseFirstNodeIsClosedConnectsToTheSecond) {
  const std::string url = RelayAmqpUrl();
  amqp::Settings s;
  s.url = NodeList(url, {ClosedPort(), PortOf(url)});
  auto c = amqp::Connection::Open(s);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c.value()->node(), 1u);
  EXPECT_EQ(c.value()->nodes(), 2u);
  // Every node dead: unavailable, naming each node but never a password.
  s.url = NodeList(url, {ClosedPort(), ClosedPort()});
  auto none = amqp::Connection::Open(s);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(none.error().message.find("every AMQP node failed"), std::string::npos) << none.error().message;
  EXPECT_EQ(none.error().message.find('@'), std::string::npos) << none.error().message;
}

// The relay and the consumer are connected through node 1 of their lists; node 1 dies (every connection
// reset, connects refused). Both move to node 2 by themselves: the relay republishes what was not
// confirmed, the consumer's unacked deliveries come back, and every charge is posted exactly once.
TEST_F(LeaderListsTest, TheRelayAndConsumerMoveToTheNextNodeWhenTheirNodeDies) {
  const int broker = PortOf(RelayAmqpUrl());
  NodeProxy node1(broker);
  metrics::Registry rreg, creg;
  auto ro = fx_->RelayOpts(rreg);
  ro.amqp.url = NodeList(RelayAmqpUrl(), {node1.port(), broker});
  auto co = fx_->ConsumerOpts(creg);
  co.amqp.url = NodeList(ConsumerAmqpUrl(), {node1.port(), broker});
  outbox::Relay relay(ro, SystemClock::Instance(), fx_->random());
  ledger::Consumer consumer(co, SystemClock::Instance(), fx_->random());

  fx_->Seed(5);
  ASSERT_TRUE(WaitUntil([&] { return relay.RunOnce().ok() && fx_->Unpublished() == 0; }, std::chrono::seconds(20)));
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 5; })) << fx_->InboxRows();
  EXPECT_GE(node1.accepted(), 2) << "both should have connected through node 1";

  node1.Kill();
  fx_->Seed(5);
  ASSERT_TRUE(WaitUntil([&] { return relay.RunOnce().ok() && fx_->Unpublished() == 0; }, std::chrono::seconds(30)))
      << "unpublished " << fx_->Unpublished();
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 10; }, std::chrono::seconds(30)))
      << "inbox " << fx_->InboxRows();
  EXPECT_EQ(fx_->Postings(), 20);
  EXPECT_EQ(fx_->Depth(fx_->queue() + ".dlq"), 0);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
}

uint16_t FreePort() { return ClosedPort(); }

// PostgreSQL: the api (a child process), the relay and the consumer get two-host URLs, first a node that
// works and then dies, second the real server. After the first dies, each opens a new connection, which
// libpq takes to the second host: nothing retries a dead PGconn. Charges made before and after are each
// posted once; a request cut by the death is answered by the retry with the same key.
TEST_F(LeaderListsTest, TheApiRelayAndConsumerReconnectThroughATwoHostUrlWhenTheFirstHostDies) {
  const int pg = PortOf(fx_->url());
  NodeProxy host1(pg);
  const std::string api_url = MultiHost(fx_->url(), {host1.port(), pg});
  const std::string ledger_url = MultiHost(fx_->ledger_url(), {host1.port(), pg});
  // First host closed from the start: the processes still connect (to the second).
  const std::string dead_first = MultiHost(fx_->url(), {ClosedPort(), pg});
  {
    auto c = store::PgConn::Connect(dead_first, "leader-lists-test");
    ASSERT_TRUE(c.ok()) << c.error().ToString();
  }

  uint16_t port = FreePort();
  Child api({PaypathBinary(), "api", "--pg-url", api_url, "--redis-url", RedisUrl(), "--listen",
             "127.0.0.1:" + std::to_string(port), "--threads", "2"},
            {{"PAYPATH_API_KEYS", "sk_test_leader:tenant_a"}}, "/tmp/paypath-leader-lists-api.log");
  ASSERT_TRUE(WaitUntil([&] { return RawHttp(port, BuildRequest("GET", "/readyz", {})).status == 200; },
                        std::chrono::seconds(15), std::chrono::milliseconds(50)));
  const std::string body = R"({"account_id":"acct_1","amount":700,"currency":"USD"})";
  auto charge = [&](const std::string& key) {
    return WaitUntil(
        [&] {
          auto r = RawHttp(port, BuildRequest("POST", "/v1/charges",
                                              {{"Authorization", "Bearer sk_test_leader"},
                                               {"Idempotency-Key", key},
                                               {"Content-Type", "application/json"}},
                                              body));
          return r.status == 201;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(100));
  };
  const std::string run = fx_->random().Hex128();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(charge("before-" + run + "-" + std::to_string(i)));

  metrics::Registry rreg, creg;
  auto ro = fx_->RelayOpts(rreg);
  ro.pg_url = api_url;
  auto co = fx_->ConsumerOpts(creg);
  co.ledger_pg_url = ledger_url;
  outbox::Relay relay(ro, SystemClock::Instance(), fx_->random());
  ledger::Consumer consumer(co, SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(WaitUntil([&] { return relay.RunOnce().ok() && fx_->Unpublished() == 0; }, std::chrono::seconds(20)));
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 3; })) << fx_->InboxRows();
  const int through_host1 = host1.accepted();
  EXPECT_GE(through_host1, 3) << "api, relay and consumer should all have connected through host 1";

  host1.Kill();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(charge("after-" + run + "-" + std::to_string(i)));
  ASSERT_TRUE(WaitUntil([&] { return relay.RunOnce().ok() && fx_->Unpublished() == 0; }, std::chrono::seconds(30)))
      << "unpublished " << fx_->Unpublished();
  ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 6; }, std::chrono::seconds(30)))
      << "inbox " << fx_->InboxRows();
  EXPECT_EQ(fx_->Count("SELECT count(*) FROM charges"), 6);
  EXPECT_EQ(fx_->Postings(), 12);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
  api.Kill(SIGTERM);
  api.Wait(std::chrono::seconds(10));
}

// A listener that completes TCP handshakes (the kernel does) and never answers: a partitioned or hung
// PostgreSQL host, as far as a connecting client can tell.
class SilentHost {
 public:
  SilentHost() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentHost() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The in-doubt resolver opens its connections with a deadline of about a second (PgPool::OpenFresh ->
// PgConn::ConnectWithin). With a multi-host URL whose first host is silent (the old primary, partitioned
// after a failover), libpq's asynchronous connect never moves on to the next host by itself (connect_timeout
// does not apply under PQconnectPoll), so every settle attempt would spend its whole deadline on the dead
// host and the key would stay outcome-unknown for as long as the partition lasts. Each host must get its
// share of the deadline.
TEST_F(LeaderListsTest, AConnectWithinADeadlineSkipsASilentFirstHost) {
  SilentHost silent;
  const int pg = PortOf(fx_->url());
  const std::string url = MultiHost(fx_->url(), {silent.port(), pg});
  auto start = std::chrono::steady_clock::now();
  auto c = store::PgConn::ConnectWithin(url, "leader-lists-test", SystemClock::Instance(),
                                        start + std::chrono::milliseconds(1500), std::chrono::milliseconds(5000));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  ASSERT_TRUE(c.ok()) << c.error().ToString() << " after " << took.count() << " ms";
  EXPECT_LT(took.count(), 1600);
  EXPECT_EQ(QueryScalar(url, "SELECT 1"), "1");  // the blocking connect (connect_timeout per host) as well
  // Three hosts, the last the real one: still within the deadline.
  SilentHost silent2;
  const std::string three = MultiHost(fx_->url(), {silent.port(), silent2.port(), pg});
  start = std::chrono::steady_clock::now();
  auto c3 = store::PgConn::ConnectWithin(three, "leader-lists-test", SystemClock::Instance(),
                                         start + std::chrono::milliseconds(1500), std::chrono::milliseconds(5000));
  ASSERT_TRUE(c3.ok()) << c3.error().ToString();
  // Every host silent: fails within the deadline, naming no password.
  const std::string none = MultiHost(fx_->url(), {silent.port(), silent2.port()});
  start = std::chrono::steady_clock::now();
  auto c0 = store::PgConn::ConnectWithin(none, "leader-lists-test", SystemClock::Instance(),
                                         start + std::chrono::milliseconds(800), std::chrono::milliseconds(5000));
  took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  ASSERT_FALSE(c0.ok());
  EXPECT_EQ(c0.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(took.count(), 1000);
}

// Seen on the HA stack (docs/design.md "Finding the new leader"): a relay that reconnected to a surviving
// node while the quorum queue was still electing its new leader had every later publish on that channel
// nacked, for as long as the connection lived, while a fresh connection to the same node published at
// once. So a batch with nacks is retried on a new connection (and, with a node list, the next node).
// Here the broker nacks by design (a queue full with x-overflow reject-publish); node 1 is a forwarder so
// the test can count the relay's connections.
TEST_F(LeaderListsTest, ABatchTheBrokerNackedIsRetriedOnANewConnection) {
  {
    auto admin = LedgerFixture::Admin();
    ASSERT_TRUE(admin.ok()) << admin.error().ToString();
    amqp::Topology t;
    t.queue = fx_->queue();
    ASSERT_TRUE(amqp::DeleteTopology(*admin.value(), t).ok());
    ASSERT_TRUE(admin.value()->DeclareExchange(t.dead_letter_exchange(), "direct").ok());
    ASSERT_TRUE(admin.value()->DeclareQueue(t.dead_letter_queue(), {}).ok());
    ASSERT_TRUE(admin.value()->DeclareQueue(t.queue, {{"x-max-length", int64_t{1}}, {"x-overflow", "reject-publish"}}).ok());
    ASSERT_TRUE(admin.value()->BindQueue(t.queue, amqp::kExchange, t.queue).ok());
  }
  const int broker = PortOf(RelayAmqpUrl());
  NodeProxy node1(broker);
  metrics::Registry reg;
  auto ro = fx_->RelayOpts(reg);
  ro.amqp.url = NodeList(RelayAmqpUrl(), {node1.port()});
  outbox::Relay relay(ro, SystemClock::Instance(), fx_->random());
  fx_->Seed(3);
  auto first = relay.RunOnce();
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(*first, 1);
  EXPECT_EQ(relay.nacked(), 2);
  EXPECT_EQ(node1.accepted(), 1);
  (void)relay.RunOnce();  // the queue is still full: nacked again, but on a new connection
  EXPECT_EQ(node1.accepted(), 2) << "the nacked batch was retried on the connection that nacked it";
  EXPECT_EQ(fx_->Unpublished(), 2);
}

}  // namespace
}  // namespace paypath::testing
