// `paypath audit`: a reconciliation of the api database with the ledger database. Passes on a ledger built
// by the real relay and consumer, and fails, naming the check, on data corrupted on purpose on either side
// in each way it is meant to catch; and gives the same answers whatever its page size.
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
    // A test that dropped the unique pair constraint restores it here, on clean tables.
    (void)QueryScalar(fx_->ledger_url(), "ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_charge_id_direction_key "
                                         "UNIQUE (charge_id, direction)");
    fx_->Seed(4, "tenant_a", 1000, "USD");
    fx_->Seed(2, "tenant_b", 700, "EUR");
    Apply(6);
  }
  // Relays everything unpublished and consumes until `inbox` rows exist.
  void Apply(int64_t inbox) {
    metrics::Registry rreg, creg;
    outbox::Relay relay(fx_->RelayOpts(rreg), SystemClock::Instance(), fx_->random());
    ASSERT_TRUE(relay.RunOnce().ok());
    ledger::Consumer consumer(fx_->ConsumerOpts(creg), SystemClock::Instance(), fx_->random());
    ASSERT_TRUE(LedgerFixture::StepUntil(consumer, [&] { return fx_->InboxRows() == inbox; }));
  }
  // Runs the audit, expects `code`, and expects check `name` to have `status`.
  void ExpectAudit(int code, const std::string& name, const std::string& status, const std::string& extra = "") {
    std::string out;
    EXPECT_EQ(fx_->Audit(&out, extra), code) << out;
    EXPECT_NE(out.find("\"name\":\"" + name + "\",\"status\":\"" + status + "\""), std::string::npos) << out;
  }
  // The value of check `name` in the audit's JSON, -1 if absent.
  static int64_t Value(const std::string& json, const std::string& name) {
    std::string key = "\"name\":\"" + name + "\",\"status\":\"";
    size_t p = json.find(key);
    if (p == std::string::npos) return -1;
    p = json.find("\"value\":", p);
    return std::strtoll(json.c_str() + p + 8, nullptr, 10);
  }
  static std::string Ledger(const std::string& sql) { return QueryScalar(fx_->ledger_url(), sql); }
  static std::string Api(const std::string& sql) { return QueryScalar(fx_->url(), sql); }
  static LedgerFixture* fx_;
};
LedgerFixture* AuditTest::fx_ = nullptr;

TEST_F(AuditTest, PassesOnAConsistentLedgerAndPrintsATable) {
  ExpectAudit(0, "charges_posted_once", "ok");
  std::string out;
  int st = RunShell(PaypathBinary() + " audit --pg-url '" + fx_->url() + "' --ledger-pg-url '" + fx_->ledger_url() +
                        "' --queue " + fx_->queue(),
                    &out);
  EXPECT_EQ(st, 0) << out;
  for (const char* check : {"charges_posted_once", "postings_have_charge", "postings_sum_to_zero",
                            "balances_match_postings", "inbox_applied_once", "outbox_published", "dlq_depth"})
    EXPECT_NE(out.find(check), std::string::npos) << out;
  EXPECT_NE(out.find("audit: PASS"), std::string::npos) << out;
  EXPECT_NE(out.find("of 6 charges (6 older than the grace)"), std::string::npos) << out;
}

TEST_F(AuditTest, FailsOnABalanceThatDisagreesWithItsPostings) {
  (void)Ledger("UPDATE account_balances SET balance = balance + 1 WHERE account_id = 'merchant:tenant_b'");
  ExpectAudit(1, "balances_match_postings", "FAIL");
}

TEST_F(AuditTest, FailsOnAMissingPosting) {
  (void)Ledger("DELETE FROM ledger_entries WHERE id = (SELECT min(id) FROM ledger_entries WHERE direction = 'credit')");
  ExpectAudit(1, "charges_posted_once", "FAIL");
  ExpectAudit(1, "postings_sum_to_zero", "FAIL");
  ExpectAudit(1, "balances_match_postings", "FAIL");
}

TEST_F(AuditTest, FailsOnASecondEffect) {
  // A second posting pair for a charge (as if dedup had failed).
  (void)Ledger("ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_charge_id_direction_key");
  (void)Ledger("INSERT INTO ledger_entries (charge_id, tenant, account_id, direction, amount, currency, message_id) "
               "SELECT charge_id, tenant, account_id, direction, amount, currency, message_id FROM ledger_entries "
               "WHERE charge_id = (SELECT min(charge_id) FROM ledger_entries)");
  ExpectAudit(1, "charges_posted_once", "FAIL");
  ExpectAudit(1, "postings_have_charge", "ok");
}

TEST_F(AuditTest, FailsOnAPostingWhoseChargeIsNotInTheApiDatabase) {
  // The postings of a charge the api never committed (a forged or misrouted event): only the api side knows.
  (void)Api("DELETE FROM charges WHERE id = (SELECT min(id) FROM charges)");
  ExpectAudit(1, "postings_have_charge", "FAIL");
  std::string out;
  fx_->Audit(&out);
  EXPECT_EQ(Value(out, "postings_have_charge"), 2) << out;
  EXPECT_EQ(Value(out, "charges_posted_once"), 0) << out;
}

