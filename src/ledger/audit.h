// The audit: a reconciliation of the api's database (charges, outbox) with the ledger's (postings,
// balances, inbox), from the data alone, reported as one row per check. It is the evidence behind "exactly
// once": a lost event shows up as a charge without postings, a double effect as a charge with extra
// postings or a balance that disagrees with its postings, a forged event as a posting without a charge.
//
// Checks (value = number of violations unless noted; a check fails when value > its allowance):
//   charges_posted_once      charges (older than `grace`) without exactly one debit of customer:<account>
//                            and one credit of merchant:<tenant> for the charge's amount and currency, and
//                            nothing else                                                (both databases)
//   postings_have_charge     postings whose charge is not in the api's database           (both databases)
//   postings_sum_to_zero     currencies whose credits minus debits is not zero                    (ledger)
//   balances_match_postings  accounts whose stored balance differs from the sum of their postings  (ledger)
//   inbox_applied_once       inbox ids recorded twice, inbox rows without their charge's postings, and
//                            postings whose message is not in the inbox                           (ledger)
//   outbox_published         unpublished outbox rows older than `max_outbox_age`                     (api)
//   dlq_depth                messages in <queue>.dlq (value = the count; informational unless max_dlq >= 0,
//                            skipped without an AMQP URL)
//
// How it reads: each database in one REPEATABLE READ READ ONLY snapshot, the ledger's taken first (why:
// audit.cc). The two cross-database checks are one merge of two sorted streams: charges in id order, read
// `page_size` at a time by keyset (id > last), and for each page the postings whose charge_id falls in the
// page's id range, also read by keyset in pages, matched by id. Memory is bounded by the page size and
// each side is read once, so it runs on millions of rows; both databases must order text alike (the same
// collation), which the audit checks first. The single-database checks are aggregates run by PostgreSQL.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "broker/topology.h"
#include "common/result.h"

namespace paypath::ledger {

struct AuditOptions {
  std::string pg_url;         // the api's database
  std::string ledger_pg_url;  // the ledger's database
  std::string amqp_url;       // empty: skip the DLQ check
  amqp::Topology topology;
  // Charges younger than this are still on their way to the ledger; 0 = every charge must be posted.
  std::chrono::seconds grace{0};
  // 5 min: far beyond normal relay latency (milliseconds), short enough to catch a stuck relay.
  std::chrono::seconds max_outbox_age{300};
  int64_t max_dlq = -1;  // -1: report the DLQ depth without judging it
  // Charges per page (and postings per page): 10,000 rows of ~100 bytes is about a megabyte per side in
  // memory, and a million charges take 100 round trips per side.
  int page_size = 10000;
};

struct AuditCheck {
  std::string name;
  std::string status;  // "ok", "FAIL", "info", "skipped"
  int64_t value = 0;
  std::string detail;
};

struct AuditReport {
  std::vector<AuditCheck> checks;
  int64_t pages = 0;  // charge pages the merge read (for tests and the table's footer)
  bool ok() const;
};

// Runs every check. Errors (then nothing was judged): kUnavailable (a database unreachable),
// kInvalidArgument (a URL missing, page_size < 1), kFailedPrecondition (the two databases order text
// differently, so the merge would be wrong).
Result<AuditReport> RunAudit(const AuditOptions& options);

std::string RenderTable(const AuditReport& r);
// {"ok":true,"pages":1,"checks":[{"name":...,"status":...,"value":...,"detail":...},...]}
std::string RenderJson(const AuditReport& r);

}  // namespace paypath::ledger
