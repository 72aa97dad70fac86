#include "ledger/audit.h"

#include <cstdio>

#include "common/log.h"
#include "broker/amqp.h"
#include "store/pg.h"

namespace paypath::ledger {
namespace {

// --- The audit's SQL, all of it. $1 where present is a number of seconds. ---

constexpr const char* kChargesSql =
    "SELECT count(*) FILTER (WHERE NOT ok), count(*) FROM ("
    "  SELECT (SELECT count(*) FROM ledger_entries e WHERE e.charge_id = c.id AND e.direction = 'debit'"
    "            AND e.tenant = c.tenant AND e.account_id = 'customer:' || c.account_id"
    "            AND e.amount = c.amount AND e.currency = c.currency) = 1"
    "     AND (SELECT count(*) FROM ledger_entries e WHERE e.charge_id = c.id AND e.direction = 'credit'"
    "            AND e.tenant = c.tenant AND e.account_id = 'merchant:' || c.tenant"
    "            AND e.amount = c.amount AND e.currency = c.currency) = 1"
    "     AND (SELECT count(*) FROM ledger_entries e WHERE e.charge_id = c.id) = 2 AS ok"
    "  FROM charges c WHERE c.created_at < now() - $1::double precision * interval '1 second') t";

constexpr const char* kOrphansSql =
    "SELECT count(*) FROM ledger_entries e WHERE NOT EXISTS (SELECT 1 FROM charges c WHERE c.id = e.charge_id)";

constexpr const char* kZeroSumSql =
    "SELECT currency, sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END)::text FROM ledger_entries "
    "GROUP BY currency HAVING sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) <> 0 ORDER BY 1";

constexpr const char* kBalancesSql =
    "SELECT coalesce(b.tenant, p.tenant), coalesce(b.account_id, p.account_id), coalesce(b.currency, p.currency),"
    "       coalesce(b.balance, 0)::text, coalesce(p.total, 0)::text "
    "FROM account_balances b FULL OUTER JOIN ("
    "  SELECT tenant, account_id, currency, sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) AS total"
    "  FROM ledger_entries GROUP BY 1, 2, 3) p"
    "  ON b.tenant = p.tenant AND b.account_id = p.account_id AND b.currency = p.currency "
    "WHERE coalesce(b.balance, 0) <> coalesce(p.total, 0) ORDER BY 1, 2, 3";

constexpr const char* kInboxSql =
    "SELECT (SELECT count(*) FROM (SELECT message_id FROM inbox GROUP BY 1 HAVING count(*) > 1) d)"
    "     + (SELECT count(*) FROM inbox i WHERE NOT EXISTS ("
    "          SELECT 1 FROM ledger_entries e WHERE e.charge_id = i.charge_id))";

constexpr const char* kOutboxSql =
    "SELECT count(*), count(*) FILTER (WHERE created_at < now() - $1::double precision * interval '1 second') "
    "FROM outbox WHERE published_at IS NULL";

AuditCheck Judge(std::string name, int64_t value, int64_t allowed, std::string detail) {
  return {std::move(name), value > allowed ? "FAIL" : "ok", value, std::move(detail)};
}

}  // namespace

bool AuditReport::ok() const {
  for (const auto& c : checks)
    if (c.status == "FAIL") return false;
  return true;
}

Result<AuditReport> RunAudit(const AuditOptions& o) {
  auto conn = store::PgConn::Connect(o.pg_url, "paypath-audit", std::chrono::seconds(5),
                                     std::chrono::milliseconds(60000));
  if (!conn.ok()) return conn.error();
  store::PgConn& pg = *conn.value();
  // One snapshot for every check, so concurrent consumers cannot make two checks disagree.
  if (auto r = pg.ExecSimple("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !r.ok()) return r.error();
  AuditReport rep;

  auto charges = pg.Exec(kChargesSql, {std::to_string(static_cast<double>(o.grace.count()))});
  if (!charges.ok()) return charges.error();
  rep.checks.push_back(Judge("charges_posted_once", charges->GetInt(0, 0), 0,
                             "of " + charges->GetString(0, 1) +
                                 " charges, those without exactly one matching debit and credit"));

  auto orphans = pg.Exec(kOrphansSql);
  if (!orphans.ok()) return orphans.error();
  rep.checks.push_back(Judge("postings_have_charge", orphans->GetInt(0, 0), 0, "postings whose charge is missing"));

  auto zero = pg.Exec(kZeroSumSql);
  if (!zero.ok()) return zero.error();
  std::string zd = "currencies whose credits minus debits is not 0";
  for (int i = 0; i < zero->rows() && i < 5; ++i) zd += (i ? ", " : ": ") + zero->GetString(i, 0) + " " + zero->GetString(i, 1);
  rep.checks.push_back(Judge("postings_sum_to_zero", zero->rows(), 0, zd));

  auto bal = pg.Exec(kBalancesSql);
  if (!bal.ok()) return bal.error();
  std::string bd = "accounts whose balance differs from their postings";
  for (int i = 0; i < bal->rows() && i < 3; ++i)
    bd += (i ? "; " : ": ") + bal->GetString(i, 0) + "/" + bal->GetString(i, 1) + " " + bal->GetString(i, 2) +
          " balance " + bal->GetString(i, 3) + " postings " + bal->GetString(i, 4);
  rep.checks.push_back(Judge("balances_match_postings", bal->rows(), 0, bd));

  auto inbox = pg.Exec(kInboxSql);
  if (!inbox.ok()) return inbox.error();
  rep.checks.push_back(Judge("inbox_applied_once", inbox->GetInt(0, 0), 0,
                             "inbox ids recorded twice or without their postings"));

  auto outbox = pg.Exec(kOutboxSql, {std::to_string(static_cast<double>(o.max_outbox_age.count()))});
  if (!outbox.ok()) return outbox.error();
  rep.checks.push_back(Judge("outbox_published", outbox->GetInt(0, 1), 0,
                             "unpublished rows older than " + std::to_string(o.max_outbox_age.count()) + " s (of " +
                                 outbox->GetString(0, 0) + " unpublished)"));
  pg.Rollback();

  AuditCheck dlq{"dlq_depth", "skipped", 0, o.topology.dead_letter_queue() + ": no AMQP URL"};
  if (!o.amqp_url.empty()) {
    amqp::Settings s;
    s.url = o.amqp_url;
    auto mq = amqp::Connection::Open(s);
    auto depth = mq.ok() ? mq.value()->QueueDepth(o.topology.dead_letter_queue()) : Result<uint32_t>(mq.error());
    if (depth.ok()) {
      dlq.value = *depth;
      dlq.detail = "messages in " + o.topology.dead_letter_queue();
      dlq.status = o.max_dlq < 0 ? "info" : (dlq.value > o.max_dlq ? "FAIL" : "ok");
    } else if (depth.error().code == ErrorCode::kNotFound) {
      dlq.detail = o.topology.dead_letter_queue() + " does not exist (nothing ever declared it)";
      dlq.status = o.max_dlq < 0 ? "info" : "ok";
    } else {
      dlq.detail = "cannot read " + o.topology.dead_letter_queue() + ": " + depth.error().ToString();
      dlq.status = o.max_dlq < 0 ? "skipped" : "FAIL";
    }
  }
  rep.checks.push_back(dlq);
  return rep;
}

std::string RenderTable(const AuditReport& r) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-25s %-7s %8s  %s\n", "CHECK", "STATUS", "VALUE", "DETAIL");
  out += line;
  for (const auto& c : r.checks) {
    std::snprintf(line, sizeof line, "%-25s %-7s %8lld  ", c.name.c_str(), c.status.c_str(),
                  static_cast<long long>(c.value));
    out += line;
    out += c.detail;
    out += "\n";
  }
  out += r.ok() ? "audit: PASS\n" : "audit: FAIL\n";
  return out;
}

std::string RenderJson(const AuditReport& r) {
  std::string out = std::string("{\"ok\":") + (r.ok() ? "true" : "false") + ",\"checks\":[";
  for (size_t i = 0; i < r.checks.size(); ++i) {
    const auto& c = r.checks[i];
    if (i) out += ",";
    out += "{\"name\":";
    log::AppendJsonString(out, c.name);
    out += ",\"status\":";
    log::AppendJsonString(out, c.status);
    out += ",\"value\":" + std::to_string(c.value) + ",\"detail\":";
    log::AppendJsonString(out, c.detail);
    out += "}";
  }
  out += "]}\n";
  return out;
}

}  // namespace paypath::ledger
