// The database schema (sql/schema.sql, compiled in) and the migration that applies it.
#pragma once

#include <string>

#include "common/result.h"

namespace paypath::store {

class PgConn;

// The text of sql/schema.sql.
const char* SchemaSql();

// Applies the schema in one transaction under an advisory lock, so concurrent migrators serialize.
// Idempotent. Errors: kUnavailable (database unreachable), kInternal (SQL failed; nothing applied).
Status Migrate(PgConn& conn);

}  // namespace paypath::store
