// Operator tools for the dead-letter queue (<queue>.dlq), and for parking a message there by hand.
//
// List reads up to `limit` messages without acknowledging them and returns them all to the queue, so
// listing changes nothing but their order. Replay moves messages back to the ledger queue: each is read
// from the DLQ as the operator, republished as the relay (exchange paypath.events, routing key = queue;
// same message id, body and paypath headers; fresh delivery count) with a publisher confirm, and only then
// acked on the DLQ. The operator can publish nothing and the relay can read nothing, so a replay needs
// both users (docs/design.md "Who may do what"). A crash between publish and ack leaves the message in
// both queues; the inbox makes the second copy a no-op, so replay is at-least-once and safe to repeat.
// Park takes one message out of the ledger queue into the DLQ: basic.get through the ready messages until
// it finds the id, basic.reject(requeue=false) on it (the queue's dead-letter exchange moves it), and the
// others go back (requeued). For a message that crashes every consumer (docs/runbook.md): stop the
// consumers first, so the message is ready rather than held by one of them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "broker/amqp.h"
#include "broker/topology.h"
#include "common/result.h"

namespace paypath::ledger {

struct DeadLetter {
  std::string message_id;
  std::string type;
  std::string charge_id;  // header, if present
  std::string tenant;     // header, if present
  std::string reason;     // x-first-death-reason ("rejected", "delivery_limit"), or the consumer's own reason
                          // from the ledger database's dead_letters table when given (AnnotateReasons)
  std::string detail;     // the consumer's detail, when known
  std::string body;
};

// Errors: those of amqp::Connection (kNotFound if the DLQ was never declared).
Result<std::vector<DeadLetter>> ListDeadLetters(amqp::Connection& conn, const amqp::Topology& t, int limit);

// Replaces each listed message's reason with the one the consumer recorded in the ledger database
// (dead_letters), where there is one. Errors: those of the database (the list is left unchanged).
Status AnnotateReasons(const std::string& ledger_pg_url, std::vector<DeadLetter>& list);

// Replays up to `limit` messages (only `message_id` when given): read and acked on `dlq` (the operator's
// connection), republished on `publisher` (the relay's, put in confirm mode). Returns how many were
// replayed. A republish the broker nacks or returns (no queue bound) stops the replay with kUnavailable
// and leaves that message in the DLQ.
Result<int> ReplayDeadLetters(amqp::Connection& dlq, amqp::Connection& publisher, const amqp::Topology& t, int limit,
                              const std::optional<std::string>& message_id);

// Dead-letters the ready message `message_id` of the ledger queue, looking through at most `limit` ready
// messages. Records the reason (parked_by_operator) in the ledger database when `ledger_pg_url` is set.
// Errors: kNotFound (not among the first `limit` ready messages: held by a running consumer, already
// applied, or not there), those of amqp::Connection and of the database record.
Status ParkMessage(amqp::Connection& conn, const amqp::Topology& t, const std::string& message_id, int limit,
                   const std::string& ledger_pg_url);

}  // namespace paypath::ledger