TEST_F(AuditTest, FailsOnAPostingThatDisagreesWithItsCharge) {
  // Both sides are internally consistent; only the two together show the ledger moved another amount.
  (void)Api("UPDATE charges SET amount = amount + 1 WHERE id = (SELECT max(id) FROM charges)");
  ExpectAudit(1, "charges_posted_once", "FAIL");
  ExpectAudit(1, "postings_sum_to_zero", "ok");
  ExpectAudit(1, "balances_match_postings", "ok");
}

TEST_F(AuditTest, FailsOnAChargeWithoutPostingsOnlyAfterTheGrace) {
  fx_->Seed(1);  // committed, never relayed nor posted
  ExpectAudit(1, "charges_posted_once", "FAIL");
  ExpectAudit(0, "charges_posted_once", "ok", "--grace 3600");
}

TEST_F(AuditTest, FailsOnAnInboxRowWithoutItsEffect) {
  (void)Ledger("INSERT INTO inbox (message_id, charge_id) VALUES (gen_random_uuid(), 'ch_ghost')");
  ExpectAudit(1, "inbox_applied_once", "FAIL");
}

TEST_F(AuditTest, FailsOnAStaleUnpublishedOutboxRow) {
  fx_->Seed(1);
  (void)Api("UPDATE outbox SET created_at = now() - interval '1 hour' WHERE published_at IS NULL");
  // The new charge is not posted yet either: give it grace so only the outbox check speaks.
  ExpectAudit(1, "outbox_published", "FAIL", "--grace 7200");
  ExpectAudit(0, "outbox_published", "ok", "--grace 7200 --max-outbox-age 7200");
}

// Corruption at the first and last charge, in the middle, before the first charge id, between two charges
// and after the last one, plus a duplicated pair: every page size must find exactly the same, including a
// page of one row (every boundary is a page boundary) and a page bigger than the data.
TEST_F(AuditTest, PagesThroughBothDatabasesAndFindsTheSameWithAnyPageSize) {
  fx_->Seed(19, "tenant_a", 500, "GBP");
  Apply(25);
  (void)Ledger("DELETE FROM ledger_entries WHERE charge_id = (SELECT min(charge_id) FROM ledger_entries)");
  (void)Ledger("DELETE FROM ledger_entries WHERE charge_id = (SELECT max(charge_id) FROM ledger_entries)");
  (void)Ledger("UPDATE ledger_entries SET amount = amount + 1 WHERE direction = 'debit' AND charge_id = "
               "(SELECT charge_id FROM ledger_entries ORDER BY charge_id OFFSET 20 LIMIT 1)");
  (void)Ledger("ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_charge_id_direction_key");
  (void)Ledger("INSERT INTO ledger_entries (charge_id, tenant, account_id, direction, amount, currency, message_id) "
               "SELECT charge_id, tenant, account_id, direction, amount, currency, message_id FROM ledger_entries "
               "WHERE charge_id = (SELECT charge_id FROM ledger_entries ORDER BY charge_id OFFSET 10 LIMIT 1)");
  // Orphans: before every charge id ("ch_" < "ch_<hex>"), between two ("ch_8"), after all ("zz_").
  for (const char* orphan : {"ch_", "ch_8", "zz_orphan"})
    (void)Ledger(std::string("INSERT INTO ledger_entries (charge_id, tenant, account_id, direction, amount, currency, "
                             "message_id) VALUES ('") + orphan + "', 'tenant_a', 'customer:x', 'debit', 5, 'USD', gen_random_uuid())");
  for (int page : {1, 2, 3, 7, 10000}) {
    std::string out;
    EXPECT_EQ(fx_->Audit(&out, "--page-size " + std::to_string(page)), 1) << out;
    EXPECT_EQ(Value(out, "charges_posted_once"), 4) << "page size " << page << ": " << out;
    EXPECT_EQ(Value(out, "postings_have_charge"), 3) << "page size " << page << ": " << out;
    int64_t pages = std::strtoll(out.c_str() + out.find("\"pages\":") + 8, nullptr, 10);
    EXPECT_EQ(pages, 25 / page + 1) << "page size " << page;
  }
}

TEST_F(AuditTest, CannotRunWithoutBothDatabases) {
  std::string out;
  int st = RunShell(PaypathBinary() + " audit --pg-url postgresql://postgres@127.0.0.1:1/none --ledger-pg-url '" +
                        fx_->ledger_url() + "'",
                    &out);
  EXPECT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 2) << out;
  st = RunShell("env -u PAYPATH_LEDGER_PG_URL " + PaypathBinary() + " audit --pg-url '" + fx_->url() + "'", &out);
  EXPECT_EQ(WEXITSTATUS(st), 2) << out;
  EXPECT_NE(out.find("--ledger-pg-url"), std::string::npos) << out;
}

}  // namespace
}  // namespace paypath::testing
