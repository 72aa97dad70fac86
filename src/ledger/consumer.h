// The ledger consumer: reads charge events from the quorum queue and applies each exactly once, using the
// inbox table in the effect's own transaction (see postings.h).
//
// One batch (RunOnce):
//   1. take up to `batch` deliveries (waiting up to `poll` for the first; prefetch bounds what is in flight);
//   2. reject poison messages (unparseable or invalid for the ledger, see event.h) with requeue: the quorum
//      queue counts the return, and after `delivery_limit` returns dead-letters the message to <queue>.dlq.
//      Poison never enters the transaction, so it never blocks the messages behind it;
//   3. one PostgreSQL transaction: inbox insert + postings for every valid message, balance upserts;
//      failpoint consumer.before_commit; COMMIT; failpoint consumer.after_commit;
//   4. ack every message of the batch. Only now may the broker forget them.
// A crash before COMMIT: nothing applied, messages redelivered. After COMMIT, before ack: redelivered,
// found in the inbox, acked as duplicates. If a batch fails for a data reason, it is retried one message per
// transaction so only the offending message is treated as poison.
//
// Threads: one thread per Consumer. Several consumers (threads or processes) may share a queue.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/result.h"
#include "ledger/event.h"
#include "broker/amqp.h"
#include "broker/topology.h"
#include "store/pg.h"

namespace paypath::ledger {

struct ConsumerOptions {
  std::string pg_url;
  amqp::Settings amqp;
  amqp::Topology topology;
  // 50 unacked messages: one full batch in hand while the next is in flight, small enough that a crash
  // redelivers little and a second consumer still gets work.
  uint16_t prefetch = 50;
  // Messages per transaction: the inbox insert and postings of a batch share one COMMIT (one fsync).
  int batch = 50;
  // How long RunOnce waits for the first message of a batch.
  std::chrono::milliseconds poll{200};
  std::chrono::milliseconds backoff_base{100};
  // 2 s cap keeps the AMQP heartbeat (5 s) serviced between retries while the database is away.
  std::chrono::milliseconds backoff_cap{2000};
  metrics::Registry* registry = &metrics::Registry::Default();
};

class Consumer {
 public:
  Consumer(ConsumerOptions options, Clock& clock, Random& random);
  ~Consumer();

  // One batch, as above. Returns the number of messages settled (acked or rejected); 0 if none arrived
  // within `poll`. Errors: kUnavailable / kAborted / kOutcomeUnknown (database or broker trouble: the
  // messages stay unacked and are retried by the next RunOnce, or redelivered if the connection dropped),
  // kFailedPrecondition (topology mismatch), kInternal (failpoint error).
  Result<int> RunOnce();

  // Runs batches until `stop`, backing off with full jitter on errors. Returns an error only for
  // configuration errors.
  Status Run(const std::atomic<bool>& stop);

 private:
  Status EnsureConnected();
  Status Fill();
  Result<int> Settle();
  // Rejects with requeue; counts a dead-lettering when this was the last allowed delivery.
  Status RejectPoison(const amqp::Delivery& d, const std::string& reason);
  Status AckAll(const std::vector<amqp::Delivery>& ds);
  Result<std::vector<int>> ApplyInTransaction(const std::vector<ChargeEvent>& events);

  ConsumerOptions opt_;
  Clock& clock_;
  Random& random_;
  std::unique_ptr<store::PgConn> pg_;
  std::unique_ptr<amqp::Connection> mq_;
  std::vector<amqp::Delivery> pending_;  // received, not yet settled; valid only while mq_ lives

  metrics::Counter& applied_;
  metrics::Counter& duplicates_;
  metrics::Counter& dead_lettered_;
  metrics::Counter& poison_;
  metrics::Counter& errors_;
  metrics::Histogram& apply_delay_;
};

}  // namespace paypath::ledger
