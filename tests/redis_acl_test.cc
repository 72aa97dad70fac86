// The stack's Redis requires a password, and the api's ACL user may touch only the hot tier's keys (~pp:*)
// with the few commands the hot tier sends (scripts/stack writes the ACL; docs/design.md says why each).
#include <gtest/gtest.h>

#include "store/redis.h"
#include "testing.h"

namespace paypath::testing {
namespace {

constexpr std::chrono::milliseconds kTimeout{2000};

std::unique_ptr<store::RedisConn> ConnectOrDie(const std::string& url) {
  auto addr = store::ParseRedisUrl(url);
  EXPECT_TRUE(addr.ok());
  if (!addr.ok()) return nullptr;
  auto c = store::RedisConn::Connect(addr.value(), kTimeout);
  EXPECT_TRUE(c.ok()) << c.error().ToString();
  return c.ok() ? std::move(c.value()) : nullptr;
}

TEST(RedisAcl, AClientWithoutThePasswordIsRefused) {
  auto addr = store::ParseRedisUrl(RedisUrl());
  ASSERT_TRUE(addr.ok());
  store::RedisAddress anonymous;
  anonymous.host = addr->host;
  anonymous.port = addr->port;
  auto c = store::RedisConn::Connect(anonymous, kTimeout);
  // Either the connect (which may send commands) or the first command must be refused with NOAUTH.
  if (c.ok()) {
    auto r = c.value()->Command({"GET", "pp:acl-test"});
    ASSERT_FALSE(r.ok()) << "an unauthenticated client read a key";
    EXPECT_NE(r.error().message.find("NOAUTH"), std::string::npos) << r.error().ToString();
  }
}

TEST(RedisAcl, TheApiUserWorksOnHotTierKeys) {
  auto c = ConnectOrDie(RedisUrl());
  ASSERT_NE(c, nullptr);
  auto set = c->Set("pp:acl-test:key", "v", std::chrono::seconds(10));
  ASSERT_TRUE(set.ok()) << set.error().ToString();
  auto got = c->Get("pp:acl-test:key");
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->value_or(""), "v");
  EXPECT_TRUE(c->Del("pp:acl-test:key").ok());
  EXPECT_EQ(c->Command({"PING"}).value(), "PONG");
}

TEST(RedisAcl, TheApiUserCannotFlushOrTouchOtherKeys) {
  auto c = ConnectOrDie(RedisUrl());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Set("pp:acl-test:survivor", "v", std::chrono::seconds(30)).ok());
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {"FLUSHALL"}, {"FLUSHDB"}, {"CONFIG", "GET", "*"}, {"KEYS", "*"}, {"SET", "other:key", "v"},
           {"GET", "other:key"}, {"ACL", "LIST"}, {"SHUTDOWN"}}) {
    auto r = c->Command(argv);
    ASSERT_FALSE(r.ok()) << argv[0] << " was allowed for the api's user";
    EXPECT_NE(r.error().message.find("NOPERM"), std::string::npos) << argv[0] << ": " << r.error().ToString();
  }
  auto admin = ConnectOrDie(RedisAdminUrl());
  ASSERT_NE(admin, nullptr);
  auto survivor = admin->Get("pp:acl-test:survivor");
  ASSERT_TRUE(survivor.ok());
  EXPECT_EQ(survivor->value_or(""), "v") << "a refused FLUSHALL emptied Redis";
  EXPECT_EQ(admin->Command({"ACL", "WHOAMI"}).value(), "default");
  EXPECT_TRUE(admin->Del("pp:acl-test:survivor").ok());
}

}  // namespace
}  // namespace paypath::testing
