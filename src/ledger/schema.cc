#include "ledger/schema.h"

namespace paypath::ledger {

Status Migrate(store::PgConn& conn) {
  // 7216: the api's migration lock is 7215; the ledger's is the next number, so a database that (in a test)
  // holds both schemas never deadlocks two migrators against each other.
  std::string sql = std::string("BEGIN; SELECT pg_advisory_xact_lock(7216); ") + LedgerSchemaSql() + "\nCOMMIT;";
  auto r = conn.ExecSimple(sql);
  if (!r.ok()) {
    conn.Rollback();
    return r.error();
  }
  return OkStatus();
}

Status MigrateDatabase(const std::string& url) {
  auto conn = store::PgConn::Connect(url, "paypath-ledger-migrate");
  if (!conn.ok()) return conn.error();
  return Migrate(*conn.value());
}

}  // namespace paypath::ledger
