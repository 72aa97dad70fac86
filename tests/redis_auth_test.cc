// Redis with authentication: a private redis-server started by the fixture from a config file (mode 0600;
// the passwords never appear on a command line), with an admin `default` user and a `paypath-api` ACL user
// limited to `~pp:*` and the commands the hot tier needs. The URL's user, password and database number
// must be honoured; a wrong or missing password must be an error the hot tier survives.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/clock.h"
#include "common/random.h"
#include "store/hot_tier.h"
#include "store/redis.h"
#include "testing.h"

namespace paypath {
namespace {

using std::chrono::milliseconds;

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

class RedisAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    admin_pw_ = new std::string(SystemRandom::Instance().Hex128());
    api_pw_ = new std::string(SystemRandom::Instance().Hex128());
    port_ = FreePort();
    char tmpl[] = "/tmp/pp-redis-auth-XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    std::string conf = *dir_ + "/redis.conf";
    {
      std::ofstream f(conf);
      f << "port " << port_ << "\nbind 127.0.0.1\ndir " << *dir_ << "\nsave \"\"\nappendonly no\n"
        << "user default on >" << *admin_pw_ << " ~* &* +@all\n"
        << "user paypath-api on >" << *api_pw_ << " ~pp:* resetchannels -@all +get +set +del +ping +select +auth +hello\n";
    }
    chmod(conf.c_str(), 0600);
    server_ = new testing::Child({"/usr/bin/redis-server", conf}, {}, *dir_ + "/redis.log");
    bool up = testing::WaitUntil([] { return Admin() != nullptr; }, std::chrono::seconds(10));
    ASSERT_TRUE(up) << "redis-server did not come up on port " << port_;
  }
  static void TearDownTestSuite() {
    delete server_;  // SIGKILL: a throwaway server
    std::string out;
    testing::RunShell("rm -rf " + *dir_, &out);
  }

  // An admin connection, authenticated by hand (independently of the URL handling under test).
  static std::unique_ptr<store::RedisConn> Admin(int db = 0) {
    store::RedisAddress a;
    a.port = port_;
    auto c = store::RedisConn::Connect(a, milliseconds(200));
    if (!c.ok()) return nullptr;
    if (!c.value()->Command({"AUTH", "default", *admin_pw_}).ok()) return nullptr;
    if (!c.value()->Command({"SELECT", std::to_string(db)}).ok()) return nullptr;
    return std::move(c.value());
  }

  static std::string Url(const std::string& userinfo, int db) {
    return "redis://" + userinfo + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }

  static std::string* admin_pw_;
  static std::string* api_pw_;
  static std::string* dir_;
  static uint16_t port_;
  static testing::Child* server_;
};

std::string* RedisAuthTest::admin_pw_ = nullptr;
std::string* RedisAuthTest::api_pw_ = nullptr;
std::string* RedisAuthTest::dir_ = nullptr;
uint16_t RedisAuthTest::port_ = 0;
testing::Child* RedisAuthTest::server_ = nullptr;

TEST_F(RedisAuthTest, TheUrlsUserPasswordAndDatabaseAreHonoured) {
  auto admin3 = Admin(3);
  ASSERT_TRUE(admin3);
  ASSERT_TRUE(admin3->Command({"SET", "pp:auth-test", "in db 3"}).ok());
  auto addr = store::ParseRedisUrl(Url("paypath-api:" + *api_pw_ + "@", 3));
  ASSERT_TRUE(addr.ok()) << addr.error().ToString();
  auto c = store::RedisConn::Connect(addr.value(), milliseconds(500));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto v = c.value()->Get("pp:auth-test");
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ(**v, "in db 3");
  // The ACL holds: the api's user cannot touch keys outside pp:*.
  EXPECT_FALSE(c.value()->Get("other").ok());
}

TEST_F(RedisAuthTest, APasswordWithoutAUserAuthenticatesTheDefaultUser) {
  auto addr = store::ParseRedisUrl(Url(":" + *admin_pw_ + "@", 0));
  ASSERT_TRUE(addr.ok()) << addr.error().ToString();
  auto c = store::RedisConn::Connect(addr.value(), milliseconds(500));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_TRUE(c.value()->Get("anything").ok());
}

TEST_F(RedisAuthTest, AWrongOrMissingPasswordIsAClearErrorThatNeverShowsThePassword) {
  for (const std::string& userinfo : {std::string("paypath-api:wrong-secret@"), std::string("")}) {
    SCOPED_TRACE(userinfo);
    auto addr = store::ParseRedisUrl(Url(userinfo, 0));
    ASSERT_TRUE(addr.ok());
    auto c = store::RedisConn::Connect(addr.value(), milliseconds(500));
    std::string error;
    if (!c.ok()) {
      error = c.error().ToString();
    } else {
      auto v = c.value()->Get("pp:x");
      ASSERT_FALSE(v.ok()) << "an unauthenticated GET succeeded";
      error = v.error().ToString();
    }
    EXPECT_EQ(error.find("wrong-secret"), std::string::npos) << error;
  }
}

TEST_F(RedisAuthTest, TheHotTierSurvivesAWrongPasswordAndWorksWithTheRightOne) {
  store::KeyRecord rec;
  {
    store::HotTier wrong(Url("paypath-api:wrong-secret@", 2), "ns", SystemClock::Instance(), milliseconds(200),
                         milliseconds(0));
    EXPECT_EQ(wrong.Get("tenant_a", "k", &rec), store::HotTier::Lookup::kError);
    EXPECT_EQ(wrong.Get("tenant_a", "k", &rec), store::HotTier::Lookup::kError);
    store::HotTier missing(Url("", 2), "ns", SystemClock::Instance(), milliseconds(200), milliseconds(0));
    EXPECT_EQ(missing.Get("tenant_a", "k", &rec), store::HotTier::Lookup::kError);
  }
  store::HotTier right(Url("paypath-api:" + *api_pw_ + "@", 2), "ns", SystemClock::Instance());
  EXPECT_EQ(right.Get("tenant_a", "k", &rec), store::HotTier::Lookup::kMiss);
  // A round trip as the ACL user, in database 2 only.
  rec.completed = true;
  rec.fingerprint = std::string(64, 'c');
  rec.response_status = 201;
  rec.response_body = "{}";
  rec.charge_id = "ch_auth";
  rec.expires_at_unix_ms = 4102444800000;
  rec.ttl_ms = 60000;
  right.Put("tenant_a", "k", rec);
  store::KeyRecord back;
  ASSERT_EQ(right.Get("tenant_a", "k", &back), store::HotTier::Lookup::kHit);
  EXPECT_EQ(back.charge_id, "ch_auth");
  auto admin2 = Admin(2);
  ASSERT_TRUE(admin2);
  auto ttl = admin2->Command({"PTTL", store::HotTier::RedisKey("ns", "tenant_a", "k")});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(std::stoll(ttl.value()), 0);
  EXPECT_LE(std::stoll(ttl.value()), 60000);  // the TTL the database computed, not the api's clock
  auto admin0 = Admin(0);
  ASSERT_TRUE(admin0);
  EXPECT_EQ(admin0->Command({"EXISTS", store::HotTier::RedisKey("ns", "tenant_a", "k")}).value(), "0");
}

}  // namespace
}  // namespace paypath
