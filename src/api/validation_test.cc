#include "api/validation.h"

#include <gtest/gtest.h>

#include "api/idempotency.h"
#include "api/problem.h"
#include "store/hot_tier.h"

namespace paypath::api {
namespace {

TEST(IdempotencyKey, AcceptsVisibleAsciiUpTo255) {
  EXPECT_EQ(ParseIdempotencyKey("abc").value(), "abc");
  EXPECT_EQ(ParseIdempotencyKey("!~").value(), "!~");
  EXPECT_TRUE(ParseIdempotencyKey(std::string(255, 'x')).ok());
}

TEST(IdempotencyKey, RejectsEmptyTooLongAndOtherCharacters) {
  EXPECT_FALSE(ParseIdempotencyKey("").ok());
  EXPECT_FALSE(ParseIdempotencyKey(std::string(256, 'x')).ok());
  EXPECT_FALSE(ParseIdempotencyKey("a b").ok());
  EXPECT_FALSE(ParseIdempotencyKey("a\tb").ok());
  EXPECT_FALSE(ParseIdempotencyKey("caf\xc3\xa9").ok());
  EXPECT_FALSE(ParseIdempotencyKey(std::string("a\x7f", 2)).ok());
  EXPECT_EQ(ParseIdempotencyKey("").error().code, ErrorCode::kInvalidArgument);
}

TEST(IdempotencyKey, StructuredFieldStringMeansTheSameKey) {
  EXPECT_EQ(ParseIdempotencyKey("\"abc\"").value(), "abc");
  EXPECT_EQ(ParseIdempotencyKey(R"("a\"b")").value(), "a\"b");
  EXPECT_EQ(ParseIdempotencyKey(R"("a\\b")").value(), "a\\b");
  EXPECT_FALSE(ParseIdempotencyKey("\"\"").ok());          // empty key
  EXPECT_FALSE(ParseIdempotencyKey("\"abc").ok());         // unterminated
  EXPECT_FALSE(ParseIdempotencyKey(R"("a\nb")").ok());     // only \" and \\ escapes exist
  EXPECT_FALSE(ParseIdempotencyKey(R"("a"b")").ok());      // bare quote inside
  EXPECT_FALSE(ParseIdempotencyKey("\"a b\"").ok());       // space is not a visible character
  EXPECT_TRUE(ParseIdempotencyKey("\"" + std::string(255, 'k') + "\"").ok());
  EXPECT_FALSE(ParseIdempotencyKey("\"" + std::string(256, 'k') + "\"").ok());
}

TEST(CanonicalJson, SortsKeysAndDropsWhitespace) {
  EXPECT_EQ(CanonicalJson(R"({ "b": 1, "a": [ 2, {"d": true, "c": null} ] })").value(),
            R"({"a":[2,{"c":null,"d":true}],"b":1})");
}

TEST(CanonicalJson, DifferentValuesDiffer) {
  EXPECT_NE(CanonicalJson(R"({"a":1})").value(), CanonicalJson(R"({"a":2})").value());
  EXPECT_NE(CanonicalJson(R"({"a":"1"})").value(), CanonicalJson(R"({"a":1})").value());
  EXPECT_FALSE(CanonicalJson("{").ok());
}

TEST(CanonicalJson, EscapesStringsMinimally) {
  EXPECT_EQ(CanonicalJson(R"({"s":"a\u0041\n\"é"})").value(), "{\"s\":\"aA\\n\\\"\xc3\xa9\"}");
}

TEST(Fingerprint, IsSha256OfMethodPathAndCanonicalBody) {
  // Known answer, from: printf 'POST\n/v1/charges\n{}' | sha256sum
  EXPECT_EQ(Fingerprint("POST", "/v1/charges", "{}"),
            "a971037f5594d659e99f79ac762ba16c2b1fea9853d3de68f65c9a546a58d2f2");
  EXPECT_EQ(Fingerprint("POST", "/v1/charges", "{}"), Fingerprint("POST", "/v1/charges", "{}"));
  EXPECT_NE(Fingerprint("POST", "/v1/charges", "{}"), Fingerprint("PUT", "/v1/charges", "{}"));
  EXPECT_NE(Fingerprint("POST", "/v1/charges", "{}"), Fingerprint("POST", "/v1/other", "{}"));
}

TEST(ChargeRequest, ParsesAValidBodyAndCanonicalizes) {
  auto r = ParseChargeRequest(R"({"currency":"EUR","amount":100000000000,"account_id":"A-z_9","description":"x"})");
  ASSERT_TRUE(std::holds_alternative<ChargeRequest>(r));
  auto& c = std::get<ChargeRequest>(r);
  EXPECT_EQ(c.account_id, "A-z_9");
  EXPECT_EQ(c.amount, 100000000000);
  EXPECT_EQ(c.currency, "EUR");
  EXPECT_EQ(c.description.value(), "x");
  EXPECT_EQ(c.canonical_body, R"({"account_id":"A-z_9","amount":100000000000,"currency":"EUR","description":"x"})");
}

TEST(ChargeRequest, NullDescriptionIsNoDescription) {
  auto r = ParseChargeRequest(R"({"account_id":"a","amount":1,"currency":"USD","description":null})");
  ASSERT_TRUE(std::holds_alternative<ChargeRequest>(r));
  EXPECT_FALSE(std::get<ChargeRequest>(r).description.has_value());
}

TEST(ChargeRequest, DescriptionLimitCountsCharactersNotBytes) {
  std::string e500;
  for (int i = 0; i < 500; ++i) e500 += "\xc3\xa9";  // 500 characters, 1000 bytes
  auto ok = ParseChargeRequest(R"({"account_id":"a","amount":1,"currency":"USD","description":")" + e500 + "\"}");
  EXPECT_TRUE(std::holds_alternative<ChargeRequest>(ok));
  auto bad = ParseChargeRequest(R"({"account_id":"a","amount":1,"currency":"USD","description":")" + e500 + "x\"}");
  ASSERT_TRUE(std::holds_alternative<FieldError>(bad));
  EXPECT_EQ(std::get<FieldError>(bad).field, "description");
}

TEST(ChargeRequest, NamesTheFieldOfEachError) {
  auto field = [](const std::string& body) {
    auto r = ParseChargeRequest(body);
    return std::holds_alternative<FieldError>(r) ? std::get<FieldError>(r).field : std::string("<ok>");
  };
  EXPECT_EQ(field(R"({"account_id":"a","amount":0,"currency":"USD"})"), "amount");
  EXPECT_EQ(field(R"({"account_id":"a","amount":-1,"currency":"USD"})"), "amount");
  EXPECT_EQ(field(R"({"account_id":"a","amount":100000000001,"currency":"USD"})"), "amount");
  EXPECT_EQ(field(R"({"account_id":"a","amount":18446744073709551615,"currency":"USD"})"), "amount");
  EXPECT_EQ(field(R"({"account_id":"a","amount":1e3,"currency":"USD"})"), "amount");
  EXPECT_EQ(field(R"({"account_id":"a","amount":true,"currency":"USD"})"), "amount");
  EXPECT_EQ(field(R"({"account_id":"","amount":1,"currency":"USD"})"), "account_id");
  EXPECT_EQ(field(R"({"account_id":")" + std::string(65, 'a') + R"(","amount":1,"currency":"USD"})"), "account_id");
  EXPECT_EQ(field(R"({"account_id":"a","amount":1,"currency":"US"})"), "currency");
  EXPECT_EQ(field(R"({"account_id":"a","amount":1})"), "currency");
  EXPECT_EQ(field(R"({"account_id":"a","amount":1,"currency":"USD","metadata":{}})"), "metadata");
  EXPECT_EQ(field("{\"account_id\":\"a\",\"amount\":1,\"currency\":\"USD\",\"description\":\"\xc0\xaf\"}"),
            "description");
  EXPECT_EQ(field("not json"), "");
  EXPECT_EQ(field("\"a string\""), "");
}

TEST(Utf8, RejectsOverlongsSurrogatesAndTruncation) {
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(Decide, FollowsTheStateMachine) {
  using Kind = store::ClaimResult::Kind;
  std::string fp(64, 'a'), other(64, 'b');
  EXPECT_EQ(Decide({Kind::kClaimed, {}, {}, 1}, fp), Decision::kProceed);
  EXPECT_EQ(Decide({Kind::kTakenOver, {}, {}, 1}, fp), Decision::kProceed);
  store::KeyRecord done;
  done.completed = true;
  done.fingerprint = fp;
  EXPECT_EQ(Decide({Kind::kExisting, done, {}, 0}, fp), Decision::kReplay);
  EXPECT_EQ(Decide({Kind::kExisting, done, {}, 0}, other), Decision::kMismatch);
  store::KeyRecord running;
  running.fingerprint = fp;
  running.lease_remaining_ms = 500;
  EXPECT_EQ(Decide({Kind::kExisting, running, {}, 0}, fp), Decision::kInFlight);
  EXPECT_EQ(Decide({Kind::kExisting, running, {}, 0}, other), Decision::kMismatch);
  EXPECT_EQ(DecideCompleted(done, fp), Decision::kReplay);
  EXPECT_EQ(DecideCompleted(done, other), Decision::kMismatch);
  // The key's record was purged; its charge still binds the key to one request.
  store::ChargeRow charged;
  charged.fingerprint = fp;
  EXPECT_EQ(Decide({Kind::kCharged, {}, charged, 0}, fp), Decision::kReplay);
  EXPECT_EQ(Decide({Kind::kCharged, {}, charged, 0}, other), Decision::kMismatch);
  charged.fingerprint.clear();  // written before fingerprints were kept: cannot prove a match
  EXPECT_EQ(Decide({Kind::kCharged, {}, charged, 0}, fp), Decision::kMismatch);
}

TEST(Problem, RendersRfc9457Members) {
  HttpResponse r = RenderProblem({422, "idempotency-key-reused", "Idempotency key reused", "said \"no\""});
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(*r.Header("content-type"), "application/problem+json");
  EXPECT_EQ(r.body, R"({"type":"/problems/idempotency-key-reused","title":"Idempotency key reused","status":422,)"
                    R"("detail":"said \"no\""})");
}

store::KeyRecord CachedRecord() {
  store::KeyRecord rec;
  rec.completed = true;
  rec.fingerprint = std::string(64, 'f');
  rec.response_status = 201;
  rec.response_body = "{\"a\":\"line1\nline2\"}";
  rec.charge_id = "ch_1";
  rec.expires_at_unix_ms = 1234567890123;
  return rec;
}

TEST(HotTierEncoding, RoundTripsBodiesWithNewlines) {
  store::KeyRecord rec = CachedRecord();
  auto back = store::HotTier::Decode("inst-1", store::HotTier::Encode("inst-1", rec));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->response_body, rec.response_body);
  EXPECT_EQ(back->fingerprint, rec.fingerprint);
  EXPECT_EQ(back->response_status, 201);
  EXPECT_EQ(back->charge_id, "ch_1");
  EXPECT_EQ(back->expires_at_unix_ms, 1234567890123);
  EXPECT_FALSE(store::HotTier::Decode("inst-1", "v0\nrubbish").has_value());
  EXPECT_FALSE(store::HotTier::Decode("inst-1", "").has_value());
}

