// The ledger's own database schema (sql/ledger_schema.sql, compiled in) and the migration that applies it.
// The ledger database is separate from the api's (store/schema.h): the consumer writes only here.
#pragma once

#include <string>

#include "common/result.h"
#include "store/pg.h"

namespace paypath::ledger {

// The text of sql/ledger_schema.sql.
const char* LedgerSchemaSql();

// Applies the ledger schema in one transaction under an advisory lock, so concurrent migrators (several
// consumers starting at once) serialize. Idempotent. Errors: those of PgConn::ExecSimple; nothing is
// applied on error.
Status Migrate(store::PgConn& conn);

// Connects to `url` and migrates it. For `paypath migrate` and the test fixtures.
Status MigrateDatabase(const std::string& url);

}  // namespace paypath::ledger
