// Known vectors for the derived ids (events/ids.h), computed independently with Python:
//   hashlib.sha256(b"paypath.charge_id.v1\0" + tenant + b"\0" + key).hexdigest()[:32]
//   uuid.uuid5(uuid.UUID(kMessageIdNamespace), event_type + "\0" + charge_id)
#include "events/ids.h"

#include <gtest/gtest.h>

#include "common/limits.h"
#include "events/charge_event.h"

namespace paypath::events {
namespace {

TEST(Ids, ChargeIdIsAPureFunctionOfTenantAndKey) {
  EXPECT_EQ(ChargeId("tenant_a", "key-1"), "ch_3d51dc551362e11047da6e550c1b15dc");
  EXPECT_EQ(ChargeId("tenant_a", "key-2"), "ch_36bf6daa80397586ff8424e6194aa2e1");
  EXPECT_EQ(ChargeId("tenant_b", "key-1"), "ch_4dfc61b0f1a9ac540f152e6da0934054");
  EXPECT_EQ(ChargeId("t", ""), "ch_9c63ac71d0be85c51d9799bbc212cfc2");
  EXPECT_EQ(ChargeId("tenant_a", "key-1"), ChargeId("tenant_a", "key-1"));
}

TEST(Ids, TheTenantIsDelimitedSoNoTwoPairsShareAnInput) {
  EXPECT_EQ(ChargeId("ab", "c"), "ch_8452011a2a2726dcf94f20bcb2bbd089");
  EXPECT_EQ(ChargeId("a", "bc"), "ch_4be8668ff6ed4399f75c2be76e65ec49");
}

TEST(Ids, ChargeIdsKeepTheIdPattern) {
  std::string longest_key(255, '~');
  for (const std::string& id : {ChargeId("tenant_a", "key-1"), ChargeId(std::string(64, 'T'), longest_key)}) {
    EXPECT_TRUE(limits::IsId(id)) << id;
    EXPECT_EQ(id.size(), 35u);
  }
}

TEST(Ids, MessageIdIsTheUuid5OfTypeAndChargeId) {
  EXPECT_EQ(MessageId("ch_3d51dc551362e11047da6e550c1b15dc", kChargeSucceeded),
            "b211380f-a987-5dd5-b79e-a3689b6e546d");
  EXPECT_EQ(MessageId("ch_36bf6daa80397586ff8424e6194aa2e1", kChargeSucceeded),
            "1c851538-f11b-5a8c-897b-0089e8fa7d17");
  EXPECT_EQ(MessageId("ch_4dfc61b0f1a9ac540f152e6da0934054", kChargeSucceeded),
            "6025a72c-40e3-552d-92c1-f43c99726699");
  EXPECT_NE(MessageId("ch_x", "charge.succeeded"), MessageId("ch_x", "charge.refunded"));
}

TEST(Ids, Uuid5MatchesTheRfcNamespaces) {
  // Python: uuid.uuid5(uuid.NAMESPACE_URL, "paypath:outbox-message-id") and uuid.uuid5(uuid.NAMESPACE_DNS,
  // "python.org") (the latter is the example in Python's documentation).
  EXPECT_EQ(Uuid5("6ba7b811-9dad-11d1-80b4-00c04fd430c8", "paypath:outbox-message-id"), kMessageIdNamespace);
  EXPECT_EQ(Uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  EXPECT_EQ(Uuid5("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

}  // namespace
}  // namespace paypath::events
