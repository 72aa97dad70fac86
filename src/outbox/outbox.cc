#include "outbox/outbox.h"

namespace paypath::outbox {

Status Append(store::PgConn& conn, const Event& e) {
  auto r = conn.Exec(
      "INSERT INTO outbox (message_id, tenant, aggregate_id, event_type, payload) "
      "VALUES ($1::uuid, $2, $3, $4, $5::jsonb)",
      {e.message_id, e.tenant, e.aggregate_id, e.event_type, e.payload_json});
  if (!r.ok()) return r.error();
  return OkStatus();
}

}  // namespace paypath::outbox
