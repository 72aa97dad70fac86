#include "broker/topology.h"

namespace paypath::amqp {

Status DeclareTopology(Connection& conn, const Topology& t) {
  if (t.queue.empty() || t.queue.size() > 200) return Error::InvalidArgument("queue name must be 1..200 bytes");
  if (t.delivery_limit < 0) return Error::InvalidArgument("delivery limit must be 0 (none) or positive");
  Status s = conn.DeclareExchange(t.exchange(), "direct");
  if (!s.ok()) return s;
  s = conn.DeclareExchange(t.dead_letter_exchange(), "direct");
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
  return conn.BindQueue(t.queue, t.exchange(), t.queue);
}

Status VerifyTopology(Connection& conn, const Topology& t) {
  const std::string fix = "; an admin declares it with `paypath broker declare --queue " + t.queue +
                          "` (PAYPATH_ADMIN_AMQP_URL)";
  auto missing = [&](const std::string& what, const Error& e) -> Status {
    if (e.code != ErrorCode::kNotFound) return e;
    return Error::FailedPrecondition("broker topology incomplete: " + what + " does not exist on this vhost" + fix);
  };
  // Most telling first: a queue nobody declared is the usual case, a lone missing DLX the rare one.
  auto d = conn.QueueDepth(t.queue);
  if (!d.ok()) return missing("queue " + t.queue, d.error());
  Status s = conn.ExchangeExists(t.exchange());
  if (!s.ok()) return missing("exchange " + t.exchange(), s.error());
  d = conn.QueueDepth(t.dead_letter_queue());
  if (!d.ok()) return missing("queue " + t.dead_letter_queue(), d.error());
  s = conn.ExchangeExists(t.dead_letter_exchange());
  if (!s.ok()) return missing("exchange " + t.dead_letter_exchange(), s.error());
  return OkStatus();
}

Status DeleteTopology(Connection& conn, const Topology& t) {
  for (const std::string& q : {t.queue, t.dead_letter_queue()}) {
    Status s = conn.DeleteQueue(q);
    if (!s.ok()) return s;
  }
  return conn.DeleteExchange(t.dead_letter_exchange());
}

}  // namespace paypath::amqp
