#include "ledger/consumer.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <variant>

#include "common/failpoints.h"
#include "common/log.h"
#include "common/worker.h"
#include "ledger/postings.h"
#include "ledger/schema.h"

namespace paypath::ledger {
namespace {

// Seconds from charge commit to ledger apply: dense below a second (the normal path), then out to 10 min
// (a backlog draining after a broker outage).
std::vector<double> DelayBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

metrics::Counter& DuplicatesBy(metrics::Registry& reg, const char* reason) {
  return reg.GetCounter("paypath_consumer_duplicates_total",
                        "Deliveries acked without effect, by what found them: message_id (the inbox: a redelivery "
                        "or a republish) or charge (a new message id for a charge already posted)",
                        {{"reason", reason}});
}

bool IsRedelivery(const amqp::Delivery& d) { return d.redelivered || d.message.delivery_count > 0; }

std::string HeaderOr(const amqp::Message& m, const char* key) {
  auto it = m.headers.find(key);
  return it == m.headers.end() ? "" : it->second;
}

// Removes the deliveries whose tags are in `settled` from `pending` when the scope ends, however Settle
// returns: what is left is exactly what is still held.
class EraseSettled {
 public:
  EraseSettled(std::vector<amqp::Delivery>& pending, std::set<uint64_t>& settled) : p_(pending), s_(settled) {}
  ~EraseSettled() {
    std::erase_if(p_, [&](const amqp::Delivery& d) { return s_.count(d.tag) > 0; });
  }

