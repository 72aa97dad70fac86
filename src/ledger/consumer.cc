#include "ledger/consumer.h"

#include <optional>

#include "common/failpoints.h"
#include "common/log.h"
#include "ledger/postings.h"
#include "common/backoff.h"
#include "outbox/worker.h"

namespace paypath::ledger {
namespace {

// Errors that say "this data is wrong", as opposed to "try again later".
bool IsDataError(const Error& e) {
  return e.code == ErrorCode::kInternal || e.code == ErrorCode::kConflict || e.code == ErrorCode::kInvalidArgument;
}

bool Fatal(const Error& e) {
  return e.code == ErrorCode::kFailedPrecondition || e.code == ErrorCode::kInvalidArgument;
}

// Seconds from charge commit to ledger apply: dense below a second (the normal path), then out to 10 min
// (a backlog draining after a broker outage).
std::vector<double> DelayBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

}  // namespace

Consumer::Consumer(ConsumerOptions options, Clock& clock, Random& random)
    : opt_(std::move(options)),
      clock_(clock),
      random_(random),
      applied_(opt_.registry->GetCounter("paypath_ledger_effects_applied_total",
                                         "Charge events whose double-entry posting was committed")),
      duplicates_(opt_.registry->GetCounter(
          "paypath_inbox_duplicates_total",
          "Deliveries acked without effect because the inbox (or the charge's postings) already had them")),
      dead_lettered_(opt_.registry->GetCounter(
          "paypath_dlq_messages_total",
          "Poison messages rejected on their last allowed delivery, i.e. sent to the dead-letter queue")),
      poison_(opt_.registry->GetCounter("paypath_consumer_poison_rejections_total",
                                        "Rejections of unparseable or invalid messages (every delivery)")),
      errors_(opt_.registry->GetCounter("paypath_consumer_errors_total",
                                        "Consumer batches that failed (database or broker trouble)")),
      apply_delay_(opt_.registry->GetHistogram("paypath_ledger_apply_delay_seconds",
                                               "Delay from charge commit (event created_at) to ledger apply",
                                               DelayBuckets())) {}

Consumer::~Consumer() = default;

Status Consumer::EnsureConnected() {
  if (pg_ && !pg_->healthy()) pg_.reset();
  if (!pg_) {
    auto c = store::PgConn::Connect(opt_.pg_url, "paypath-consumer");
    if (!c.ok()) return c.error();
    pg_ = std::move(c.value());
  }
  if (mq_ && mq_->broken()) {
    mq_.reset();
    pending_.clear();  // the broker requeues them when the connection goes
  }
  if (!mq_) {
    pending_.clear();
    auto c = amqp::Connection::Open(opt_.amqp);
    if (!c.ok()) return c.error();
    amqp::Connection& conn = *c.value();
    // Verify only: the consumer may read its queue, nothing more (docs/design.md "Who may do what").
    Status s = amqp::VerifyTopology(conn, opt_.topology);
    if (s.ok()) s = conn.Qos(opt_.prefetch);
    if (s.ok()) s = conn.Consume(opt_.topology.queue);
    if (!s.ok()) return s;
    mq_ = std::move(c.value());
    log::Info("consumer_connected", {{"queue", opt_.topology.queue}, {"prefetch", static_cast<int>(opt_.prefetch)}});
  }
  return OkStatus();
}

Status Consumer::Fill() {
  // With messages already in hand (a retry), only poll what is buffered: this also services heartbeats.
  auto wait = pending_.empty() ? opt_.poll : std::chrono::milliseconds(0);
  while (static_cast<int>(pending_.size()) < opt_.batch) {
    auto d = mq_->Next(wait);
    if (!d.ok()) return d.error();
    if (!d->has_value()) break;
    pending_.push_back(std::move(**d));
    wait = std::chrono::milliseconds(0);
  }
  return OkStatus();
}

Status Consumer::RejectPoison(const amqp::Delivery& d, const std::string& reason) {
  poison_.Inc();
  // Quorum queues dead-letter a message once it has been returned more than delivery_limit times; the
  // header counts earlier returns, so this rejection is the last one when it already equals the limit.
  bool last = d.message.delivery_count >= opt_.topology.delivery_limit;
  if (last) dead_lettered_.Inc();
  log::Warn("poison_message", {{"message_id", d.message.message_id},
                               {"reason", reason},
                               {"delivery_count", d.message.delivery_count},
                               {"dead_lettered", last}});
  return mq_->Reject(d.tag, /*requeue=*/true);
}

Status Consumer::AckAll(const std::vector<amqp::Delivery>& ds) {
  for (const auto& d : ds) {
    Status s = mq_->Ack(d.tag);
    if (!s.ok()) return s;
  }
  return OkStatus();
}

Result<std::vector<int>> Consumer::ApplyInTransaction(const std::vector<ChargeEvent>& events) {
  auto tx = store::Transaction::Start(*pg_);
  if (!tx.ok()) return tx.error();
  auto outcomes = ApplyBatch(*pg_, events);
  if (!outcomes.ok()) return outcomes.error();
  if (failpoints::Hit("consumer.before_commit")) return Error::Aborted("failpoint consumer.before_commit");
  Status c = (*tx)->Commit();
  // kOutcomeUnknown: the caller keeps the messages and retries; the inbox turns a committed batch into
  // duplicates, so the retry is safe.
  if (!c.ok()) return c.error();
  std::vector<int> out;
  for (Outcome o : *outcomes) out.push_back(static_cast<int>(o));
  return out;
}

Result<int> Consumer::Settle() {
  int settled = 0;
  std::vector<amqp::Delivery> valid;
  std::vector<ChargeEvent> events;
  for (auto& d : pending_) {
    auto e = ParseChargeEvent(d.message);
    if (!e.ok()) {
      Status s = RejectPoison(d, e.error().message);
      if (!s.ok()) return s.error();
      settled++;
      continue;
    }
    valid.push_back(std::move(d));
    events.push_back(std::move(e.value()));
  }
  pending_ = std::move(valid);
  if (events.empty()) return settled;

  std::vector<std::optional<Outcome>> outcomes(events.size());
  auto batch = ApplyInTransaction(events);
  if (batch.ok()) {
    for (size_t i = 0; i < events.size(); ++i) outcomes[i] = static_cast<Outcome>((*batch)[i]);
  } else if (IsDataError(batch.error())) {
    // Find the message the database refuses, one transaction each; the others still get applied.
    log::Warn("batch_rejected_isolating", {{"error", batch.error().ToString()}, {"size", static_cast<int>(events.size())}});
    for (size_t i = 0; i < events.size(); ++i) {
      auto one = ApplyInTransaction({events[i]});
      if (one.ok()) {
        outcomes[i] = static_cast<Outcome>((*one)[0]);
      } else if (!IsDataError(one.error())) {
        return one.error();  // pending_ still holds everything; committed ones become duplicates on retry
      }
    }
  } else {
    return batch.error();
  }

  // Committed, not acked: a crash here redelivers the batch, and the inbox makes it a no-op.
  if (failpoints::Hit("consumer.after_commit")) return Error::Aborted("failpoint consumer.after_commit");

  auto wall = clock_.WallNow();
  for (size_t i = 0; i < events.size(); ++i) {
    const amqp::Delivery& d = pending_[i];
    if (!outcomes[i]) {
      Status s = RejectPoison(d, "the database refused the posting");
      if (!s.ok()) return s.error();
    } else {
      Status s = mq_->Ack(d.tag);
      if (!s.ok()) return s.error();
      if (*outcomes[i] == Outcome::kApplied) {
        applied_.Inc();
        apply_delay_.Observe(std::chrono::duration<double>(wall - events[i].created_at).count());
      } else {
        duplicates_.Inc();
        log::Info("duplicate_delivery", {{"message_id", events[i].message_id},
                                         {"charge_id", events[i].charge_id},
                                         {"by", *outcomes[i] == Outcome::kDuplicate ? "inbox" : "charge"},
                                         {"redelivered", d.redelivered}});
      }
    }
    settled++;
  }
  pending_.clear();
  return settled;
}

Result<int> Consumer::RunOnce() {
  Status s = EnsureConnected();
  if (s.ok()) s = Fill();
  if (!s.ok()) {
    errors_.Inc();
    if (mq_ && mq_->broken()) {
      mq_.reset();
      pending_.clear();
    }
    return s.error();
  }
  if (pending_.empty()) return 0;
  auto r = Settle();
  if (!r.ok()) {
    errors_.Inc();
    if (mq_ && mq_->broken()) {
      mq_.reset();
      pending_.clear();
    }
  }
  return r;
}

Status Consumer::Run(const std::atomic<bool>& stop) {
  BackoffSequence backoff(random_, opt_.backoff_base, opt_.backoff_cap);
  log::Info("consumer_started", {{"queue", opt_.topology.queue},
                                 {"prefetch", static_cast<int>(opt_.prefetch)},
                                 {"batch", opt_.batch}});
  while (!stop.load()) {
    auto r = RunOnce();
    if (r.ok()) {
      backoff.Reset();
      continue;
    }
    if (Fatal(r.error())) {
      log::Error("consumer_stopped", {{"error", r.error().ToString()}});
      return r.error();
    }
    auto delay = backoff.Next();
    log::Warn("consumer_batch_failed", {{"error", r.error().ToString()},
                                        {"attempt", backoff.attempt()},
                                        {"backoff_ms", static_cast<int64_t>(delay.count())}});
    worker::SleepUnlessStopped(clock_, delay, stop);
  }
  log::Info("consumer_stopping", {});
  return OkStatus();
}

}  // namespace paypath::ledger
