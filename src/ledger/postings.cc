#include "ledger/postings.h"

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

// What the ledger holds for a message id already in the inbox (inserted earlier, or by this transaction):
// its charge id and that charge's debit posting's money fields.
constexpr const char* kPostedSql =
    "SELECT i.charge_id, e.tenant, e.account_id, e.amount, e.currency FROM inbox i "
    "LEFT JOIN ledger_entries e ON e.charge_id = i.charge_id AND e.direction = 'debit' WHERE i.message_id = $1::uuid";

constexpr const char* kForgetInboxSql = "DELETE FROM inbox WHERE message_id = $1::uuid";

constexpr const char* kBalanceSql =
    "INSERT INTO account_balances (tenant, account_id, currency, balance) VALUES ($1, $2, $3, $4::bigint) "
    "ON CONFLICT (tenant, account_id, currency) DO UPDATE SET balance = account_balances.balance + EXCLUDED.balance";

constexpr const char* kClearAttemptsSql = "DELETE FROM delivery_attempts WHERE message_id = ANY($1::uuid[])";

constexpr const char* kAttemptCountsSql =
    "SELECT message_id::text, attempts FROM delivery_attempts WHERE message_id = ANY($1::uuid[])";

constexpr const char* kRecordAttemptSql =
    "INSERT INTO delivery_attempts (message_id, charge_id, attempts) VALUES ($1::uuid, $2, 1) "
    "ON CONFLICT (message_id) DO UPDATE SET attempts = delivery_attempts.attempts + 1, last_attempt_at = now() "
    "RETURNING attempts";

constexpr const char* kDeadLetterSql =
    "INSERT INTO dead_letters (message_id, reason, detail, charge_id, tenant, delivery_count) "
    "VALUES ($1, $2, $3, $4, $5, $6::bigint)";

constexpr const char* kDeadLetterReasonsSql =
    "SELECT DISTINCT ON (message_id) message_id, reason, detail FROM dead_letters "
    "WHERE message_id = ANY($1::text[]) ORDER BY message_id, id DESC";

// A PostgreSQL array literal of UUIDs or plain ids: callers pass only values that match those patterns
// (events::Decode checked them) or text that is quoted here.
std::string ArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ",";
    out += "\"";
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

store::Param Nullable(const std::string& s) { return s.empty() ? store::Param() : store::Param(s); }

// Dead-letter values come from messages that may be forged: bounded, so a huge header cannot bloat a row.
std::string Bounded(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n); }

}  // namespace

std::string DebitAccount(const events::ChargeEvent& e) { return "customer:" + e.account_id; }
std::string CreditAccount(const events::ChargeEvent& e) { return "merchant:" + e.tenant; }

namespace {

// "" when `e` agrees with what the ledger holds for its message id / charge, else what disagrees.
Result<std::string> Disagreement(store::PgConn& conn, const events::ChargeEvent& e) {
  auto r = conn.Exec(kPostedSql, {e.message_id});
  if (!r.ok()) return r.error();
  if (r->rows() == 0) return std::string();
  const std::string charge_id = r->GetString(0, 0);
  if (charge_id != e.charge_id)
    return "message id already applied for charge " + charge_id + ", this message names charge " + e.charge_id;
  if (r->IsNull(0, 1)) return std::string();  // no posting to compare with (never written by this consumer)
  std::string what;
  auto differs = [&](const char* field, const std::string& posted, const std::string& got) {
    if (posted == got) return;
    if (!what.empty()) what += ", ";
    what += std::string(field) + " posted " + posted + ", message " + got;
  };
  differs("tenant", r->GetString(0, 1), e.tenant);
  differs("account", r->GetString(0, 2), DebitAccount(e));
  differs("amount", r->GetString(0, 3), std::to_string(e.amount));
  differs("currency", r->GetString(0, 4), e.currency);
  if (what.empty()) return std::string();
  return "charge " + e.charge_id + " is already posted with other money fields: " + what;
}

}  // namespace