 private:
  std::vector<amqp::Delivery>& p_;
  std::set<uint64_t>& s_;
};

}  // namespace

std::vector<std::string> DeadLetterReasons() {
  std::vector<std::string> out;
  for (events::Violation v : events::kAllViolations) out.push_back(events::ViolationName(v));
  out.push_back(kPostingRefused);
  out.push_back(kChargeConflict);
  out.push_back(kParkedByOperator);
  return out;
}

bool IsDataRefusal(const Error& e) { return e.sqlstate.starts_with("22") || e.sqlstate.starts_with("23"); }

Consumer::Consumer(ConsumerOptions options, Clock& clock, Random& random)
    : opt_(std::move(options)),
      clock_(clock),
      random_(random),
      applied_(opt_.registry->GetCounter("paypath_ledger_effects_applied_total",
                                         "Charge events whose double-entry posting was committed")),
      duplicates_(opt_.registry->GetCounter(
          "paypath_inbox_duplicates_total",
          "Deliveries acked without effect because the inbox (or the charge's postings) already had them")),
      duplicates_by_message_id_(DuplicatesBy(*opt_.registry, "message_id")),
      duplicates_by_charge_(DuplicatesBy(*opt_.registry, "charge")),
      poison_(opt_.registry->GetCounter("paypath_consumer_poison_rejections_total",
                                        "Poison messages rejected (each once: dead-lettered at once, by reason in "
                                        "paypath_dlq_messages_total)")),
      errors_(opt_.registry->GetCounter("paypath_consumer_errors_total",
                                        "Consumer steps that failed (database or broker trouble); held messages are retried")),
      redeliveries_(opt_.registry->GetCounter(
          "paypath_consumer_redeliveries_total",
          "Deliveries of messages delivered before (a consumer crashed or lost its connection while holding them)")),
      max_delivery_count_gauge_(opt_.registry->GetGauge(
          "paypath_consumer_max_redeliveries",
          "Largest x-delivery-count among deliveries of the last 5 minutes (0: no redelivery)")),
      apply_delay_(opt_.registry->GetHistogram("paypath_ledger_apply_delay_seconds",
                                               "Delay from charge commit (event created_at) to ledger apply",
                                               DelayBuckets())) {
  // Every reason's series exists from the start (value 0), so a query or an alert never sees it missing.
  for (const std::string& reason : DeadLetterReasons())
    opt_.registry->GetCounter("paypath_dlq_messages_total", "Messages the consumer dead-lettered, by reason",
                              {{"reason", reason}});
}

Consumer::~Consumer() = default;

Status Consumer::EnsureBroker() {
  if (mq_ && mq_->broken()) DropBroker();
  if (mq_) return OkStatus();
  // Each reconnect starts at the node after the last one connected to (amqp::Settings::first_node); the
  // deliveries the old connection held are redelivered by the broker and absorbed by the inbox.
  amqp::Settings settings = opt_.amqp;
  settings.first_node = next_node_;
  auto c = amqp::Connection::Open(settings);
  if (!c.ok()) return c.error();
  next_node_ = c.value()->node() + 1;
  amqp::Connection& conn = *c.value();
  // Verify only: the consumer may read its queue, nothing more (docs/design.md "Who may do what").
  Status s = amqp::VerifyTopology(conn, opt_.topology);
  if (s.ok()) s = conn.Qos(opt_.prefetch);
  if (s.ok()) s = conn.Consume(opt_.topology.queue);
  if (!s.ok()) return s;
  mq_ = std::move(c.value());
  log::Info("consumer_connected", {{"queue", opt_.topology.queue},
                                   {"node", mq_->endpoint()},
                                   {"prefetch", static_cast<int>(opt_.prefetch)}});
  return OkStatus();
}

Status Consumer::EnsureDatabase() {
  if (pg_ && !pg_->healthy()) pg_.reset();
  if (pg_) return OkStatus();
  auto c = store::PgConn::Connect(opt_.ledger_pg_url, "paypath-consumer");
  if (!c.ok()) return c.error();
  if (opt_.migrate && !migrated_) {
    Status m = Migrate(*c.value());
    if (!m.ok()) return m;
    migrated_ = true;
    log::Info("ledger_migrated", {{"schema_version", 1}});
  }
  pg_ = std::move(c.value());
  return OkStatus();
}

void Consumer::DropBroker() {
  mq_.reset();
  pending_.clear();  // the broker returns them to the queue when the connection goes
}

Error Consumer::Failed(Error e) {
  errors_.Inc();
  if (!e.sqlstate.empty())
    opt_.registry
        ->GetCounter("paypath_consumer_database_errors_total", "Failed consumer steps by PostgreSQL SQLSTATE",
                     {{"sqlstate", e.sqlstate}})
        .Inc();
  if (mq_ && mq_->broken()) DropBroker();
  return e;
}

void Consumer::Receive(amqp::Delivery d) {
  int64_t count = d.message.delivery_count;
  if (IsRedelivery(d)) {
    redeliveries_.Inc();
    log::Info("message_redelivered", {{"message_id", d.message.message_id}, {"delivery_count", count}});
  }
  auto now = clock_.Now();
  if (now - max_delivery_count_at_ > opt_.redelivery_window) max_delivery_count_ = 0;
  if (count > 0 && count >= max_delivery_count_) {
    max_delivery_count_ = count;
    max_delivery_count_at_ = now;
  }
  max_delivery_count_gauge_.Set(static_cast<double>(max_delivery_count_));
  pending_.push_back(std::move(d));
}

Status Consumer::Fill() {
  // With messages already in hand (a retry), only take what is buffered.
  auto wait = pending_.empty() ? opt_.poll : std::chrono::milliseconds(0);
  for (;;) {
    auto d = mq_->Next(wait);
    if (!d.ok()) return d.error();
    if (!d->has_value()) return OkStatus();
    Receive(std::move(**d));
    wait = std::chrono::milliseconds(0);
  }
}

void Consumer::ServiceBroker() {
  if (!mq_ || mq_->broken()) return;
  for (;;) {
    auto d = mq_->Next(std::chrono::milliseconds(0));
    if (!d.ok()) {
      log::Warn("consumer_broker_lost", {{"error", d.error().ToString()}, {"held", static_cast<int>(pending_.size())}});
      DropBroker();
      return;
    }
    if (!d->has_value()) return;
    Receive(std::move(**d));
  }
}

Status Consumer::DeadLetter(const amqp::Delivery& d, const std::string& reason, const std::string& detail,
                            const events::ChargeEvent* e) {
  poison_.Inc();
  opt_.registry->GetCounter("paypath_dlq_messages_total", "", {{"reason", reason}}).Inc();
  DeadLetterRecord rec{d.message.message_id,
                       reason,
                       detail,
                       e ? e->charge_id : HeaderOr(d.message, events::kHeaderChargeId),
                       e ? e->tenant : HeaderOr(d.message, events::kHeaderTenant),
                       d.message.delivery_count};
  // The operator joins on message_id: this line, the dead_letters row and the DLQ message.
  log::Warn("message_dead_lettered", {{"message_id", rec.message_id.substr(0, 200)},
                                      {"reason", reason},
                                      {"detail", detail},
                                      {"charge_id", rec.charge_id.substr(0, 200)},
                                      {"delivery_count", rec.delivery_count}});
  // Best effort: the reason must not depend on the database being up; the log line and metric above are
  // the record of last resort.
  Status db = EnsureDatabase();
  if (db.ok()) db = RecordDeadLetter(*pg_, rec);
  if (!db.ok()) {
    log::Warn("dead_letter_unrecorded", {{"message_id", rec.message_id.substr(0, 200)}, {"error", db.error().ToString()}});
    if (!IsDataRefusal(db.error())) pg_.reset();
  }
  return mq_->Reject(d.tag, /*requeue=*/false);
}

Result<std::vector<Applied>> Consumer::ApplyInTransaction(const std::vector<const events::ChargeEvent*>& events) {
  Status s = EnsureDatabase();
  if (!s.ok()) return s.error();
  auto tx = store::Transaction::Start(*pg_);
  if (!tx.ok()) return tx.error();
  // One point per message id, so a test can make exactly one message crash the consumer every time.
  for (const events::ChargeEvent* e : events)
    if (failpoints::Hit("consumer.apply." + e->message_id)) return Error::Aborted("failpoint consumer.apply");
  auto outcomes = ApplyBatch(*pg_, events);
  if (!outcomes.ok()) return outcomes.error();
  if (failpoints::Hit("consumer.before_commit")) return Error::Aborted("failpoint consumer.before_commit");
  Status c = (*tx)->Commit();
  // kOutcomeUnknown: the caller keeps the messages and retries; the inbox turns a committed batch into
  // duplicates, so the retry is safe.
  if (!c.ok()) return c.error();
  return outcomes;
}

Status Consumer::Settled(const amqp::Delivery& d, const events::ChargeEvent& e, const Applied& applied) {
  // Nothing of it was kept (ApplyBatch removed its inbox row): a disagreeing duplicate is poison. The
  // reject comes after the COMMIT, so a crash in between redelivers it and it is found to disagree again.
  if (applied.outcome == Outcome::kChargeConflict) return DeadLetter(d, kChargeConflict, applied.detail, &e);
  Status s = mq_->Ack(d.tag);
  if (!s.ok()) return s;
  if (applied.outcome == Outcome::kApplied) {
    applied_.Inc();
    apply_delay_.Observe(std::chrono::duration<double>(clock_.WallNow() - e.created_at).count());
  } else {
    const bool by_inbox = applied.outcome == Outcome::kDuplicate;
    duplicates_.Inc();
    (by_inbox ? duplicates_by_message_id_ : duplicates_by_charge_).Inc();
    log::Info("duplicate_delivery", {{"message_id", e.message_id},
                                     {"charge_id", e.charge_id},
                                     {"by", by_inbox ? "inbox" : "charge"},
                                     {"redelivered", d.redelivered}});
  }
  return OkStatus();
}

Result<int> Consumer::Settle() {
  std::set<uint64_t> settled;
  EraseSettled erase(pending_, settled);
  // A database failure: drop the connection (the next attempt reconnects, following a failover) unless it
  // was a refusal of the data, which says nothing about the connection.
  auto db_failed = [&](Error e) {
    if (!IsDataRefusal(e)) pg_.reset();
    return e;
  };
  // Progress made before a failure is kept (acked); the failure is reported only when nothing settled, so a
  // single message in trouble never throttles the others through the loop's backoff.
  auto failed = [&](Error e) -> Result<int> {
    if (settled.empty()) return e;
    log::Warn("consumer_step_partial", {{"settled", static_cast<int>(settled.size())}, {"error", e.ToString()}});
    return static_cast<int>(settled.size());
  };
  // A message the ledger refuses as inconsistent (kInternal: its charge already has half a posting) stays
  // held and is retried, but must not keep the messages after it from being applied alone.
  std::optional<Error> held_back;
  auto alone_failed = [&](const Error& e) {
    if (e.code != ErrorCode::kInternal) return true;  // the database's trouble: stop here, retry later
    log::Error("message_held_back", {{"error", e.ToString()}});
    if (!held_back) held_back = e;
    return false;
  };

  // 1. Verify. Poison is dead-lettered at once: nothing about it can change on a retry.
  struct Held {
    const amqp::Delivery* d;
    events::ChargeEvent e;
  };
  std::vector<Held> fresh, redelivered;
  for (const amqp::Delivery& d : pending_) {
    auto decoded = events::Decode(d.message);
    if (auto* bad = std::get_if<events::Rejected>(&decoded)) {
      Status s = DeadLetter(d, events::ViolationName(bad->violation), bad->detail, nullptr);
      if (!s.ok()) return failed(s.error());
      settled.insert(d.tag);
      continue;
    }
    (IsRedelivery(d) ? redelivered : fresh).push_back({&d, std::get<events::ChargeEvent>(std::move(decoded))});
  }

  // Applies one message alone; a data refusal makes it poison. Returns an error only for other failures.
  auto apply_alone = [&](const Held& h) -> Status {
    auto one = ApplyInTransaction({&h.e});
    if (one.ok()) {
      if (failpoints::Hit("consumer.after_commit")) return Error::Aborted("failpoint consumer.after_commit");
      Status s = Settled(*h.d, h.e, (*one)[0]);
      if (s.ok()) settled.insert(h.d->tag);
      return s;
    }
    if (one.error().code == ErrorCode::kInternal) return one.error();  // the connection is fine
    if (!IsDataRefusal(one.error())) return db_failed(one.error());
    Status s = DeadLetter(*h.d, kPostingRefused, one.error().message, &h.e);
    if (s.ok()) settled.insert(h.d->tag);
    return s;
  };

  // 2. Fresh messages, in batches.
  for (size_t start = 0; start < fresh.size(); start += static_cast<size_t>(opt_.batch)) {
    size_t end = std::min(fresh.size(), start + static_cast<size_t>(opt_.batch));
    std::vector<const events::ChargeEvent*> events;
    for (size_t i = start; i < end; ++i) events.push_back(&fresh[i].e);
    auto batch = ApplyInTransaction(events);
    if (batch.ok()) {
      // Committed, not acked: a crash here redelivers the batch, and the inbox makes it a no-op.
      if (failpoints::Hit("consumer.after_commit")) return failed(Error::Aborted("failpoint consumer.after_commit"));
      for (size_t i = start; i < end; ++i) {
        Status s = Settled(*fresh[i].d, fresh[i].e, (*batch)[i - start]);
        if (!s.ok()) return failed(s.error());
        settled.insert(fresh[i].d->tag);
      }
      continue;
    }
    if (!IsDataRefusal(batch.error()) && batch.error().code != ErrorCode::kInternal)
      return failed(db_failed(batch.error()));
    // Find the message the database refuses, one transaction each; the others still get applied.
    log::Warn("batch_refused_isolating", {{"error", batch.error().ToString()}, {"size", static_cast<int>(end - start)}});
    for (size_t i = start; i < end; ++i) {
      Status s = apply_alone(fresh[i]);
      if (!s.ok() && alone_failed(s.error())) return failed(s.error());
    }
  }

  // 3. Redelivered messages: one per transaction, fewest persisted attempts first.
  if (!redelivered.empty()) {
    Status s = EnsureDatabase();
    if (!s.ok()) return failed(db_failed(s.error()));
    std::vector<std::string> ids;
    for (const Held& h : redelivered) ids.push_back(h.e.message_id);
    auto counts = AttemptCounts(*pg_, ids);
    if (!counts.ok()) return failed(db_failed(counts.error()));
    auto attempts = [&](const Held& h) {
      auto it = counts->find(h.e.message_id);
      return it == counts->end() ? 0 : it->second;
    };
    std::stable_sort(redelivered.begin(), redelivered.end(),
                     [&](const Held& a, const Held& b) { return attempts(a) < attempts(b); });
    for (const Held& h : redelivered) {
      s = EnsureDatabase();  // a dead letter's failed record may have dropped the connection
      if (!s.ok()) return failed(db_failed(s.error()));
      auto n = RecordAttempt(*pg_, h.e);
      if (!n.ok()) return failed(db_failed(n.error()));
      if (*n > 1)
        log::Warn("message_attempted_again", {{"message_id", h.e.message_id},
                                              {"charge_id", h.e.charge_id},
                                              {"attempts", *n},
                                              {"delivery_count", h.d->message.delivery_count}});
      s = apply_alone(h);
      if (!s.ok() && alone_failed(s.error())) return failed(s.error());
    }
  }
  if (held_back) return failed(*held_back);
  return static_cast<int>(settled.size());
}

Result<int> Consumer::RunOnce() {
  if (clock_.Now() - max_delivery_count_at_ > opt_.redelivery_window && max_delivery_count_ != 0) {
    max_delivery_count_ = 0;
    max_delivery_count_gauge_.Set(0);
  }
  Status s = EnsureBroker();
  if (s.ok()) s = Fill();
  if (!s.ok()) return Failed(s.error());
  if (pending_.empty()) return 0;
  auto r = Settle();
  if (!r.ok()) return Failed(r.error());
  return r;
}

Status Consumer::Run(const std::atomic<bool>& stop) {
  log::Info("consumer_started", {{"queue", opt_.topology.queue},
                                 {"prefetch", static_cast<int>(opt_.prefetch)},
                                 {"batch", opt_.batch}});
  return worker::RunLoop(
      {"consumer", opt_.backoff_base, opt_.backoff_cap}, clock_, random_, stop,
      [&]() -> Result<Clock::Duration> {
        auto r = RunOnce();
        if (!r.ok()) return r.error();
        return Clock::Duration::zero();
      },
      [&] { ServiceBroker(); });
}

}  // namespace paypath::ledger
