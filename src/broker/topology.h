// The broker topology paypath relies on, declared in this one place by the relay, the consumer and the
// dlq tools at start. Declaring is idempotent as long as the arguments match; a queue that already exists
// with different arguments (for example another delivery limit) is a configuration error
// (kFailedPrecondition), never silently accepted.
//
//   <queue>        durable quorum queue the relay publishes to (default exchange, routing key = name)
//                    x-queue-type=quorum
//                    x-delivery-limit=<limit>         only when delivery_limit > 0 (default: none, see below)
//                    x-dead-letter-exchange=<queue>.dlx, x-dead-letter-routing-key=<queue>.dlq
//                    x-dead-letter-strategy=at-least-once   the DLX hop uses publisher confirms internally...
//                    x-overflow=reject-publish              ...which RabbitMQ requires this overflow mode for
//   <queue>.dlx    durable direct exchange
//   <queue>.dlq    durable quorum queue bound to <queue>.dlx with key <queue>.dlq (no limit, no DLX of its own)
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "broker/amqp.h"

namespace paypath::amqp {

// "paypath.ledger": the queue name when no --queue is given.
inline constexpr const char* kDefaultQueue = "paypath.ledger";
// 0: no x-delivery-limit. RabbitMQ 3.10 quorum queues count every return towards the limit, a closed
// channel or a SIGKILLed consumer included, so a broker limit would dead-letter healthy messages after a few
// consumer crashes. The consumer dead-letters poison itself (basic.reject, requeue=false) with a named
// reason. A positive value is an optional backstop against a consumer that loops on a message forever.
inline constexpr int kDefaultDeliveryLimit = 0;

struct Topology {
  std::string queue = kDefaultQueue;
  int delivery_limit = kDefaultDeliveryLimit;  // 0: none; > 0: x-delivery-limit

  std::string dead_letter_exchange() const { return queue + ".dlx"; }
  std::string dead_letter_queue() const { return queue + ".dlq"; }
};

// Declares the exchange and both queues and the binding. Errors as Connection's declarations.
Status DeclareTopology(Connection& conn, const Topology& t);

}  // namespace paypath::amqp
