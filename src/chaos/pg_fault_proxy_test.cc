// The PostgreSQL proxy's frontend framing: which messages are the COMMIT and the claim, however the bytes
// arrive. No sockets (tests/pg_proxy_faults_test.cc runs the proxy against a real server).
#include "chaos/pg_fault_proxy.h"

#include <gtest/gtest.h>

#include <vector>

namespace paypath::chaos {
namespace {

std::string U32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string Msg(char type, const std::string& body) { return std::string(1, type) + U32(4 + body.size()) + body; }
std::string Str(const std::string& s) { return s + std::string(1, '\0'); }
std::string Startup() {
  std::string body = U32(196608) + Str("user") + Str("postgres") + Str("");
  return U32(4 + body.size()) + body;
}
std::string Parse(const std::string& name, const std::string& sql) { return Msg('P', Str(name) + Str(sql) + std::string(2, '\0')); }
std::string Bind(const std::string& stmt) { return Msg('B', Str("") + Str(stmt) + std::string(6, '\0')); }
std::string Execute() { return Msg('E', Str("") + U32(0)); }
std::string Sync() { return Msg('S', ""); }

std::vector<PgFrontendStream::Message> All(PgFrontendStream& s) {
  std::vector<PgFrontendStream::Message> out;
  for (;;) {
    auto m = s.Next();
    EXPECT_TRUE(m.ok());
    if (!m.ok() || !m->has_value()) return out;
    out.push_back(**m);
  }
}

const char* kClaimSql = "INSERT INTO idempotency_keys (tenant) VALUES ($1) ON CONFLICT DO NOTHING";

TEST(PgFrontendStream, AnswersSslRequestsItselfThenReadsTypedMessagesAfterStartup) {
  PgFrontendStream s("INSERT INTO idempotency_keys");
  s.Feed(U32(8) + U32(80877103) + Startup() + Msg('Q', Str("SELECT 1")));
  auto m = All(s);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_TRUE(m[0].ssl_request);
  EXPECT_FALSE(m[1].ssl_request);
  EXPECT_EQ(m[1].type, 0);
  EXPECT_EQ(m[2].type, 'Q');
  EXPECT_FALSE(m[2].commit);
}

TEST(PgFrontendStream, FindsASimpleQueryCommitWhateverItsCaseAndSpacing) {
  PgFrontendStream s("x");
  s.Feed(Startup() + Msg('Q', Str("COMMIT")) + Msg('Q', Str(" commit;\n")) + Msg('Q', Str("BEGIN; INSERT 1; COMMIT")) +
         Msg('Q', Str("COMMIT PREPARED 'x'")));
  auto m = All(s);
  ASSERT_EQ(m.size(), 5u);
  EXPECT_TRUE(m[1].commit);
  EXPECT_TRUE(m[2].commit);
  EXPECT_FALSE(m[3].commit);  // a multi-statement string (migrate) is not the charge's COMMIT
  EXPECT_FALSE(m[4].commit);
}

TEST(PgFrontendStream, MarksTheClaimsExecuteAndTheSyncThatEndsItsBatch) {
  PgFrontendStream s("insert into IDEMPOTENCY_KEYS");
  // PgConn::Exec: Parse+Sync once per connection, then Bind/Describe/Execute/Sync per call.
  s.Feed(Startup() + Parse("s0", kClaimSql) + Sync() + Bind("s0") + Msg('D', "P" + Str("")) + Execute() + Sync());
  auto m = All(s);
  ASSERT_EQ(m.size(), 7u);
  EXPECT_FALSE(m[2].claim_sync);  // the Parse's own Sync executed nothing
  EXPECT_TRUE(m[5].claim_execute);
  EXPECT_TRUE(m[6].claim_sync);
}

TEST(PgFrontendStream, OtherStatementsAndUnnamedReparsesAreNotTheClaim) {
  PgFrontendStream s("INSERT INTO idempotency_keys");
  s.Feed(Startup() + Parse("s1", "SELECT 1") + Bind("s1") + Execute() + Sync() + Parse("", kClaimSql) + Bind("") +
         Execute() + Sync() + Parse("", "SELECT 2") + Bind("") + Execute() + Sync());
  auto m = All(s);
  ASSERT_EQ(m.size(), 13u);
  EXPECT_FALSE(m[3].claim_execute);
  EXPECT_TRUE(m[7].claim_execute);  // the unnamed statement, parsed with the claim's text
  EXPECT_TRUE(m[8].claim_sync);
  EXPECT_FALSE(m[11].claim_execute);  // the unnamed statement now holds other text
}

TEST(PgFrontendStream, WaitsForMessagesSplitAcrossReads) {
  PgFrontendStream s("x");
  std::string all = Startup() + Msg('Q', Str("COMMIT"));
  for (char c : all) {
    s.Feed(std::string(1, c));
    auto m = s.Next();
    ASSERT_TRUE(m.ok());
    if (m->has_value() && (*m)->type == 'Q') {
      EXPECT_TRUE((*m)->commit);
      return;
    }
  }
  FAIL() << "the COMMIT was never assembled";
}

TEST(PgFrontendStream, RefusesAMalformedLength) {
  PgFrontendStream s("x");
  s.Feed(Startup() + std::string("Q") + U32(2));
  ASSERT_TRUE(s.Next().ok());  // the startup packet
  EXPECT_FALSE(s.Next().ok());
}

}  // namespace
}  // namespace paypath::chaos
