// The ledger's write side: dedup by inbox and double-entry posting, inside the caller's transaction.
//
// For each event, in order:
//   INSERT INTO inbox (message_id) ... ON CONFLICT DO NOTHING     -- already there: kDuplicate, no effect
//   INSERT the debit (customer:<account_id>) and credit (merchant:<tenant>) postings
//     ON CONFLICT (charge_id, direction) DO NOTHING               -- charge already posted under another
//                                                                  -- message id: kDuplicateCharge, no effect
// then, once per batch, the balance deltas are upserted in sorted (tenant, account, currency) order, so two
// consumers touching the same accounts lock them in the same order and cannot deadlock.
// Balances are credits minus debits: the customer's goes down, the merchant's goes up.
//
// The caller commits; if the transaction rolls back nothing of this happened, so the whole batch can be
// retried as is (a retry after an in-doubt COMMIT turns into duplicates, never a second effect).
#pragma once

#include <vector>

#include "common/result.h"
#include "ledger/event.h"
#include "store/pg.h"

namespace paypath::ledger {

enum class Outcome {
  kApplied,          // postings written, balances moved
  kDuplicate,        // message id already in the inbox
  kDuplicateCharge,  // new message id, but the charge already has postings
};

// Errors: those of PgConn::Exec (kUnavailable, kAborted: retry the transaction; kInternal: data the schema
// rejects). On error the caller must roll back.
Result<std::vector<Outcome>> ApplyBatch(store::PgConn& conn, const std::vector<ChargeEvent>& events);

}  // namespace paypath::ledger
