// The transactional outbox: the write side. The api appends an event inside the same transaction that
// creates the charge, so the event exists if and only if the charge does. The relay (relay.h) publishes.
#pragma once

#include <string>

#include "common/result.h"
#include "events/charge_event.h"
#include "store/pg.h"

namespace paypath::outbox {

// Event type of the only event paypath emits today (its contract: events/charge_event.h).
inline constexpr const char* kChargeSucceeded = events::kChargeSucceeded;

struct Event {
  std::string message_id;    // UUID; the id consumers deduplicate on, stable across republishes
  std::string tenant;
  std::string aggregate_id;  // the charge id
  std::string event_type;
  std::string payload_json;  // a JSON object; stored as jsonb
};

// Inserts `e` using the caller's connection, inside the caller's open transaction (the caller commits).
// Errors are those of PgConn::Exec.
Status Append(store::PgConn& conn, const Event& e);

}  // namespace paypath::outbox
