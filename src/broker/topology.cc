#include "broker/topology.h"

namespace paypath::amqp {

Status DeclareTopology(Connection& conn, const Topology& t) {
  if (t.queue.empty() || t.queue.size() > 200) return Error::InvalidArgument("queue name must be 1..200 bytes");
  if (t.delivery_limit < 0) return Error::InvalidArgument("delivery limit must be 0 (none) or positive");
  Status s = conn.DeclareExchange(t.dead_letter_exchange(), "direct");
  if (!s.ok()) return s;
  auto dlq = conn.DeclareQueue(t.dead_letter_queue(), {{"x-queue-type", std::string("quorum")}});
  if (!dlq.ok()) return dlq.error();
  s = conn.BindQueue(t.dead_letter_queue(), t.dead_letter_exchange(), t.dead_letter_queue());
  if (!s.ok()) return s;
  Connection::Args args = {
      {"x-queue-type", std::string("quorum")},
      {"x-dead-letter-exchange", t.dead_letter_exchange()},
      {"x-dead-letter-routing-key", t.dead_letter_queue()},
      {"x-dead-letter-strategy", std::string("at-least-once")},
      {"x-overflow", std::string("reject-publish")},
  };
  if (t.delivery_limit > 0) args["x-delivery-limit"] = static_cast<int64_t>(t.delivery_limit);
  auto q = conn.DeclareQueue(t.queue, args);
  if (!q.ok()) return q.error();
  return OkStatus();
}

}  // namespace paypath::amqp
