// Operator tools for the dead-letter queue (<queue>.dlq).
//
// List reads up to `limit` messages without acknowledging them and returns them all to the queue, so
// listing changes nothing but their order. Replay moves messages back to the ledger queue: each is
// republished (same message id, body and paypath headers; fresh delivery count) with a publisher confirm
// and only then acked on the DLQ. A crash between the two leaves the message in both queues; the inbox
// makes the second copy a no-op, so replay is at-least-once and safe to repeat.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "broker/amqp.h"
#include "broker/topology.h"

namespace paypath::ledger {

struct DeadLetter {
  std::string message_id;
  std::string type;
  std::string charge_id;  // header, if present
  std::string tenant;     // header, if present
  std::string reason;     // x-first-death-reason (e.g. "delivery_limit", "rejected"), if present
  std::string body;
};

// Errors: those of amqp::Connection (kNotFound if the DLQ was never declared).
Result<std::vector<DeadLetter>> ListDeadLetters(amqp::Connection& conn, const amqp::Topology& t, int limit);

// Replays up to `limit` messages (only `message_id` when given). Returns how many were replayed.
// The connection is put in confirm mode.
Result<int> ReplayDeadLetters(amqp::Connection& conn, const amqp::Topology& t, int limit,
                              const std::optional<std::string>& message_id);

}  // namespace paypath::ledger
