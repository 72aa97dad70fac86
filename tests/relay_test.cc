// The relay against real PostgreSQL and RabbitMQ: order, confirms-before-mark, the token bucket, purging,
// backlog metrics and two relays sharing one outbox.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "ledger_fixture.h"

namespace paypath::testing {
namespace {

class RelayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = new LedgerFixture("paypath_relay_test"); }
  static void TearDownTestSuite() { delete fx_; }
  void SetUp() override { fx_->Reset(); }
  static LedgerFixture* fx_;
};
LedgerFixture* RelayTest::fx_ = nullptr;

TEST_F(RelayTest, PublishesInIdOrderWithStableIdsAndMarksAfterConfirm) {
  auto seeded = fx_->Seed(5);
  metrics::Registry reg;
  SystemClock& clock = SystemClock::Instance();
  outbox::Relay relay(fx_->RelayOpts(reg), clock, fx_->random());
  auto n = relay.RunOnce();
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, 5);
  EXPECT_EQ(fx_->Unpublished(), 0);
  EXPECT_EQ(CounterValue(reg, "paypath_outbox_published_total"), 5);

  amqp::Settings s;
  s.url = ConsumerAmqpUrl();
  auto c = amqp::Connection::Open(s);
  ASSERT_TRUE(c.ok());
  for (const auto& want : seeded) {
    auto d = c.value()->Get(fx_->queue());
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    ASSERT_TRUE(d->has_value());
    const amqp::Message& m = (*d)->message;
    EXPECT_EQ(m.message_id, want.message_id);
    EXPECT_EQ(m.type, "charge.succeeded");
    EXPECT_EQ(m.headers.at("charge_id"), want.charge_id);
    EXPECT_EQ(m.headers.at("tenant"), "tenant_a");
    EXPECT_EQ(m.headers.at("event_type"), "charge.succeeded");
    EXPECT_NE(m.body.find(want.charge_id), std::string::npos);
    ASSERT_TRUE(c.value()->Ack((*d)->tag).ok());
  }
}

TEST_F(RelayTest, TokenBucketBoundsEachBatch) {
  fx_->Seed(10);
  metrics::Registry reg;
  FakeClock clock;
  auto o = fx_->RelayOpts(reg);
  o.rate = 10;  // 1 token per 100 ms
  o.burst = 3;
  outbox::Relay relay(o, clock, fx_->random());
  auto n = relay.RunOnce();
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, 3);  // the burst
  n = relay.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_TRUE(relay.rate_limited());
  clock.Advance(std::chrono::milliseconds(250));  // 2.5 tokens: two whole rows
  n = relay.RunOnce();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(fx_->Unpublished(), 5);
}

TEST_F(RelayTest, PurgesPublishedRowsInBoundedBatchesAfterRetention) {
  fx_->Seed(10);
  metrics::Registry reg;
  auto o = fx_->RelayOpts(reg);
  o.retention = std::chrono::seconds(0);
  o.purge_batch = 4;
  outbox::Relay relay(o, SystemClock::Instance(), fx_->random());
  // Unpublished rows are never purged, whatever their age.
  auto p = relay.PurgeOnce();
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ(*p, 0);
  ASSERT_TRUE(relay.RunOnce().ok());
  std::vector<int> purged;
  for (int i = 0; i < 4; ++i) {
    auto r = relay.PurgeOnce();
    ASSERT_TRUE(r.ok());
    purged.push_back(*r);
  }
  EXPECT_EQ(purged, (std::vector<int>{4, 4, 2, 0}));
  EXPECT_EQ(fx_->Count("SELECT count(*) FROM outbox"), 0);
}

TEST_F(RelayTest, RetentionKeepsRecentlyPublishedRows) {
  fx_->Seed(3);
  metrics::Registry reg;
  auto o = fx_->RelayOpts(reg);
  o.retention = std::chrono::seconds(3600);
  outbox::Relay relay(o, SystemClock::Instance(), fx_->random());
  ASSERT_TRUE(relay.RunOnce().ok());
  auto r = relay.PurgeOnce();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0);
  EXPECT_EQ(fx_->Count("SELECT count(*) FROM outbox"), 3);
}

TEST_F(RelayTest, BacklogGaugesTrackUnpublishedRows) {
  fx_->Seed(7);
  metrics::Registry reg;
  auto o = fx_->RelayOpts(reg);
  o.batch = 5;
  outbox::Relay relay(o, SystemClock::Instance(), fx_->random());
  auto& backlog = reg.GetGauge("paypath_outbox_backlog_rows", "");
  auto& age = reg.GetGauge("paypath_outbox_oldest_age_seconds", "");
  ASSERT_TRUE(relay.RunOnce().ok());  // 5 of 7
  ASSERT_TRUE(relay.UpdateBacklogMetrics().ok());
  EXPECT_EQ(backlog.Value(), 2);
  EXPECT_GE(age.Value(), 0);
  ASSERT_TRUE(relay.RunOnce().ok());
  ASSERT_TRUE(relay.UpdateBacklogMetrics().ok());
  EXPECT_EQ(backlog.Value(), 0);
  EXPECT_EQ(age.Value(), 0);
}

TEST_F(RelayTest, TwoRelaysShareTheOutboxWithoutLossOrDoublePublish) {
  const int kRows = 2000;
  fx_->Seed(kRows);
  metrics::Registry reg_a, reg_b;
  auto oa = fx_->RelayOpts(reg_a);
  auto ob = fx_->RelayOpts(reg_b);
  oa.batch = ob.batch = 50;
  SystemRandom ra(1), rb(2);
  outbox::Relay a(oa, SystemClock::Instance(), ra);
  outbox::Relay b(ob, SystemClock::Instance(), rb);
  auto drive = [this](outbox::Relay& r) {
    WaitUntil(
        [&] {
          auto n = r.RunOnce();
          return n.ok() && *n == 0 && fx_->Unpublished() == 0;
        },
        std::chrono::seconds(60), std::chrono::milliseconds(0));
  };
  std::thread ta([&] { drive(a); });
  std::thread tb([&] { drive(b); });
  ta.join();
  tb.join();
  double pa = CounterValue(reg_a, "paypath_outbox_published_total");
  double pb = CounterValue(reg_b, "paypath_outbox_published_total");
  EXPECT_EQ(fx_->Unpublished(), 0);
  EXPECT_GT(pa, 0) << "relay A never got a batch: SKIP LOCKED sharing not exercised";
  EXPECT_GT(pb, 0) << "relay B never got a batch: SKIP LOCKED sharing not exercised";
  EXPECT_EQ(pa + pb, kRows) << "a row was published by both relays";
  EXPECT_EQ(fx_->Depth(fx_->queue()), kRows);

  // The consumer applies every event once.
  metrics::Registry creg;
  SystemRandom rc(3);
  ledger::Consumer consumer(fx_->ConsumerOpts(creg), SystemClock::Instance(), rc);
  EXPECT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == kRows; }, std::chrono::seconds(60)));
  EXPECT_EQ(fx_->Postings(), 2 * kRows);
  EXPECT_EQ(CounterValue(creg, "paypath_inbox_duplicates_total"), 0);
  std::string out;
  EXPECT_EQ(fx_->Audit(&out), 0) << out;
  std::printf("two relays: A published %.0f, B published %.0f\n", pa, pb);
}

}  // namespace
}  // namespace paypath::testing
