#include "outbox/relay.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/failpoints.h"
#include "common/log.h"
#include "common/worker.h"
#include "events/charge_event.h"

namespace paypath::outbox {
namespace {

// --- The relay's SQL, all of it. ---

// Oldest unpublished rows first; SKIP LOCKED lets a second relay take the next rows instead of waiting.
constexpr const char* kClaimSql =
    "SELECT id, message_id::text, tenant, aggregate_id, event_type, payload::text, "
    "       extract(epoch FROM created_at)::bigint "
    "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";

constexpr const char* kMarkSql = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])";

// Bounded: one purge never deletes more than $2 rows, so it never holds locks or bloats WAL for long.
constexpr const char* kPurgeSql =
    "DELETE FROM outbox WHERE id IN ("
    "  SELECT id FROM outbox WHERE published_at IS NOT NULL "
    "    AND published_at < now() - $1::double precision * interval '1 second' "
    "  ORDER BY published_at LIMIT $2)";

constexpr const char* kBacklogSql =
    "SELECT count(*), COALESCE(extract(epoch FROM now() - min(created_at)), 0)::double precision "
    "FROM outbox WHERE published_at IS NULL";

}  // namespace

Relay::Relay(RelayOptions options, Clock& clock, Random& random)
    : opt_(std::move(options)),
      clock_(clock),
      random_(random),
      bucket_(clock, opt_.rate, opt_.burst),
      published_(opt_.registry->GetCounter("paypath_outbox_published_total",
                                           "Outbox rows published to the broker and confirmed")),
      publish_errors_(opt_.registry->GetCounter(
          "paypath_relay_publish_errors_total",
          "Relay batches that failed (broker or database unavailable, confirm timeout) plus nacked messages")),
      returned_(opt_.registry->GetCounter(
          "paypath_relay_returned_total",
          "Messages the broker returned as unroutable (no queue bound for the routing key); left unpublished")),
      purged_(opt_.registry->GetCounter("paypath_outbox_purged_total", "Published outbox rows purged")),
      backlog_(opt_.registry->GetGauge("paypath_outbox_backlog_rows", "Outbox rows not yet published")),
      oldest_age_(opt_.registry->GetGauge("paypath_outbox_oldest_age_seconds",
                                          "Age of the oldest unpublished outbox row (0 when none)")) {}

Relay::~Relay() = default;

Status Relay::EnsureConnected() {
  if (pg_ && !pg_->healthy()) pg_.reset();
  if (!pg_) {
    auto c = store::PgConn::Connect(opt_.pg_url, "paypath-relay");
    if (!c.ok()) return c.error();
    pg_ = std::move(c.value());
  }
  if (mq_ && mq_->broken()) mq_.reset();
  if (!mq_) {
    // Each reconnect starts at the node after the last one connected to (amqp::Settings::first_node).
    amqp::Settings settings = opt_.amqp;
    settings.first_node = next_node_;
    auto c = amqp::Connection::Open(settings);
    if (!c.ok()) return c.error();
    next_node_ = c.value()->node() + 1;
    // The relay may not declare anything (it can write to paypath.events, nothing else); a missing queue
    // or exchange is a configuration error that stops it (docs/design.md "Who may do what").
    Status s = amqp::VerifyTopology(*c.value(), opt_.topology);
    if (!s.ok()) return s;
    s = c.value()->EnableConfirms();
    if (!s.ok()) return s;
    mq_ = std::move(c.value());
    log::Info("relay_connected", {{"queue", opt_.topology.queue}, {"node", mq_->endpoint()}});
  }
  return OkStatus();
}

Result<int> Relay::RunOnce() {
  rate_limited_ = false;
  drained_ = false;
  nacked_ = 0;
  returned_in_batch_ = 0;
  int limit = static_cast<int>(std::min<double>(opt_.batch, std::floor(bucket_.Available())));
  if (limit < 1) {
    rate_limited_ = true;
    return 0;
  }
  Status s = EnsureConnected();
  if (!s.ok()) {
    publish_errors_.Inc();
    return s.error();
  }
  auto r = PublishBatch(limit);
  if (!r.ok()) {
    publish_errors_.Inc();
    // A failed batch may have left the channel mid-confirm: start over on a fresh connection.
    mq_.reset();
  } else if (nacked_ > returned_in_batch_) {
    // Nacks (not returns: those are a missing binding, the same on any channel) start over on a fresh
    // connection too. A channel opened on a surviving node while the quorum queue was still electing a
    // leader was seen to nack every later publish for as long as it lived, while a new connection to the
    // same node published at once (docs/design.md "Finding the new leader"). Nacks are otherwise rare, so
    // the reconnect costs nothing; the rows stay unpublished and the backoff paces the retry.
    mq_.reset();
  }
  return r;
}

