// The broker topology paypath relies on, in this one place. It lives on the vhost `paypath` and is
// declared by an admin (`paypath broker declare`, with PAYPATH_ADMIN_AMQP_URL) before any service runs;
// the services only verify it with passive declares, which need no permission, and stop with a
// configuration error naming what is missing (docs/design.md "Who may do what").
//
//   paypath.events   durable direct exchange the relay publishes every event to, routing key = queue name
//   <queue>          durable quorum queue bound to paypath.events with routing key <queue>
//                      x-queue-type=quorum
//                      x-delivery-limit=<limit>         only when delivery_limit > 0 (default: none, see below)
//                      x-dead-letter-exchange=<queue>.dlx, x-dead-letter-routing-key=<queue>.dlq
//                      x-dead-letter-strategy=at-least-once   the DLX hop uses publisher confirms internally...
//                      x-overflow=reject-publish              ...which RabbitMQ requires this overflow mode for
//   <queue>.dlx      durable direct exchange
//   <queue>.dlq      durable quorum queue bound to <queue>.dlx with key <queue>.dlq (no limit, no DLX of its own)
//
// Declaring is idempotent as long as the arguments match; a queue that already exists with different
// arguments is a configuration error (kFailedPrecondition), never silently accepted.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "broker/amqp.h"

namespace paypath::amqp {

// "paypath.ledger": the queue name when no --queue is given.
inline constexpr const char* kDefaultQueue = "paypath.ledger";
// "paypath.events": the one exchange events are published to; the relay may write to nothing else.
inline constexpr const char* kExchange = "paypath.events";
// 0: no x-delivery-limit. RabbitMQ 3.10 quorum queues count every return towards the limit, a closed
// channel or a SIGKILLed consumer included, so a broker limit would dead-letter healthy messages after a few
// consumer crashes. The consumer dead-letters poison itself (basic.reject, requeue=false) with a named
// reason. A positive value is an optional backstop against a consumer that loops on a message forever.
inline constexpr int kDefaultDeliveryLimit = 0;

struct Topology {
  std::string queue = kDefaultQueue;
  int delivery_limit = kDefaultDeliveryLimit;  // 0: none; > 0: x-delivery-limit

  std::string exchange() const { return kExchange; }
  std::string dead_letter_exchange() const { return queue + ".dlx"; }
  std::string dead_letter_queue() const { return queue + ".dlq"; }
};

// Declares both exchanges, both queues and both bindings. Needs configure, write and read permission on
// all of them (the admin user). Errors as Connection's declarations.
Status DeclareTopology(Connection& conn, const Topology& t);

// Checks with passive declares (no permission needed) that paypath.events, <queue>, <queue>.dlx and
// <queue>.dlq exist. kFailedPrecondition naming the first one missing and how to declare it; other
// errors as Connection's (kUnavailable: the broker could not be asked). A missing entity closes the
// channel: the connection is broken() afterwards and must be replaced. Bindings cannot be checked
// passively: a missing one shows as returned (unroutable) publishes.
Status VerifyTopology(Connection& conn, const Topology& t);

// Deletes <queue>, <queue>.dlq (with their messages) and <queue>.dlx; never paypath.events, which every
// queue shares. Deleting what does not exist is ok. Needs configure permission (the admin user).
Status DeleteTopology(Connection& conn, const Topology& t);

}  // namespace paypath::amqp