Result<std::vector<Applied>> ApplyBatch(store::PgConn& conn, const std::vector<const events::ChargeEvent*>& events) {
  std::vector<Applied> out;
  out.reserve(events.size());
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> deltas;  // sorted: lock order
  for (const events::ChargeEvent* e : events) {
    auto inbox = conn.Exec(kInboxSql, {e->message_id, e->charge_id});
    if (!inbox.ok()) return inbox.error();
    if (inbox->affected() == 0) {
      auto differs = Disagreement(conn, *e);
      if (!differs.ok()) return differs.error();
      out.push_back(differs->empty() ? Applied{Outcome::kDuplicate, ""} : Applied{Outcome::kChargeConflict, *differs});
      continue;
    }
    std::string amount = std::to_string(e->amount);
    auto post = conn.Exec(kPostSql, {e->charge_id, e->tenant, DebitAccount(*e), CreditAccount(*e), amount,
                                     e->currency, e->message_id});
    if (!post.ok()) return post.error();
    if (post->affected() == 0) {
      auto differs = Disagreement(conn, *e);
      if (!differs.ok()) return differs.error();
      if (differs->empty()) {
        out.push_back({Outcome::kDuplicateCharge, ""});
        continue;
      }
      auto forget = conn.Exec(kForgetInboxSql, {e->message_id});
      if (!forget.ok()) return forget.error();
      out.push_back({Outcome::kChargeConflict, *differs});
      continue;
    }
    if (post->affected() != 2)
      return Error::Internal("charge " + e->charge_id + " had half a posting already; refusing to add the other half");
    deltas[{e->tenant, DebitAccount(*e), e->currency}] -= e->amount;
    deltas[{e->tenant, CreditAccount(*e), e->currency}] += e->amount;
    out.push_back({Outcome::kApplied, ""});
  }
  for (const auto& [key, delta] : deltas) {
    auto r = conn.Exec(kBalanceSql, {std::get<0>(key), std::get<1>(key), std::get<2>(key), std::to_string(delta)});
    if (!r.ok()) return r.error();
  }
  if (!events.empty()) {
    std::vector<std::string> ids;
    for (const events::ChargeEvent* e : events) ids.push_back(e->message_id);
    auto r = conn.Exec(kClearAttemptsSql, {ArrayLiteral(ids)});
    if (!r.ok()) return r.error();
  }
  return out;
}

Result<std::map<std::string, int>> AttemptCounts(store::PgConn& conn, const std::vector<std::string>& message_ids) {
  std::map<std::string, int> out;
  if (message_ids.empty()) return out;
  auto r = conn.Exec(kAttemptCountsSql, {ArrayLiteral(message_ids)});
  if (!r.ok()) return r.error();
  for (int i = 0; i < r->rows(); ++i) out[r->GetString(i, 0)] = static_cast<int>(r->GetInt(i, 1));
  return out;
}

Result<int> RecordAttempt(store::PgConn& conn, const events::ChargeEvent& e) {
  auto r = conn.Exec(kRecordAttemptSql, {e.message_id, e.charge_id});
  if (!r.ok()) return r.error();
  return static_cast<int>(r->GetInt(0, 0));
}

Status RecordDeadLetter(store::PgConn& conn, const DeadLetterRecord& d) {
  auto r = conn.Exec(kDeadLetterSql, {Bounded(d.message_id, 200), d.reason, Bounded(d.detail, 500),
                                      Nullable(Bounded(d.charge_id, 200)), Nullable(Bounded(d.tenant, 200)),
                                      std::to_string(d.delivery_count)});
  if (!r.ok()) return r.error();
  return OkStatus();
}

Result<std::map<std::string, std::pair<std::string, std::string>>> DeadLetterReasons(
    store::PgConn& conn, const std::vector<std::string>& message_ids) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  if (message_ids.empty()) return out;
  auto r = conn.Exec(kDeadLetterReasonsSql, {ArrayLiteral(message_ids)});
  if (!r.ok()) return r.error();
  for (int i = 0; i < r->rows(); ++i) out[r->GetString(i, 0)] = {r->GetString(i, 1), r->GetString(i, 2)};
  return out;
}

}  // namespace paypath::ledger
