// The ledger consumer: reads charge events from the quorum queue, verifies each (events/charge_event.h) and
// applies it exactly once, using the inbox table in the effect's own transaction (postings.h), in the
// ledger's own database.
//
// One step (RunOnce):
//   1. take what has arrived (waiting up to `poll` for the first delivery; prefetch bounds what is held);
//   2. verify every message; one that breaks the event contract is poison and is dead-lettered at once with
//      basic.reject(requeue=false) and its named reason (metric paypath_dlq_messages_total{reason}, a log
//      line and a dead_letters row, all keyed by message_id). Poison never enters a transaction;
//   3. fresh messages (first delivery) in batches of `batch`, one transaction each: inbox insert + postings
//      + balance upserts; failpoint consumer.before_commit; COMMIT; failpoint consumer.after_commit; ack.
//      If PostgreSQL refuses a batch as data (SQLSTATE class 22 or 23) or the ledger refuses it as
//      inconsistent, each message is applied alone: the one refused as data is poison (reason
//      posting_refused), every other is acked as its own transaction commits;
//   4. redelivered messages (redelivered flag or x-delivery-count > 0: their first attempt ended in a crash
//      or a lost connection) one per transaction, fewest persisted attempts first (delivery_attempts, counted
//      and committed before each attempt), each acked as it commits. A message that crashes the consumer
//      every time therefore falls behind every other message and stalls none of them; it is never
//      dead-lettered automatically (only the message's own faults are poison), it is exposed instead
//      (paypath_consumer_max_redeliveries, an alert, delivery_attempts) for an operator to park by hand.
// Any other failure (connection loss, read-only 25006, 53xxx, 57xxx, 40xxx, unknown codes, the broker) keeps
// the messages held, unacked, and returns the error: Run backs off with full jitter and, while it waits,
// services the broker connection (heartbeats, new deliveries) so the broker never drops the consumer and
// returns its messages. The database connection is dropped after such a failure and reopened, so a
// failover to a new primary is followed.
// A crash before COMMIT: nothing applied, messages redelivered. After COMMIT, before ack: redelivered,
// found in the inbox, acked as duplicates.
//
// Threads: one thread per Consumer. Several consumers (threads or processes) may share a queue.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "broker/amqp.h"
#include "broker/topology.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/result.h"
#include "events/charge_event.h"
#include "ledger/postings.h"
#include "store/pg.h"

namespace paypath::ledger {

// Dead-letter reasons besides the event contract's violations (events::ViolationName).
inline constexpr const char* kPostingRefused = "posting_refused";        // PostgreSQL refused it as data
inline constexpr const char* kParkedByOperator = "parked_by_operator";  // `paypath dlq park`
// A duplicate (its message id or its charge already applied) whose charge id, tenant, account, amount or
// currency disagrees with what was posted: forged or corrupt, never a retry (postings.h).
inline constexpr const char* kChargeConflict = "charge_conflict";

// Every dead-letter reason name: the label values of paypath_dlq_messages_total.
std::vector<std::string> DeadLetterReasons();

// True for an error PostgreSQL raised because of the data (SQLSTATE class 22 or 23): applying the same
// message again cannot succeed.
bool IsDataRefusal(const Error& e);

struct ConsumerOptions {
  std::string ledger_pg_url;
  // Apply sql/ledger_schema.sql on the first database connection (paypath consumer --no-migrate: off).
  bool migrate = true;
  amqp::Settings amqp;
  amqp::Topology topology;
  // 200 unacked messages, four batches: while one is in its transaction the broker has already delivered
  // the next ones, so a busy consumer never waits a broker round trip between batches (with prefetch equal
  // to the batch the broker sends nothing until the batch is acked: at 1,000 charges/s on the bench machine
  // messages then queued in RabbitMQ for 200 ms at p50, docs/design.md "Consumer prefetch"). Small enough
  // that a crash redelivers little (the inbox turns redeliveries into duplicates) and that a second
  // consumer still gets work from a backlog. Keep it at least 2 x batch: nothing enforces more than
  // batch <= prefetch (paypath consumer lowers --batch to --prefetch).
  uint16_t prefetch = 200;
  // Messages per transaction: the inbox insert and postings of a batch share one COMMIT (one fsync).
  int batch = 50;
  // How long RunOnce waits for the first message of a batch.
  std::chrono::milliseconds poll{200};
  std::chrono::milliseconds backoff_base{100};
  // 2 s cap: once the database is back, held messages are applied within about 2 s.
  std::chrono::milliseconds backoff_cap{2000};
  // paypath_consumer_max_redeliveries forgets a count after 5 min without a delivery that high: long
  // enough for several scrapes and the alert's window, short enough to clear after an incident.
  std::chrono::seconds redelivery_window{300};
  metrics::Registry* registry = &metrics::Registry::Default();
};

class Consumer {
 public:
  Consumer(ConsumerOptions options, Clock& clock, Random& random);
  ~Consumer();

  // One step, as above. Returns the number of messages settled (acked or dead-lettered); 0 if none arrived
  // within `poll`. Errors (the messages not settled stay held and are retried by the next RunOnce, or
  // redelivered if the broker connection dropped): kUnavailable / kAborted / kOutcomeUnknown (database or
  // broker trouble), kInternal (an inconsistent ledger, a failpoint), kFailedPrecondition (topology
  // mismatch: configuration), kInvalidArgument without sqlstate (bad URL: configuration).
  Result<int> RunOnce();

  // Services the broker connection without blocking: sends due heartbeats, notices a closed connection and
  // buffers deliveries that arrived. Run calls it every 50 ms while it waits.
  void ServiceBroker();

  // Runs steps until `stop` (worker::RunLoop): backs off with full jitter on errors, servicing the broker
  // meanwhile. Returns an error only for configuration errors.
  Status Run(const std::atomic<bool>& stop);

  // Messages received and not yet settled (tests).
  size_t held() const { return pending_.size(); }

 private:
  Status EnsureBroker();
  Status EnsureDatabase();
  void DropBroker();
  Error Failed(Error e);
  void Receive(amqp::Delivery d);
  Status Fill();
  Result<int> Settle();
  Status DeadLetter(const amqp::Delivery& d, const std::string& reason, const std::string& detail,
                    const events::ChargeEvent* e);
  Result<std::vector<Applied>> ApplyInTransaction(const std::vector<const events::ChargeEvent*>& events);
  // Acks d and counts its outcome (applied / duplicate), or dead-letters it (charge_conflict).
  Status Settled(const amqp::Delivery& d, const events::ChargeEvent& e, const Applied& applied);

  ConsumerOptions opt_;
  Clock& clock_;
  Random& random_;
  std::unique_ptr<store::PgConn> pg_;
  bool migrated_ = false;
  std::unique_ptr<amqp::Connection> mq_;
  size_t next_node_ = 0;  // the AMQP node list entry the next connect tries first
  std::vector<amqp::Delivery> pending_;  // received, not yet settled; valid only while mq_ lives
  int64_t max_delivery_count_ = 0;
  std::chrono::steady_clock::time_point max_delivery_count_at_{};

  metrics::Counter& applied_;
  metrics::Counter& duplicates_;
  metrics::Counter& duplicates_by_message_id_;
  metrics::Counter& duplicates_by_charge_;
  metrics::Counter& poison_;
  metrics::Counter& errors_;
  metrics::Counter& redeliveries_;
  metrics::Gauge& max_delivery_count_gauge_;
  metrics::Histogram& apply_delay_;
};

}  // namespace paypath::ledger
