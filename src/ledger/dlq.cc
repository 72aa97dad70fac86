#include "ledger/dlq.h"

#include "common/log.h"

namespace paypath::ledger {
namespace {

std::string Header(const amqp::Message& m, const char* key) {
  auto it = m.headers.find(key);
  return it == m.headers.end() ? "" : it->second;
}

}  // namespace

Result<std::vector<DeadLetter>> ListDeadLetters(amqp::Connection& conn, const amqp::Topology& t, int limit) {
  std::vector<DeadLetter> out;
  std::vector<uint64_t> tags;
  for (int i = 0; i < limit; ++i) {
    auto d = conn.Get(t.dead_letter_queue());
    if (!d.ok()) return d.error();
    if (!d->has_value()) break;
    const amqp::Message& m = (*d)->message;
    out.push_back({m.message_id, m.type, Header(m, "charge_id"), Header(m, "tenant"),
                   Header(m, "x-first-death-reason"), m.body});
    tags.push_back((*d)->tag);
  }
  // Give them back: the DLQ has no delivery limit, so returning costs nothing but order.
  for (uint64_t tag : tags) {
    Status s = conn.Reject(tag, /*requeue=*/true);
    if (!s.ok()) return s.error();
  }
  return out;
}

Result<int> ReplayDeadLetters(amqp::Connection& conn, amqp::Connection& publisher, const amqp::Topology& t,
                              int limit, const std::optional<std::string>& message_id) {
  Status s = publisher.EnableConfirms();
  if (!s.ok()) return s.error();
  int replayed = 0;
  std::vector<uint64_t> skipped;
  // Each message is read once per run (skipped ones stay unacked until the end), so the loop ends.
  while (replayed < limit) {
    auto d = conn.Get(t.dead_letter_queue());
    if (!d.ok()) return d.error();
    if (!d->has_value()) break;
    amqp::Message m = (*d)->message;
    if (message_id && m.message_id != *message_id) {
      skipped.push_back((*d)->tag);
      continue;
    }
    // Broker bookkeeping headers (x-death, x-delivery-count, ...) describe the old life of the message.
    for (auto it = m.headers.begin(); it != m.headers.end();) it = it->first.starts_with("x-") ? m.headers.erase(it) : std::next(it);
    m.headers["replayed_from"] = t.dead_letter_queue();
    auto tag = publisher.Publish(t.exchange(), t.queue, m);
    if (!tag.ok()) return tag.error();
    auto confirms = publisher.WaitForConfirms(std::chrono::milliseconds(5000));
    if (!confirms.ok()) return confirms.error();
    if (!confirms->failed.empty())
      return Error::Unavailable("broker " + std::string(confirms->returned.empty() ? "refused" : "returned (" +
                                                        confirms->return_reason + ")") +
                                " the replayed message " + m.message_id + "; it stays in " + t.dead_letter_queue());
    s = conn.Ack((*d)->tag);
    if (!s.ok()) return s.error();
    log::Info("dlq_replayed", {{"message_id", m.message_id}, {"queue", t.queue}});
    replayed++;
  }
  for (uint64_t tag : skipped) {
    s = conn.Reject(tag, /*requeue=*/true);
    if (!s.ok()) return s.error();
  }
  return replayed;
}

}  // namespace paypath::ledger
