// The outbox relay: moves committed outbox rows to RabbitMQ and marks them published only after the broker
// confirmed them, so an event is never lost between PostgreSQL and the broker (it may be published twice;
// the consumer's inbox makes the second copy a no-op).
//
// One batch (RunOnce), in one PostgreSQL transaction:
//   1. claim up to min(batch, whole tokens in the bucket) unpublished rows in id order,
//      FOR UPDATE SKIP LOCKED, so several relays share the work without publishing the same row twice;
//   2. publish each row to exchange paypath.events with routing key = the queue (persistent, mandatory,
//      message_id = outbox.message_id, headers tenant / charge_id / event_type / outbox_id) and wait for
//      every publisher confirm; a returned (unroutable) message fails exactly its own row (amqp::Confirms);
//   3. failpoint relay.after_publish (broker has the events; rows not yet marked);
//   4. mark the confirmed rows published_at = now() and commit. Nacked/returned rows stay unpublished.
// At connect the relay verifies the topology with passive declares (it has no permission to declare):
// anything missing is a configuration error (kFailedPrecondition) that stops Run().
// A crash or error anywhere before the commit rolls back: the rows are claimed again by the next batch and
// republished (at-least-once). Rows are never skipped: a row left behind blocks nothing, it is simply the
// first row of the next claim.
//
// Threads: a Relay is used by one thread. Several Relay instances (threads or processes) may run at once.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/result.h"
#include "broker/amqp.h"
#include "common/backoff.h"
#include "outbox/token_bucket.h"
#include "broker/topology.h"
#include "store/pg.h"

namespace paypath::outbox {

struct RelayOptions {
  std::string pg_url;
  amqp::Settings amqp;
  amqp::Topology topology;
  // 100 rows per transaction: big enough to amortize the round trips, small enough that a confirm timeout
  // re-sends little and row locks are held for milliseconds.
  int batch = 100;
  // Catch-up pace. 500/s with a burst of 500 is far above steady-state charge traffic (so it adds no
  // latency normally) yet keeps an 18,000-row backlog from arriving at the consumer in one burst.
  double rate = 2000;
  double burst = 2000;
  // Published rows are kept this long (for forensics and replays), then purged in batches of purge_batch.
  std::chrono::seconds retention{std::chrono::hours(24)};
  int purge_batch = 1000;
  std::chrono::milliseconds purge_interval{10000};
  // A broker that has not confirmed within 5 s is treated as down; the batch is retried after backoff.
  std::chrono::milliseconds confirm_timeout{5000};
  // How often an idle relay looks for new rows: adds at most this much to commit-to-publish latency.
  // 5 ms keeps that well under the 50 ms end-to-end budget (bench/results.md) for one cheap index probe
  // of the partial index on unpublished rows per poll (~200 a second when idle).
  std::chrono::milliseconds idle_poll{5};
  std::chrono::milliseconds backoff_base{100};
  // 2 s cap: once the broker is back, the relay resumes within 2 s.
  std::chrono::milliseconds backoff_cap{2000};
  std::chrono::milliseconds stats_interval{1000};
  metrics::Registry* registry = &metrics::Registry::Default();
};

class Relay {
 public:
  Relay(RelayOptions options, Clock& clock, Random& random);
  ~Relay();

  // One batch, as described above. Returns the number of rows marked published (0: nothing to publish, or
  // the token bucket is empty: see rate_limited()). Errors: kUnavailable (broker or database unreachable,
  // confirms timed out; the connection is dropped, the rows stay unpublished), kFailedPrecondition
  // (topology mismatch: configuration error), kInternal (failpoint error or unexpected database error).
  Result<int> RunOnce();

  // Deletes up to purge_batch rows published more than `retention` ago. Returns the number deleted.
  Result<int> PurgeOnce();

  // Refreshes paypath_outbox_backlog_rows and paypath_outbox_oldest_age_seconds.
  Status UpdateBacklogMetrics();

  // Runs batches until `stop` is set: backs off with full jitter on errors, waits for tokens when rate
  // limited, polls every idle_poll when idle, purges every purge_interval. Returns an error only for
  // configuration errors that retrying cannot fix.
  Status Run(const std::atomic<bool>& stop);

  // After RunOnce: true if it did nothing because the bucket had no whole token.
  bool rate_limited() const { return rate_limited_; }
  // After RunOnce: true if it claimed fewer rows than it asked for (the backlog is empty).
  bool drained() const { return drained_; }
  // After RunOnce: rows the broker nacked or returned (left unpublished for the next batch).
  int nacked() const { return nacked_; }

 private:
  Status EnsureConnected();
  Result<int> PublishBatch(int limit);

  RelayOptions opt_;
  Clock& clock_;
  Random& random_;
  TokenBucket bucket_;
  std::unique_ptr<store::PgConn> pg_;
  std::unique_ptr<amqp::Connection> mq_;
  size_t next_node_ = 0;  // the AMQP node list entry the next connect tries first
  bool rate_limited_ = false;
  bool drained_ = false;
  int nacked_ = 0;
  int returned_in_batch_ = 0;  // of nacked_, the unroutable ones (basic.return)

  metrics::Counter& published_;
  metrics::Counter& publish_errors_;
  metrics::Counter& returned_;
  metrics::Counter& purged_;
  metrics::Gauge& backlog_;
  metrics::Gauge& oldest_age_;
};

}  // namespace paypath::outbox
