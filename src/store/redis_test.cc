// Redis URLs: redis://[user[:password]@]host[:port][/db], with clear errors that never show the password.
#include "store/redis.h"

#include <gtest/gtest.h>

namespace paypath::store {
namespace {

TEST(ParseRedisUrl, ReadsUserPasswordHostPortAndDatabase) {
  auto a = ParseRedisUrl("redis://paypath-api:s3cret@10.0.0.7:6380/4");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a->user, "paypath-api");
  EXPECT_EQ(a->password, "s3cret");
  EXPECT_EQ(a->host, "10.0.0.7");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 4);
}

TEST(ParseRedisUrl, APasswordAloneMeansTheDefaultUser) {
  auto a = ParseRedisUrl("redis://:pw@127.0.0.1:6379");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->user, "");
  EXPECT_EQ(a->password, "pw");
  EXPECT_EQ(a->db, 0);
}

TEST(ParseRedisUrl, DefaultsAndPlainForms) {
  auto a = ParseRedisUrl("redis://127.0.0.1:26379");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->port, 26379);
  EXPECT_TRUE(a->password.empty());
  auto b = ParseRedisUrl("redis://cache.internal/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "cache.internal");
  EXPECT_EQ(b->port, 6379);
  auto c = ParseRedisUrl("redis://[::1]:7000/2");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 7000);
  EXPECT_EQ(c->db, 2);
}

TEST(ParseRedisUrl, PercentEscapesInTheUserinfoAreDecoded) {
  auto a = ParseRedisUrl("redis://u%40x:p%3Aw%2F%40d@h:1/0");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a->user, "u@x");
  EXPECT_EQ(a->password, "p:w/@d");
}

TEST(ParseRedisUrl, BadUrlsAreClearErrorsThatNeverShowThePassword) {
  for (const char* url : {"http://h:1", "redis://:topsecret@h:port", "redis://:topsecret@h:1/zero",
                          "redis://:topsecret@h:70000", "redis://u:top%zzsecret@h:1", "redis://user@h:1",
                          "redis://:topsecret@h:1/0?timeout=1", "redis://:topsecret@[::1:1"}) {
    SCOPED_TRACE(url);
    auto a = ParseRedisUrl(url);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(a.error().message.find("topsecret"), std::string::npos) << a.error().message;
    EXPECT_EQ(a.error().message.find("secret"), std::string::npos) << a.error().message;
  }
}

TEST(RedisAddress, DescribeMasksThePassword) {
  auto a = ParseRedisUrl("redis://paypath-api:s3cret@h:1/2");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->Describe(), "redis://paypath-api:***@h:1/2");
  EXPECT_EQ(ParseRedisUrl("redis://h:1")->Describe(), "redis://h:1/0");
}

}  // namespace
}  // namespace paypath::store
