#include "ledger/event.h"

#include <gtest/gtest.h>

namespace paypath::ledger {
namespace {

amqp::Message Valid() {
  amqp::Message m;
  m.message_id = "0b7e6c1a-2f4d-4e8a-9c3b-5d6e7f8a9b0c";
  m.type = "charge.succeeded";
  m.headers["tenant"] = "tenant_a";
  m.body = R"({"charge_id":"ch_1","tenant":"tenant_a","account_id":"acct_1","amount":1234,"currency":"USD",)"
           R"("created_at":"2026-11-28T04:00:00.123456Z"})";
  return m;
}

TEST(ChargeEvent, ParsesTheContractPayload) {
  auto e = ParseChargeEvent(Valid());
  ASSERT_TRUE(e.ok()) << e.error().ToString();
  EXPECT_EQ(e->charge_id, "ch_1");
  EXPECT_EQ(e->amount, 1234);
  EXPECT_EQ(e->debit_account(), "customer:acct_1");
  EXPECT_EQ(e->credit_account(), "merchant:tenant_a");
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(e->created_at.time_since_epoch()).count();
  EXPECT_EQ(us, 1795838400123456LL);  // 2026-11-28T04:00:00.123456Z
}

TEST(ChargeEvent, RejectsPoison) {
  auto with_body = [](std::string body) {
    amqp::Message m = Valid();
    m.body = std::move(body);
    return m;
  };
  std::vector<amqp::Message> bad = {
      with_body("not json"),
      with_body("[1,2]"),
      with_body(R"({"charge_id":"ch_1","tenant":"tenant_a","account_id":"acct_1","amount":-5,"currency":"USD","created_at":"2026-11-28T04:00:00Z"})"),
      with_body(R"({"charge_id":"ch_1","tenant":"tenant_a","account_id":"acct_1","amount":"12","currency":"USD","created_at":"2026-11-28T04:00:00Z"})"),
      with_body(R"({"charge_id":"ch_1","tenant":"tenant_a","account_id":"acct_1","amount":12,"currency":"usd","created_at":"2026-11-28T04:00:00Z"})"),
      with_body(R"({"charge_id":"ch_1","tenant":"tenant a","account_id":"acct_1","amount":12,"currency":"USD","created_at":"2026-11-28T04:00:00Z"})"),
      with_body(R"({"charge_id":"ch_1","tenant":"tenant_a","account_id":"acct_1","amount":12,"currency":"USD","created_at":"yesterday"})"),
      with_body(R"({"tenant":"tenant_a","account_id":"acct_1","amount":12,"currency":"USD","created_at":"2026-11-28T04:00:00Z"})"),
      with_body(R"({"charge_id":"ch_1","tenant":"tenant_b","account_id":"acct_1","amount":12,"currency":"USD","created_at":"2026-11-28T04:00:00Z"})"),
  };
  amqp::Message no_id = Valid();
  no_id.message_id = "";
  bad.push_back(no_id);
  amqp::Message wrong_type = Valid();
  wrong_type.type = "charge.refunded";
  bad.push_back(wrong_type);
  for (size_t i = 0; i < bad.size(); ++i) {
    auto e = ParseChargeEvent(bad[i]);
    ASSERT_FALSE(e.ok()) << "case " << i;
    EXPECT_EQ(e.error().code, ErrorCode::kInvalidArgument) << "case " << i;
  }
}

TEST(ChargeEvent, TimestampFractionsAreOptionalAndPrecise) {
  auto a = ParseUtcTimestamp("2026-11-28T04:00:00Z");
  auto b = ParseUtcTimestamp("2026-11-28T04:00:00.5Z");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b - *a, std::chrono::milliseconds(500));
  EXPECT_FALSE(ParseUtcTimestamp("2026-11-28T04:00:00+01:00").ok());
  EXPECT_FALSE(ParseUtcTimestamp("2026-11-28T04:00:00.Z").ok());
}

}  // namespace
}  // namespace paypath::ledger
