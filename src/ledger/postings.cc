#include "ledger/postings.h"

#include <map>
#include <tuple>

namespace paypath::ledger {
namespace {

// --- The consumer's SQL, all of it. ---

constexpr const char* kInboxSql =
    "INSERT INTO inbox (message_id, charge_id) VALUES ($1::uuid, $2) ON CONFLICT (message_id) DO NOTHING";

constexpr const char* kPostSql =
    "INSERT INTO ledger_entries (charge_id, tenant, account_id, direction, amount, currency, message_id) "
    "VALUES ($1, $2, $3, 'debit', $5::bigint, $6, $7::uuid), ($1, $2, $4, 'credit', $5::bigint, $6, $7::uuid) "
    "ON CONFLICT (charge_id, direction) DO NOTHING";

constexpr const char* kBalanceSql =
    "INSERT INTO account_balances (tenant, account_id, currency, balance) VALUES ($1, $2, $3, $4::bigint) "
    "ON CONFLICT (tenant, account_id, currency) DO UPDATE SET balance = account_balances.balance + EXCLUDED.balance";

}  // namespace

Result<std::vector<Outcome>> ApplyBatch(store::PgConn& conn, const std::vector<ChargeEvent>& events) {
  std::vector<Outcome> out;
  out.reserve(events.size());
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> deltas;  // sorted: lock order
  for (const ChargeEvent& e : events) {
    auto inbox = conn.Exec(kInboxSql, {e.message_id, e.charge_id});
    if (!inbox.ok()) return inbox.error();
    if (inbox->affected() == 0) {
      out.push_back(Outcome::kDuplicate);
      continue;
    }
    std::string amount = std::to_string(e.amount);
    auto post = conn.Exec(kPostSql, {e.charge_id, e.tenant, e.debit_account(), e.credit_account(), amount,
                                     e.currency, e.message_id});
    if (!post.ok()) return post.error();
    if (post->affected() == 0) {
      out.push_back(Outcome::kDuplicateCharge);
      continue;
    }
    if (post->affected() != 2)
      return Error::Internal("charge " + e.charge_id + " had half a posting already; refusing to add the other half");
    deltas[{e.tenant, e.debit_account(), e.currency}] -= e.amount;
    deltas[{e.tenant, e.credit_account(), e.currency}] += e.amount;
    out.push_back(Outcome::kApplied);
  }
  for (const auto& [key, delta] : deltas) {
    auto r = conn.Exec(kBalanceSql, {std::get<0>(key), std::get<1>(key), std::get<2>(key), std::to_string(delta)});
    if (!r.ok()) return r.error();
  }
  return out;
}

}  // namespace paypath::ledger
