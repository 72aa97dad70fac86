// Operator tools for the dead-letter queue (<queue>.dlq).
//
// List reads up to `limit` messages without acknowledging them and returns them all to the queue, so
// listing changes nothing but their order. Replay moves messages back to the ledger queue: each is read
// from the DLQ as the operator, republished as the relay (exchange paypath.events, routing key = queue;
// same message id, body and paypath headers; fresh delivery count) with a publisher confirm, and only then
// acked on the DLQ. The operator can publish nothing and the relay can read nothing, so a replay needs
// both users (docs/design.md "Who may do what"). A crash between publish and ack leaves the message in
// both queues; the inbox makes the second copy a no-op, so replay is at-least-once and safe to repeat.
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

// Replays up to `limit` messages (only `message_id` when given): read and acked on `dlq` (the operator's
// connection), republished on `publisher` (the relay's, put in confirm mode). Returns how many were
// replayed. A republish the broker nacks or returns (no queue bound) stops the replay with kUnavailable
// and leaves that message in the DLQ.
Result<int> ReplayDeadLetters(amqp::Connection& dlq, amqp::Connection& publisher, const amqp::Topology& t, int limit,
                              const std::optional<std::string>& message_id);

}  // namespace paypath::ledger
