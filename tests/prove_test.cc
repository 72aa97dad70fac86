// A short proof run inside `make test`: 200 operations with every fault (duplicates, concurrent
// duplicates, eaten responses, a relay crash after publish, a consumer crash after commit, and the
// database's own faults: three COMMIT answers cut after reaching PostgreSQL, a PostgreSQL restart under
// load, the ledger database read-only for 3 s while a backlog waits), judged by the run's own verdict,
// which this test then re-checks from the report it wrote.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "testing.h"

namespace paypath {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ProveRun, TwoHundredOperationsWithEveryFaultAreAppliedExactlyOnce) {
  std::string report = "/tmp/paypath-prove-test-report";
  std::string out;
  int st = testing::RunShell(testing::PaypathBinary() + " prove --operations 200 --concurrency 16 --database "
                             "paypath_prove_test --report " + report, &out);
  std::string tail = out.size() > 6000 ? out.substr(out.size() - 6000) : out;
  ASSERT_EQ(st, 0) << tail;
  EXPECT_NE(out.find("VERDICT: PASS"), std::string::npos) << tail;
  std::string verdict = ReadFile(report + "/verdict.json");
  // 200 operations + 3 scenario steps that each create one charge.
  EXPECT_NE(verdict.find("\"pass\":true"), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("\"charges_in_db\":203"), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("\"ledger_effects\":203"), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("\"relay_crashes\":1"), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("\"consumer_crashes\":1"), std::string::npos) << verdict;
  EXPECT_EQ(verdict.find("\"responses_eaten\":0"), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("\"commit_cuts\":3,"), std::string::npos) << verdict;
  // 3 cut COMMITs, the restart, the read-only window, the relay's and the consumer's crash.
  EXPECT_NE(verdict.find("\"faults_marked\":7}"), std::string::npos) << verdict;
  for (const char* row : {"COMMIT answers cut after reaching PostgreSQL", "PostgreSQL restarted under load",
                          "consumer writes refused as read-only (25006)", "backlog waiting when read-only lifted"}) {
    size_t at = out.find(row);
    ASSERT_NE(at, std::string::npos) << row << "\n" << tail;
    std::string line = out.substr(at, out.find('\n', at) - at);
    EXPECT_NE(line.find("  ok  "), std::string::npos) << line;
  }
  // The data itself, independent of the prover: one debit and one credit per charge.
  std::string db = testing::PgUrl();
  db = db.substr(0, db.rfind('/') + 1) + "paypath_prove_test";
  EXPECT_EQ(testing::QueryScalar(db, "SELECT count(*) FROM charges"), "203");
  // The postings are in the run's ledger database.
  EXPECT_EQ(testing::QueryScalar(db + "_ledger", "SELECT count(*) FROM (SELECT charge_id FROM ledger_entries GROUP BY charge_id "
                                     "HAVING count(*) FILTER (WHERE direction='debit') = 1 AND "
                                     "count(*) FILTER (WHERE direction='credit') = 1) x"),
            "203");
  std::string html = ReadFile(report + "/report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("<rect class='fault'"), std::string::npos) << "the restart and read-only window are not drawn";
  EXPECT_NE(html.find("ledger database read-only"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);  // self-contained
  EXPECT_FALSE(ReadFile(report + "/transcript.jsonl").empty());
  EXPECT_NE(ReadFile(report + "/metrics/api.prom").find("paypath_charges_created_total"), std::string::npos);
}

}  // namespace
}  // namespace paypath
