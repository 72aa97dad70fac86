#include "ledger/audit.h"

#include <cstdio>
#include <optional>
#include <unordered_map>

#include "broker/amqp.h"
#include "common/log.h"
#include "store/pg.h"

namespace paypath::ledger {
namespace {

// --- The audit's SQL, all of it. ---

// How a database orders text: the merge of the two sides is only right if both order alike.
constexpr const char* kCollationSql =
    "SELECT datcollate::text || ' / ' || datctype::text || ' / ' || datlocprovider::text || ' / ' || "
    "coalesce(daticulocale::text, '') "
    "FROM pg_database WHERE datname = current_database()";

constexpr const char* kBeginSql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

// The ledger side's first statement (it takes the snapshot) also fixes the grace cutoff, in UTC, from the
// ledger snapshot's own clock. $1: grace in seconds.
constexpr const char* kLedgerSnapshotSql =
    "SELECT to_char((now() - $1::double precision * interval '1 second') AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

constexpr const char* kApiSnapshotSql = "SELECT 1";

// One page of charges after id $1, with whether each is old enough to be judged (created before $2).
constexpr const char* kChargesPageSql =
    "SELECT id, tenant, account_id, amount, currency, created_at < $2::timestamptz "
    "FROM charges WHERE id > $1 ORDER BY id LIMIT $3::int";

// Postings whose charge_id is in ($1, $2], after the key ($3, $4, $5), one page. The range bound uses the
// (charge_id, direction) unique index; id breaks ties so a page boundary never skips a duplicated pair.
constexpr const char* kPostingsRangeSql =
    "SELECT charge_id, direction, tenant, account_id, amount, currency, id FROM ledger_entries "
    "WHERE charge_id > $1 AND charge_id <= $2 AND (charge_id, direction, id) > ($3, $4, $5::bigint) "
    "ORDER BY charge_id, direction, id LIMIT $6::int";

// The same for the last range, which has no upper bound (postings after the last charge).
constexpr const char* kPostingsTailSql =
    "SELECT charge_id, direction, tenant, account_id, amount, currency, id FROM ledger_entries "
    "WHERE charge_id > $1 AND (charge_id, direction, id) > ($2, $3, $4::bigint) "
    "ORDER BY charge_id, direction, id LIMIT $5::int";

constexpr const char* kZeroSumSql =
    "SELECT currency, sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END)::text FROM ledger_entries "
    "GROUP BY currency HAVING sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) <> 0 ORDER BY 1";

// Mismatched accounts: how many, and the first three.
constexpr const char* kBalancesSql =
    "SELECT count(*) OVER (), t, a, c, b::text, p::text FROM ("
    "  SELECT coalesce(b.tenant, p.tenant) AS t, coalesce(b.account_id, p.account_id) AS a,"
    "         coalesce(b.currency, p.currency) AS c, coalesce(b.balance, 0) AS b, coalesce(p.total, 0) AS p"
    "  FROM account_balances b FULL OUTER JOIN ("
    "    SELECT tenant, account_id, currency,"
    "           sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END) AS total"
    "    FROM ledger_entries GROUP BY 1, 2, 3) p"
    "    ON b.tenant = p.tenant AND b.account_id = p.account_id AND b.currency = p.currency) m "
    "WHERE b <> p ORDER BY t, a, c LIMIT 3";

constexpr const char* kInboxSql =
    "SELECT (SELECT count(*) FROM (SELECT message_id FROM inbox GROUP BY 1 HAVING count(*) > 1) d),"
    "       (SELECT count(*) FROM inbox i WHERE NOT EXISTS ("
    "          SELECT 1 FROM ledger_entries e WHERE e.charge_id = i.charge_id)),"
    "       (SELECT count(*) FROM ledger_entries e WHERE NOT EXISTS ("
    "          SELECT 1 FROM inbox i WHERE i.message_id = e.message_id))";

constexpr const char* kOutboxSql =
    "SELECT count(*), count(*) FILTER (WHERE created_at < now() - $1::double precision * interval '1 second') "
    "FROM outbox WHERE published_at IS NULL";

AuditCheck Judge(std::string name, int64_t value, int64_t allowed, std::string detail) {
  return {std::move(name), value > allowed ? "FAIL" : "ok", value, std::move(detail)};
}

// A charge of the current page and what its postings have shown so far.
struct Tally {
  std::string tenant;
  std::string account_id;
  std::string amount;
  std::string currency;
  bool judged = false;
  int debits = 0;   // postings matching the expected debit exactly
  int credits = 0;  // postings matching the expected credit exactly
  int total = 0;    // every posting of the charge
};

void Sample(std::string& out, int* n, const std::string& id) {
  if ((*n)++ >= 3) return;
  out += (out.empty() ? ": " : ", ") + id;
}

struct MergeResult {
  int64_t charges = 0;
  int64_t judged = 0;
  int64_t unposted = 0;  // judged charges without exactly their two postings
  int64_t orphans = 0;   // postings without a charge
  std::string unposted_sample;
  std::string orphan_sample;
  int64_t pages = 0;
};

// The merge: charges page by page, and for each page the postings of its id range (see audit.h).
Result<MergeResult> Merge(store::PgConn& api, store::PgConn& ledger, const std::string& cutoff, int page) {
  MergeResult m;
  int unposted_n = 0, orphan_n = 0;
  const std::string limit = std::to_string(page);
  std::string lo;  // exclusive lower bound of the current range; "" sorts before every id
  for (;;) {
    auto charges = api.Exec(kChargesPageSql, {lo, cutoff, limit});
    if (!charges.ok()) return charges.error();
    m.pages++;
    const int rows = charges->rows();
    const bool last = rows < page;
    std::optional<std::string> hi;
    if (!last) hi = charges->GetString(rows - 1, 0);
    std::unordered_map<std::string, Tally> tallies;
    tallies.reserve(static_cast<size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      Tally& t = tallies[charges->GetString(i, 0)];
      t.tenant = charges->GetString(i, 1);
      t.account_id = charges->GetString(i, 2);
      t.amount = charges->GetString(i, 3);
      t.currency = charges->GetString(i, 4);
      t.judged = charges->Get(i, 5) == "t";
    }
    m.charges += rows;

    std::string key_charge = lo, key_direction;
    std::string key_id = "0";
    for (;;) {
      auto posts = hi ? ledger.Exec(kPostingsRangeSql, {lo, *hi, key_charge, key_direction, key_id, limit})
                      : ledger.Exec(kPostingsTailSql, {lo, key_charge, key_direction, key_id, limit});
      if (!posts.ok()) return posts.error();
      for (int i = 0; i < posts->rows(); ++i) {
        std::string charge_id = posts->GetString(i, 0);
        auto it = tallies.find(charge_id);
        if (it == tallies.end()) {
          m.orphans++;
          Sample(m.orphan_sample, &orphan_n, charge_id);
          continue;
        }
        Tally& t = it->second;
        t.total++;
        bool same = posts->Get(i, 2) == t.tenant && posts->Get(i, 4) == t.amount && posts->Get(i, 5) == t.currency;
        std::string_view direction = posts->Get(i, 1);
        std::string_view account = posts->Get(i, 3);
        if (same && direction == "debit" && account == "customer:" + t.account_id) t.debits++;
        if (same && direction == "credit" && account == "merchant:" + t.tenant) t.credits++;
      }
      if (posts->rows() < page) break;
      int lastrow = posts->rows() - 1;
      key_charge = posts->GetString(lastrow, 0);
      key_direction = posts->GetString(lastrow, 1);
      key_id = posts->GetString(lastrow, 6);
    }
    for (const auto& [id, t] : tallies) {
      if (!t.judged) continue;
      m.judged++;
      if (t.debits == 1 && t.credits == 1 && t.total == 2) continue;
      m.unposted++;
      Sample(m.unposted_sample, &unposted_n, id);
    }
    if (last) return m;
    lo = *hi;
  }
}

Result<std::string> Scalar(store::PgConn& c, const char* sql, const store::Params& params = {}) {
  auto r = c.Exec(sql, params);
  if (!r.ok()) return r.error();
  if (r->rows() != 1) return Error::Internal(std::string("expected one row from: ") + sql);
  return r->GetString(0, 0);
}

}  // namespace

bool AuditReport::ok() const {
  for (const auto& c : checks)
    if (c.status == "FAIL") return false;
  return true;
}

Result<AuditReport> RunAudit(const AuditOptions& o) {
  if (o.pg_url.empty() || o.ledger_pg_url.empty())
    return Error::InvalidArgument("the audit needs both databases: --pg-url (api) and --ledger-pg-url (ledger)");
  if (o.page_size < 1) return Error::InvalidArgument("--page-size must be at least 1");
  auto api_conn = store::PgConn::Connect(o.pg_url, "paypath-audit", std::chrono::seconds(5),
                                         std::chrono::milliseconds(60000));
  if (!api_conn.ok()) return api_conn.error();
  auto ledger_conn = store::PgConn::Connect(o.ledger_pg_url, "paypath-audit", std::chrono::seconds(5),
                                            std::chrono::milliseconds(60000));
  if (!ledger_conn.ok()) return ledger_conn.error();
  store::PgConn& api = *api_conn.value();
  store::PgConn& ledger = *ledger_conn.value();

  auto api_collation = Scalar(api, kCollationSql);
  if (!api_collation.ok()) return api_collation.error();
  auto ledger_collation = Scalar(ledger, kCollationSql);
  if (!ledger_collation.ok()) return ledger_collation.error();
  if (*api_collation != *ledger_collation)
    return Error::FailedPrecondition("the api database orders text as '" + *api_collation +
                                     "' and the ledger database as '" + *ledger_collation +
                                     "': the audit's merge needs one collation on both");

  // One snapshot per database, so concurrent consumers cannot make two checks disagree. The ledger's is
  // taken first: a posting is written only after its charge committed (the event leaves the outbox after
  // the charge's COMMIT), so every posting in the ledger snapshot has its charge in the later api snapshot
  // and "posting without a charge" never fires on a charge that is merely in flight. The other order
  // would let a charge committed between the two snapshots show up as an orphan posting. A charge
  // committed after the ledger snapshot may lack its postings; the grace, measured from the ledger
  // snapshot, covers it.
  if (auto r = ledger.ExecSimple(kBeginSql); !r.ok()) return r.error();
  auto cutoff = Scalar(ledger, kLedgerSnapshotSql, {std::to_string(static_cast<double>(o.grace.count()))});
  if (!cutoff.ok()) return cutoff.error();
  if (auto r = api.ExecSimple(kBeginSql); !r.ok()) return r.error();
  if (auto r = Scalar(api, kApiSnapshotSql); !r.ok()) return r.error();

  AuditReport rep;
  auto merged = Merge(api, ledger, *cutoff, o.page_size);
  if (!merged.ok()) return merged.error();
  rep.pages = merged->pages;
  rep.checks.push_back(Judge("charges_posted_once", merged->unposted, 0,
                             "of " + std::to_string(merged->charges) + " charges (" + std::to_string(merged->judged) +
                                 " older than the grace), those without exactly one matching debit and credit" +
                                 merged->unposted_sample));
  rep.checks.push_back(Judge("postings_have_charge", merged->orphans, 0,
                             "postings whose charge is not in the api database" + merged->orphan_sample));
  // The api side's last check, then its snapshot ends: it must not sit idle in its transaction while the
  // ledger's aggregates run (idle_in_transaction_session_timeout would end the session on a big ledger).
  auto outbox = api.Exec(kOutboxSql, {std::to_string(static_cast<double>(o.max_outbox_age.count()))});
  if (!outbox.ok()) return outbox.error();
  AuditCheck outbox_check = Judge("outbox_published", outbox->GetInt(0, 1), 0,
                                  "unpublished rows older than " + std::to_string(o.max_outbox_age.count()) +
                                      " s (of " + outbox->GetString(0, 0) + " unpublished)");
  api.Rollback();

  auto zero = ledger.Exec(kZeroSumSql);
  if (!zero.ok()) return zero.error();
  std::string zd = "currencies whose credits minus debits is not 0";
  for (int i = 0; i < zero->rows() && i < 5; ++i) zd += (i ? ", " : ": ") + zero->GetString(i, 0) + " " + zero->GetString(i, 1);
  rep.checks.push_back(Judge("postings_sum_to_zero", zero->rows(), 0, zd));

  auto bal = ledger.Exec(kBalancesSql);
  if (!bal.ok()) return bal.error();
  std::string bd = "accounts whose balance differs from their postings";
  for (int i = 0; i < bal->rows(); ++i)
    bd += (i ? "; " : ": ") + bal->GetString(i, 1) + "/" + bal->GetString(i, 2) + " " + bal->GetString(i, 3) +
          " balance " + bal->GetString(i, 4) + " postings " + bal->GetString(i, 5);
  rep.checks.push_back(Judge("balances_match_postings", bal->rows() ? bal->GetInt(0, 0) : 0, 0, bd));

  auto inbox = ledger.Exec(kInboxSql);
  if (!inbox.ok()) return inbox.error();
  int64_t twice = inbox->GetInt(0, 0), no_effect = inbox->GetInt(0, 1), unknown = inbox->GetInt(0, 2);
  rep.checks.push_back(Judge("inbox_applied_once", twice + no_effect + unknown, 0,
                             "inbox ids recorded twice (" + std::to_string(twice) + "), without their postings (" +
                                 std::to_string(no_effect) + "), postings of no inbox message (" +
                                 std::to_string(unknown) + ")"));

  rep.checks.push_back(outbox_check);
  ledger.Rollback();

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
  out += r.ok() ? "audit: PASS" : "audit: FAIL";
  out += " (charges read in " + std::to_string(r.pages) + " page(s))\n";
  return out;
}

std::string RenderJson(const AuditReport& r) {
  std::string out = std::string("{\"ok\":") + (r.ok() ? "true" : "false") + ",\"pages\":" + std::to_string(r.pages) +
                    ",\"checks\":[";
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
