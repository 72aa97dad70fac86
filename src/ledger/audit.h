// The audit: checks the ledger's invariants from the data alone and reports each as a row. It is the
// evidence behind "exactly once": a lost event shows up as a charge without postings, a double effect as a
// charge with extra postings or a balance that disagrees with its postings.
//
// Checks (value = number of violations unless noted; a check fails when value > its allowance):
//   charges_posted_once      charges (older than `grace`) without exactly one debit of customer:<account>
//                            and one credit of merchant:<tenant> for the charge's amount and currency
//   postings_have_charge     postings whose charge does not exist
//   postings_sum_to_zero     currencies whose credits minus debits is not zero
//   balances_match_postings  accounts whose stored balance differs from the sum of their postings
//   inbox_applied_once       inbox message ids recorded twice, or recorded without their charge's postings
//   outbox_published         unpublished outbox rows older than `max_outbox_age`
//   dlq_depth                messages in <queue>.dlq (value = the count; informational unless max_dlq >= 0,
//                            skipped without an AMQP URL)
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "broker/topology.h"

namespace paypath::ledger {

struct AuditOptions {
  std::string pg_url;
  std::string amqp_url;  // empty: skip the DLQ check
  amqp::Topology topology;
  // Charges younger than this are still on their way to the ledger; 0 = every charge must be posted.
  std::chrono::seconds grace{0};
  // 5 min: far beyond normal relay latency (milliseconds), short enough to catch a stuck relay.
  std::chrono::seconds max_outbox_age{300};
  int64_t max_dlq = -1;  // -1: report the DLQ depth without judging it
};

struct AuditCheck {
  std::string name;
  std::string status;  // "ok", "FAIL", "info", "skipped"
  int64_t value = 0;
  std::string detail;
};

struct AuditReport {
  std::vector<AuditCheck> checks;
  bool ok() const;
};

// Runs every check. Errors: kUnavailable (database unreachable) — then nothing was checked.
Result<AuditReport> RunAudit(const AuditOptions& options);

std::string RenderTable(const AuditReport& r);
// {"ok":true,"checks":[{"name":...,"status":...,"value":...,"detail":...},...]}
std::string RenderJson(const AuditReport& r);

}  // namespace paypath::ledger
