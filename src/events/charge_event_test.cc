#include "events/charge_event.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace paypath::events {
namespace {

ChargeEvent Sample() {
  ChargeEvent e;
  e.message_id = "0b7e6c1a-2f4d-4e8a-9c3b-5d6e7f8a9b0c";
  e.charge_id = "ch_0123456789abcdef0123456789abcdef";
  e.tenant = "tenant_a";
  e.account_id = "acct_1";
  e.amount = 1234;
  e.currency = "USD";
  e.created_at = std::chrono::system_clock::time_point(std::chrono::microseconds(1795838400123456LL));
  return e;
}

// The message the relay would publish for `e`, with the payload stored as written.
amqp::Message Relayed(const ChargeEvent& e) {
  return EncodeMessage({7, e.message_id, e.tenant, e.charge_id, kChargeSucceeded, EncodePayload(e), 1795838400});
}

Violation ViolationOf(const amqp::Message& m) {
  auto d = Decode(m);
  EXPECT_TRUE(std::holds_alternative<Rejected>(d)) << "accepted: " << m.body;
  return std::holds_alternative<Rejected>(d) ? std::get<Rejected>(d).violation : Violation::kInvalidField;
}

TEST(ChargeEvent, EncodeThenDecodeRoundTrips) {
  ChargeEvent e = Sample();
  auto d = Decode(Relayed(e));
  ASSERT_TRUE(std::holds_alternative<ChargeEvent>(d)) << std::get<Rejected>(d).detail;
  EXPECT_EQ(std::get<ChargeEvent>(d), e);
}

TEST(ChargeEvent, PayloadHasTheDocumentedFieldsInOrder) {
  EXPECT_EQ(EncodePayload(Sample()),
            R"({"type":"charge.succeeded","version":1,"message_id":"0b7e6c1a-2f4d-4e8a-9c3b-5d6e7f8a9b0c",)"
            R"("charge_id":"ch_0123456789abcdef0123456789abcdef","tenant":"tenant_a","account_id":"acct_1",)"
            R"("amount":1234,"currency":"USD","created_at":"2026-11-28T04:00:00.123456Z"})");
}

TEST(ChargeEvent, MessagePropertiesAndHeadersComeFromTheOutboxRow) {
  amqp::Message m = Relayed(Sample());
  EXPECT_EQ(m.message_id, "0b7e6c1a-2f4d-4e8a-9c3b-5d6e7f8a9b0c");
  EXPECT_EQ(m.type, "charge.succeeded");
  EXPECT_EQ(m.content_type, "application/json");
  EXPECT_EQ(m.timestamp, 1795838400);
  EXPECT_EQ(m.headers.at("tenant"), "tenant_a");
  EXPECT_EQ(m.headers.at("charge_id"), "ch_0123456789abcdef0123456789abcdef");
  EXPECT_EQ(m.headers.at("event_type"), "charge.succeeded");
  EXPECT_EQ(m.headers.at("outbox_id"), "7");
}

TEST(ChargeEvent, DecodesThePayloadAsJsonbReturnsIt) {
  // PostgreSQL's jsonb reorders keys and adds spaces: the field order on the wire is not part of the contract.
  amqp::Message m = Relayed(Sample());
  m.body = R"({"type": "charge.succeeded", "amount": 1234, "tenant": "tenant_a", "version": 1, "currency": "USD",)"
           R"( "charge_id": "ch_0123456789abcdef0123456789abcdef", "account_id": "acct_1", "created_at":)"
           R"( "2026-11-28T04:00:00.123456Z", "message_id": "0b7e6c1a-2f4d-4e8a-9c3b-5d6e7f8a9b0c"})";
  auto d = Decode(m);
  ASSERT_TRUE(std::holds_alternative<ChargeEvent>(d)) << std::get<Rejected>(d).detail;
  EXPECT_EQ(std::get<ChargeEvent>(d), Sample());
}

// Rewrites one payload field (a JSON value) of the sample message.
amqp::Message WithField(const std::string& key, boost::json::value v) {
  amqp::Message m = Relayed(Sample());
  boost::json::object o = boost::json::parse(m.body).as_object();
  if (v.is_null()) {
    o.erase(key);
  } else {
    o[key] = v;
  }
  m.body = boost::json::serialize(o);
  return m;
}

TEST(ChargeEvent, NamesEachViolation) {
  amqp::Message m = Relayed(Sample());
  m.body = "{not json";
  EXPECT_EQ(ViolationOf(m), Violation::kUndecodable);
  m.body = "[1,2]";
  EXPECT_EQ(ViolationOf(m), Violation::kUndecodable);
  EXPECT_EQ(ViolationOf(WithField("amount", "12")), Violation::kUndecodable);
  EXPECT_EQ(ViolationOf(WithField("tenant", nullptr)), Violation::kUndecodable);
  EXPECT_EQ(ViolationOf(WithField("extra", "x")), Violation::kUndecodable);
  EXPECT_EQ(ViolationOf(WithField("type", nullptr)), Violation::kUndecodable);
  EXPECT_EQ(ViolationOf(WithField("type", "charge.refunded")), Violation::kUnknownType);
  EXPECT_EQ(ViolationOf(WithField("version", 2)), Violation::kUnknownVersion);
  EXPECT_EQ(ViolationOf(WithField("version", "1")), Violation::kUndecodable);

  m = Relayed(Sample());
  m.type = "charge.refunded";
  EXPECT_EQ(ViolationOf(m), Violation::kTypeMismatch);
  m = Relayed(Sample());
  m.message_id = "";
  EXPECT_EQ(ViolationOf(m), Violation::kMessageIdMismatch);
  m.message_id = "11111111-2222-4333-8444-555555555555";
  EXPECT_EQ(ViolationOf(m), Violation::kMessageIdMismatch);
  m = Relayed(Sample());
  m.headers.erase("tenant");
  EXPECT_EQ(ViolationOf(m), Violation::kTenantHeaderMissing);
  m.headers["tenant"] = "tenant_b";
  EXPECT_EQ(ViolationOf(m), Violation::kTenantHeaderMismatch);
  m = Relayed(Sample());
  m.headers.erase("charge_id");
  EXPECT_EQ(ViolationOf(m), Violation::kChargeIdHeaderMissing);
  m.headers["charge_id"] = "ch_other";
  EXPECT_EQ(ViolationOf(m), Violation::kChargeIdHeaderMismatch);

  // Each field value as JSON text.
  const std::vector<std::pair<std::string, std::string>> out_of_limits = {
      {"amount", "0"},           {"amount", "-5"},          {"amount", "100000000001"},
      {"amount", "18446744073709551615"}, {"currency", "\"usd\""}, {"currency", "\"EURO\""},
      {"account_id", "\"acct 1\""}, {"account_id", "\"\""},   {"account_id", "\"" + std::string(65, 'a') + "\""},
      {"created_at", "\"yesterday\""}};
  for (const auto& [key, text] : out_of_limits) {
    amqp::Message bad = WithField(key, boost::json::parse(text));
    EXPECT_EQ(ViolationOf(bad), Violation::kInvalidField) << key << " = " << text;
  }
  // An invalid id in the payload and headers alike: the header check passes, the limit check does not.
  ChargeEvent e = Sample();
  e.tenant = "tenant a";
  EXPECT_EQ(ViolationOf(Relayed(e)), Violation::kInvalidField);
  e = Sample();
  e.message_id = "not-a-uuid";
  EXPECT_EQ(ViolationOf(Relayed(e)), Violation::kInvalidField);
}

TEST(ChargeEvent, AcceptsTheLimitsThemselves) {
  for (int64_t amount : {int64_t{1}, int64_t{100000000000}}) {
    ChargeEvent e = Sample();
    e.amount = amount;
    e.account_id = std::string(64, 'z');
    auto d = Decode(Relayed(e));
    EXPECT_TRUE(std::holds_alternative<ChargeEvent>(d)) << amount;
  }
}

TEST(ChargeEvent, ViolationNamesAreDistinctMetricLabels) {
  std::set<std::string> names;
  for (Violation v : kAllViolations) names.insert(ViolationName(v));
  EXPECT_EQ(names.size(), std::size(kAllViolations));
  EXPECT_TRUE(names.count("tenant_header_missing"));
}

TEST(ChargeEvent, TimestampsRoundTripWithMicroseconds) {
  auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1795838400000001LL));
  EXPECT_EQ(FormatUtcMicros(t), "2026-11-28T04:00:00.000001Z");
  auto back = ParseUtcTimestamp(FormatUtcMicros(t));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, t);
  auto a = ParseUtcTimestamp("2026-11-28T04:00:00Z");
  auto b = ParseUtcTimestamp("2026-11-28T04:00:00.5Z");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*b - *a, std::chrono::milliseconds(500));
  EXPECT_FALSE(ParseUtcTimestamp("2026-11-28T04:00:00+01:00").ok());
  EXPECT_FALSE(ParseUtcTimestamp("2026-11-28T04:00:00.Z").ok());
}

}  // namespace
}  // namespace paypath::events
