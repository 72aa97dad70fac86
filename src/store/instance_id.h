// The database instance namespace: which database a cached response came from.
//
// A Redis entry may only answer for the database that holds its charge. The database name cannot say
// that (a database dropped and re-created, or restored to an earlier point, keeps its name), so the
// namespace is built from:
//   instance_id        a random id in paypath_instance, written by the first migrate of this database and
//                      replaced by `paypath migrate --rotate-instance-id` (the runbook's step after any
//                      restore that keeps the table's old contents, e.g. pg_dump/pg_restore);
//   system identifier  pg_control_system(): changes with every initdb, so a restore into a new cluster
//                      differs even when the table was copied along;
//   timeline           the current WAL timeline: a point-in-time restore and a promoted standby start a new
//                      one, so both change the namespace on their own (a failover to an asynchronous
//                      standby may have lost recent charges, which the cache must then not replay).
// The last two are read only if the role may call the control functions (PostgreSQL 15 grants them to
// every role); otherwise the namespace is the instance id alone and restores rely on the rotation.
// Format: "<instance_id>" or "<instance_id>-<system identifier>-<timeline>" (no ':', as Redis keys need).
#pragma once

#include <string>

#include "common/result.h"
#include "store/pg.h"

namespace paypath::store {

struct InstanceIdentity {
  std::string instance_id;        // 32 hex characters
  std::string system_identifier;  // decimal; empty when not readable
  std::string timeline;           // decimal; empty when not readable
  // The namespace string described above.
  std::string Namespace() const;
};

// Reads the identity. kFailedPrecondition when paypath_instance is missing or empty (run `paypath
// migrate`); kUnavailable when the database cannot be reached.
Result<InstanceIdentity> ReadInstanceIdentity(PgConn& conn);

// Replaces the instance id with a new random one (PostgreSQL's gen_random_uuid) and returns it. Every
// api must then be restarted (or will pick the change up within its refresh interval).
Result<std::string> RotateInstanceId(PgConn& conn);

}  // namespace paypath::store
