// The ledger's write side, all of its SQL: dedup by inbox and double-entry posting inside the caller's
// transaction, the per-message attempt counts of redelivered messages, and the dead-letter record.
//
// ApplyBatch, for each event in order:
//   INSERT INTO inbox (message_id) ... ON CONFLICT DO NOTHING     -- already there: kDuplicate, no effect
//   INSERT the debit (customer:<account_id>) and credit (merchant:<tenant>) postings
//     ON CONFLICT (charge_id, direction) DO NOTHING               -- charge already posted under another
//                                                                  -- message id: kDuplicateCharge, no effect
// A duplicate of either kind is compared with what was posted (one more index probe, duplicates only):
// the same charge id (for a message id already in the inbox) and the same tenant, account, amount and
// currency. A duplicate that disagrees is kChargeConflict: nothing is posted and its inbox row (if this
// call inserted one) is removed again, so a forged or corrupt message neither moves money nor leaves its
// message id behind; the consumer dead-letters it (reason charge_conflict). created_at is not compared: a
// charge committed again after a failover lost its first COMMIT has a new commit time and the same money.
// then, once per batch, the balance deltas are upserted in sorted (tenant, account, currency) order, so two
// consumers touching the same accounts lock them in the same order and cannot deadlock.
// Balances are credits minus debits: the customer's goes down, the merchant's goes up.
//
// The caller commits; if the transaction rolls back nothing of this happened, so the whole batch can be
// retried as is (a retry after an in-doubt COMMIT turns into duplicates, never a second effect).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "events/charge_event.h"
#include "store/pg.h"

namespace paypath::ledger {

// The two accounts a charge moves money between.
std::string DebitAccount(const events::ChargeEvent& e);   // "customer:<account_id>"
std::string CreditAccount(const events::ChargeEvent& e);  // "merchant:<tenant>"

enum class Outcome {
  kApplied,          // postings written, balances moved
  kDuplicate,        // message id already in the inbox
  kDuplicateCharge,  // new message id, but the charge already has postings
  kChargeConflict,   // a duplicate of either kind whose charge id or money fields disagree with the posting
};

// One event's outcome; for kChargeConflict, what disagreed (ids and amounts only: no secrets).
struct Applied {
  Outcome outcome;
  std::string detail;
};

// Applies `events` inside the caller's open transaction, and deletes their delivery_attempts rows (they
// are applied or known duplicates once this commits; an index probe on a table that is normally empty).
// Errors: those of PgConn::Exec (a PostgreSQL data refusal carries its sqlstate, class 22 or 23), and
// kInternal when a charge already has one posting of the pair (the ledger is inconsistent; nothing is
// added). On error the caller must roll back.
Result<std::vector<Applied>> ApplyBatch(store::PgConn& conn, const std::vector<const events::ChargeEvent*>& events);

// The persisted attempt counts of these message ids (absent: never attempted alone). Autocommit.
Result<std::map<std::string, int>> AttemptCounts(store::PgConn& conn, const std::vector<std::string>& message_ids);

// Counts one more attempt at applying `e` alone and commits it at once (autocommit), before the attempt
// itself runs, so the count survives a crash during the attempt. Returns the new count.
Result<int> RecordAttempt(store::PgConn& conn, const events::ChargeEvent& e);

struct DeadLetterRecord {
  std::string message_id;
  std::string reason;  // a dead-letter reason name (consumer.h)
  std::string detail;
  std::string charge_id;  // "" when unknown (stored as NULL)
  std::string tenant;
  int64_t delivery_count = 0;
};

// Inserts one dead_letters row (autocommit). Values are truncated to bounded lengths.
Status RecordDeadLetter(store::PgConn& conn, const DeadLetterRecord& r);

// The latest recorded reason and detail for each of these message ids. Autocommit.
Result<std::map<std::string, std::pair<std::string, std::string>>> DeadLetterReasons(
    store::PgConn& conn, const std::vector<std::string>& message_ids);

}  // namespace paypath::ledger
