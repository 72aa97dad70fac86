#include "store/instance_id.h"

namespace paypath::store {

std::string InstanceIdentity::Namespace() const {
  if (system_identifier.empty() || timeline.empty()) return instance_id;
  return instance_id + "-" + system_identifier + "-" + timeline;
}

Result<InstanceIdentity> ReadInstanceIdentity(PgConn& conn) {
  InstanceIdentity id;
  auto r = conn.Exec("SELECT instance_id FROM paypath_instance");
  if (!r.ok()) {
    if (r.error().code == ErrorCode::kUnavailable) return r.error();
    return Error::FailedPrecondition("cannot read paypath_instance (run `paypath migrate`): " + r.error().message);
  }
  if (r->rows() != 1) return Error::FailedPrecondition("paypath_instance is empty (run `paypath migrate`)");
  id.instance_id = r->GetString(0, 0);
  auto sys = conn.Exec("SELECT system_identifier::text FROM pg_control_system()");
  if (!sys.ok()) return id;  // not permitted for this role: the instance id alone
  // The timeline of the WAL being written now (the first 8 hex digits of its file name). On a primary this
  // moves at promotion, before any checkpoint; pg_control_checkpoint() would lag until the next one.
  auto tli = conn.Exec(
      "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text");
  if (!tli.ok()) {
    // A standby (no current WAL position): the last checkpoint's timeline.
    tli = conn.Exec("SELECT timeline_id::text FROM pg_control_checkpoint()");
    if (!tli.ok()) return id;
  }
  id.system_identifier = sys->GetString(0, 0);
  id.timeline = tli->GetString(0, 0);
  return id;
}

Result<std::string> RotateInstanceId(PgConn& conn) {
  auto r = conn.Exec(
      "UPDATE paypath_instance SET instance_id = replace(gen_random_uuid()::text, '-', ''), rotated_at = now() "
      "RETURNING instance_id");
  if (!r.ok()) return r.error();
  if (r->rows() != 1) return Error::FailedPrecondition("paypath_instance is empty (run `paypath migrate`)");
  return r->GetString(0, 0);
}

}  // namespace paypath::store
