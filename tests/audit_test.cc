// `paypath audit`: passes on a ledger built by the real relay and consumer, and fails, naming the check, on
// a ledger corrupted on purpose in each way it is meant to catch.
#include <gtest/gtest.h>

#include "ledger_fixture.h"

namespace paypath::testing {
namespace {

class AuditTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fx_ = new LedgerFixture("paypath_audit_test"); }
  static void TearDownTestSuite() { delete fx_; }
  void SetUp() override {
    fx_->Reset();
    fx_->Seed(4, "tenant_a", 1000, "USD");
    fx_->Seed(2, "tenant_b", 700, "EUR");
    metrics::Registry rreg, creg;
    outbox::Relay relay(fx_->RelayOpts(rreg), SystemClock::Instance(), fx_->random());
    ASSERT_TRUE(relay.RunOnce().ok());
    ledger::Consumer consumer(fx_->ConsumerOpts(creg), SystemClock::Instance(), fx_->random());
    ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == 6; }));
  }
  // Runs the audit, expects `code`, and expects check `name` to have `status`.
  void ExpectAudit(int code, const std::string& name, const std::string& status, const std::string& extra = "") {
    std::string out;
    EXPECT_EQ(fx_->Audit(&out, extra), code) << out;
    EXPECT_NE(out.find("\"name\":\"" + name + "\",\"status\":\"" + status + "\""), std::string::npos) << out;
  }
  static LedgerFixture* fx_;
};
LedgerFixture* AuditTest::fx_ = nullptr;

TEST_F(AuditTest, PassesOnAConsistentLedgerAndPrintsATable) {
  ExpectAudit(0, "charges_posted_once", "ok");
  std::string out;
  int st = RunShell(PaypathBinary() + " audit --pg-url '" + fx_->url() + "' --queue " + fx_->queue(),
                    &out);
  EXPECT_EQ(st, 0) << out;
  for (const char* check : {"charges_posted_once", "postings_have_charge", "postings_sum_to_zero",
                            "balances_match_postings", "inbox_applied_once", "outbox_published", "dlq_depth"})
    EXPECT_NE(out.find(check), std::string::npos) << out;
  EXPECT_NE(out.find("audit: PASS"), std::string::npos) << out;
}

TEST_F(AuditTest, FailsOnABalanceThatDisagreesWithItsPostings) {
  (void)QueryScalar(fx_->url(), "UPDATE account_balances SET balance = balance + 1 WHERE account_id = 'merchant:tenant_b'");
  ExpectAudit(1, "balances_match_postings", "FAIL");
}

TEST_F(AuditTest, FailsOnAMissingPosting) {
  (void)QueryScalar(fx_->url(),
                    "DELETE FROM ledger_entries WHERE id = (SELECT min(id) FROM ledger_entries WHERE direction = 'credit')");
  ExpectAudit(1, "charges_posted_once", "FAIL");
  ExpectAudit(1, "postings_sum_to_zero", "FAIL");
  ExpectAudit(1, "balances_match_postings", "FAIL");
}

TEST_F(AuditTest, FailsOnASecondEffect) {
  // A second posting pair for a charge (as if dedup had failed), balances moved accordingly.
  (void)QueryScalar(fx_->url(), "ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_charge_id_direction_key");
  (void)QueryScalar(fx_->url(),
                    "INSERT INTO ledger_entries (charge_id, tenant, account_id, direction, amount, currency) "
                    "SELECT charge_id, tenant, account_id, direction, amount, currency FROM ledger_entries "
                    "WHERE charge_id = (SELECT min(charge_id) FROM ledger_entries)");
  ExpectAudit(1, "charges_posted_once", "FAIL");
  (void)QueryScalar(fx_->url(), "DELETE FROM ledger_entries WHERE id > (SELECT min(id) + 11 FROM ledger_entries)");
  (void)QueryScalar(fx_->url(), "ALTER TABLE ledger_entries ADD UNIQUE (charge_id, direction)");
}

TEST_F(AuditTest, FailsOnAnInboxRowWithoutItsEffect) {
  (void)QueryScalar(fx_->url(), "INSERT INTO inbox (message_id, charge_id) VALUES (gen_random_uuid(), 'ch_ghost')");
  ExpectAudit(1, "inbox_applied_once", "FAIL");
}

TEST_F(AuditTest, FailsOnAStaleUnpublishedOutboxRow) {
  fx_->Seed(1);
  (void)QueryScalar(fx_->url(), "UPDATE outbox SET created_at = now() - interval '1 hour' WHERE published_at IS NULL");
  // The new charge is not posted yet either: give it grace so only the outbox check speaks.
  ExpectAudit(1, "outbox_published", "FAIL", "--grace 7200");
  ExpectAudit(0, "outbox_published", "ok", "--grace 7200 --max-outbox-age 7200");
}

TEST_F(AuditTest, CannotRunWithoutTheDatabase) {
  std::string out;
  int st = RunShell(PaypathBinary() + " audit --pg-url postgresql://postgres@127.0.0.1:1/none", &out);
  EXPECT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 2) << out;
}

}  // namespace
}  // namespace paypath::testing