Result<int> Relay::PublishBatch(int limit) {
  auto tx = store::Transaction::Start(*pg_);
  if (!tx.ok()) return tx.error();
  auto rows = pg_->Exec(kClaimSql, {std::to_string(limit)});
  if (!rows.ok()) return rows.error();
  int n = rows->rows();
  drained_ = n < limit;
  if (n == 0) return 0;
  bucket_.Take(n);

  std::vector<std::pair<uint64_t, std::string>> tags;  // delivery tag -> outbox id
  tags.reserve(n);
  for (int i = 0; i < n; ++i) {
    amqp::Message m = events::EncodeMessage({rows->GetInt(i, 0), rows->GetString(i, 1), rows->GetString(i, 2),
                                             rows->GetString(i, 3), rows->GetString(i, 4), rows->GetString(i, 5),
                                             rows->GetInt(i, 6)});
    // Failpoint: this row's message goes out with a routing key no queue is bound for, as if its binding
    // had just been removed; the broker returns it and the row must stay unpublished.
    std::string key = opt_.topology.queue;
    if (failpoints::Hit("relay.publish_unroutable")) key += ".unroutable";
    auto tag = mq_->Publish(opt_.topology.exchange(), key, m);
    if (!tag.ok()) return tag.error();
    tags.emplace_back(*tag, rows->GetString(i, 0));
  }
  auto confirms = mq_->WaitForConfirms(opt_.confirm_timeout);
  if (!confirms.ok()) return confirms.error();

  // The broker holds the events now. A crash here republishes them on restart: the window the consumer's
  // inbox closes.
  if (failpoints::Hit("relay.after_publish")) return Error::Internal("failpoint relay.after_publish");

  std::string ids = "{";
  int marked = 0;
  for (const auto& [tag, id] : tags) {
    if (confirms->failed.count(tag)) continue;
    if (marked++) ids += ",";
    ids += id;
  }
  ids += "}";
  nacked_ = n - marked;
  returned_in_batch_ = static_cast<int>(confirms->returned.size());
  if (nacked_ > 0) {
    publish_errors_.Inc(nacked_);
    returned_.Inc(static_cast<double>(confirms->returned.size()));
    log::Warn("relay_nacked", {{"nacked", nacked_},
                               {"returned", static_cast<int64_t>(confirms->returned.size())},
                               {"return_reason", confirms->return_reason},
                               {"batch", n}});
  }
  if (marked > 0) {
    auto upd = pg_->Exec(kMarkSql, {ids});
    if (!upd.ok()) return upd.error();
  }
  Status c = (*tx)->Commit();
  // kOutcomeUnknown included: if the mark did not commit, the rows are republished; the inbox dedups.
  if (!c.ok()) return c.error();
  published_.Inc(marked);
  return marked;
}

Result<int> Relay::PurgeOnce() {
  if (pg_ && !pg_->healthy()) pg_.reset();
  if (!pg_) {
    auto c = store::PgConn::Connect(opt_.pg_url, "paypath-relay");
    if (!c.ok()) return c.error();
    pg_ = std::move(c.value());
  }
  auto r = pg_->Exec(kPurgeSql, {std::to_string(static_cast<double>(opt_.retention.count())),
                                 std::to_string(opt_.purge_batch)});
  if (!r.ok()) return r.error();
  int n = static_cast<int>(r->affected());
  purged_.Inc(n);
  return n;
}

Status Relay::UpdateBacklogMetrics() {
  if (!pg_ || !pg_->healthy()) return Error::Unavailable("no database connection");
  auto r = pg_->Exec(kBacklogSql);
  if (!r.ok()) return r.error();
  backlog_.Set(static_cast<double>(r->GetInt(0, 0)));
  oldest_age_.Set(r->GetDouble(0, 1));
  return OkStatus();
}

Status Relay::Run(const std::atomic<bool>& stop) {
  auto next_purge = clock_.Now();
  auto next_stats = clock_.Now();
  // Wait for ~50 ms worth of tokens when rate limited, so the relay publishes in chunks of rate/20 instead
  // of one row per transaction.
  const double chunk = std::clamp(opt_.rate / 20.0, 1.0, static_cast<double>(opt_.batch));
  log::Info("relay_started", {{"queue", opt_.topology.queue},
                              {"rate", opt_.rate},
                              {"burst", opt_.burst},
                              {"batch", opt_.batch}});
  auto step = [&]() -> Result<Clock::Duration> {
    auto now = clock_.Now();
    if (now >= next_stats) {
      (void)UpdateBacklogMetrics();
      next_stats = now + opt_.stats_interval;
    }
    if (now >= next_purge) {
      auto p = PurgeOnce();
      if (p.ok() && *p > 0) log::Info("outbox_purged", {{"rows", *p}});
      // A full batch means there is more: come back soon rather than after a whole interval.
      bool more = p.ok() && *p == opt_.purge_batch;
      next_purge = now + (more ? std::chrono::milliseconds(100) : opt_.purge_interval);
    }
    auto r = RunOnce();
    if (!r.ok()) return r.error();
    // Nacked or returned rows stay unpublished: back off before trying them again.
    if (nacked_ > 0) return Error::Unavailable("the broker refused " + std::to_string(nacked_) + " message(s)");
    if (rate_limited_) return Clock::Duration(bucket_.TimeUntil(chunk));
    if (!drained_) return Clock::Duration::zero();
    if (mq_) {
      Status ka = mq_->KeepAlive();
      if (!ka.ok()) {
        log::Warn("relay_broker_lost", {{"error", ka.error().ToString()}});
        mq_.reset();
      }
    }
    return Clock::Duration(opt_.idle_poll);
  };
  return worker::RunLoop({"relay", opt_.backoff_base, opt_.backoff_cap}, clock_, random_, stop, step);
}

}  // namespace paypath::outbox
