#include "ledger/dlq.h"

#include "common/log.h"
#include "events/charge_event.h"
#include "ledger/consumer.h"
#include "ledger/postings.h"
#include "store/pg.h"

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
    out.push_back({m.message_id, m.type, Header(m, events::kHeaderChargeId), Header(m, events::kHeaderTenant),
                   Header(m, "x-first-death-reason"), "", m.body});
    tags.push_back((*d)->tag);
  }
  // Give them back: the DLQ has no delivery limit, so returning costs nothing but order.
  for (uint64_t tag : tags) {
    Status s = conn.Reject(tag, /*requeue=*/true);
    if (!s.ok()) return s.error();
  }
  return out;
}

Status AnnotateReasons(const std::string& ledger_pg_url, std::vector<DeadLetter>& list) {
  auto conn = store::PgConn::Connect(ledger_pg_url, "paypath-dlq");
  if (!conn.ok()) return conn.error();
  std::vector<std::string> ids;
  for (const auto& d : list) ids.push_back(d.message_id);
  auto reasons = DeadLetterReasons(*conn.value(), ids);
  if (!reasons.ok()) return reasons.error();
  for (auto& d : list) {
    auto it = reasons->find(d.message_id);
    if (it == reasons->end()) continue;
    d.reason = it->second.first;
    d.detail = it->second.second;
  }
  return OkStatus();
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

Status ParkMessage(amqp::Connection& conn, const amqp::Topology& t, const std::string& message_id, int limit,
                   const std::string& ledger_pg_url) {
  std::vector<uint64_t> others;
  std::optional<amqp::Delivery> found;
  // Every message taken is held until the end, so each is looked at once and the loop ends.
  for (int i = 0; i < limit && !found; ++i) {
    auto d = conn.Get(t.queue);
    if (!d.ok()) return d.error();
    if (!d->has_value()) break;
    if ((*d)->message.message_id == message_id) {
      found = std::move(**d);
    } else {
      others.push_back((*d)->tag);
    }
  }
  Status s = OkStatus();
  if (found) {
    if (!ledger_pg_url.empty()) {
      // Recorded first: a park whose reason is lost would look like a consumer rejection in `dlq list`.
      auto pg = store::PgConn::Connect(ledger_pg_url, "paypath-dlq");
      s = pg.ok() ? RecordDeadLetter(*pg.value(), {message_id, kParkedByOperator, "parked by hand (paypath dlq park)",
                                                   Header(found->message, events::kHeaderChargeId),
                                                   Header(found->message, events::kHeaderTenant),
                                                   found->message.delivery_count})
                  : Status(pg.error());
    }
    if (s.ok()) s = conn.Reject(found->tag, /*requeue=*/false);
    if (s.ok())
      log::Warn("message_parked", {{"message_id", message_id}, {"queue", t.queue},
                                   {"delivery_count", found->message.delivery_count}});
  }
  for (uint64_t tag : others) {
    Status r = conn.Reject(tag, /*requeue=*/true);
    if (!r.ok()) return r;
  }
  if (!s.ok()) return s;
  if (!found)
    return Error::NotFound("message " + message_id + " is not among the first " + std::to_string(limit) +
                           " ready messages of " + t.queue + " (stop the consumers holding it first)");
  return OkStatus();
}

}  // namespace paypath::ledger