TEST(HotTierEncoding, AValueNamingAnotherInstanceIsRefused) {
  std::string v = store::HotTier::Encode("inst-old", CachedRecord());
  EXPECT_TRUE(store::HotTier::Decode("inst-old", v).has_value());
  EXPECT_FALSE(store::HotTier::Decode("inst-new", v).has_value());
}

TEST(HotTierEncoding, OnlyACompletelyDecodedValueIsUsed) {
  const std::string good = store::HotTier::Encode("i", CachedRecord());
  ASSERT_TRUE(store::HotTier::Decode("i", good).has_value());
  EXPECT_FALSE(store::HotTier::Decode("i", good.substr(0, good.size() - 1)).has_value());  // truncated body
  EXPECT_FALSE(store::HotTier::Decode("i", good + "x").has_value());                      // padded body
  auto with = [&](int line, const std::string& value) {
    std::vector<std::string> parts;
    size_t pos = 0;
    for (int i = 0; i < 7; ++i) {
      size_t nl = good.find('\n', pos);
      parts.push_back(good.substr(pos, nl - pos));
      pos = nl + 1;
    }
    parts[line] = value;
    std::string out;
    for (auto& p : parts) out += p + "\n";
    return out + good.substr(pos);
  };
  EXPECT_FALSE(store::HotTier::Decode("i", with(0, "v1")).has_value());           // old format
  EXPECT_FALSE(store::HotTier::Decode("i", with(2, std::string(63, 'f'))).has_value());  // short fingerprint
  EXPECT_FALSE(store::HotTier::Decode("i", with(3, "201x")).has_value());         // junk after the status
  EXPECT_FALSE(store::HotTier::Decode("i", with(3, "500")).has_value());          // never stored
  EXPECT_FALSE(store::HotTier::Decode("i", with(4, "")).has_value());             // no expiry
  EXPECT_FALSE(store::HotTier::Decode("i", with(5, "ch 1")).has_value());         // not a charge id
  EXPECT_FALSE(store::HotTier::Decode("i", with(6, "-1")).has_value());           // no length
}

}  // namespace
}  // namespace paypath::api
