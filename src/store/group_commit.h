// Group commit: concurrent requests' statements of one phase leave for PostgreSQL together, one statement
// over arrays and (for the completion) one transaction per batch, so a commit, a round trip and an fsync
// are paid once per batch instead of once per request.
//
// A Batcher<Item, Out> owns `connections` worker threads. SubmitAsync() queues an item with its
// continuation and returns at once; the worker that ran the item's batch calls the continuation with
// exactly that item's own result (TigerBeetle: one result per event; a batch is an optimisation the caller
// never sees, except in speed). A continuation runs on the worker, so it must not block: it hands its work
// to its own executor (IdempotencyStore's async calls do). Submit() is the blocking form, for callers that
// own a thread anyway (tools, tests, the in-doubt resolver).
// The batcher itself does not bound its queue: the api's admission bound (api/charges.h, max_pending) does.
//
// When a batch leaves (no added delay when idle):
//   - a free worker takes the queue at once when no batch of this phase is in flight;
//   - while one is in flight, a free worker waits until the queue holds max_batch items, or its oldest item
//     has waited max_wait, or the batch in flight finishes: the next batch forms while the current commits;
//   - a batch holds at most max_batch items.
// The run function gets the whole batch and must fill one result per item; how a refused row is split out
// and retried alone, and what an in-doubt COMMIT means, is the run function's contract (idempotency_store.h).
//
// Metrics, labelled {phase}: paypath_group_commit_batch_size (histogram of items per batch),
// paypath_group_commit_wait_seconds (histogram of each item's time in the queue before its batch left),
// paypath_group_commit_queued (gauge: items waiting for a batch), paypath_group_commit_splits_total.
// Failpoint group_commit.<phase>.form (delay only): a worker about to form a batch sleeps first, queue
// unlocked, so a test can gather concurrent items into one batch (it then waits on the queued gauge).
// Thread-safe. Stop() (and the destructor) joins the workers and fails queued items with kUnavailable.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/failpoints.h"
#include "common/metrics.h"
#include "common/result.h"

namespace paypath::store {

struct GroupCommitOptions {
  // Off: every claim and completion is its own statement/transaction on a pooled connection (the same SQL
  // with arrays of one), as before group commit.
  bool enabled = true;
  // Items per batch. 64: the api's default 32 handler threads can never fill it, so under the default
  // settings every waiting request leaves with the next batch; the statement's arrays stay a few tens of KB.
  int max_batch = 64;
  // The longest a queued item waits for a free worker to stop hoping for a fuller batch, while another
  // batch is in flight. 1 ms: about a third of a batched commit on this machine, so waiting can at most
  // add that to one request, while a second worker still overlaps commits when the first is slow.
  std::chrono::microseconds max_wait{1000};
  // Workers per phase, i.e. batches in flight at once, each on a pooled connection while it runs. 2: one
  // batch commits while the next forms; more only splits the same requests into smaller batches.
  int connections = 2;

  // kInvalidArgument unless 1 <= max_batch <= 4096, 0 <= max_wait <= 100 ms, 1 <= connections <= 16.
  Status Validate() const;
};

// Observations shared by every phase's batcher (one registry family each, labelled by phase).
struct GroupCommitMetrics {
  explicit GroupCommitMetrics(const std::string& phase);
  metrics::Histogram& batch_size;
  metrics::Histogram& wait_seconds;
  metrics::Counter& splits;  // batches split in two because a row in them was refused
  metrics::Gauge& queued;
};

template <typename Item, typename Out>
class Batcher {
 public:
  // Fills out[i] for every items[i]; out arrives sized like items, each entry kInternal until set.
  using Run = std::function<void(std::vector<Item>& items, std::vector<Result<Out>>& out)>;
  using Done = std::function<void(Result<Out>)>;

  Batcher(std::string phase, GroupCommitOptions options, Clock& clock, Run run)
      : options_(options), clock_(clock), run_(std::move(run)), metrics_(phase), form_failpoint_("group_commit." + phase + ".form") {
    for (int i = 0; i < options_.connections; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~Batcher() { Stop(); }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues the item; `done` gets its own result once its batch has run (on a worker thread), or
  // kUnavailable at once (on this thread) if the batcher is stopping.
  void SubmitAsync(Item item, Done done) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!stop_) {
        queue_.push_back(Slot{std::move(item), std::move(done), clock_.Now()});
        metrics_.queued.Add(1);
        done = nullptr;
      }
    }
    if (done) return done(Error::Unavailable("the batcher stopped"));
    cv_.notify_one();
  }

  // Lets the batches in flight finish (their continuations run as usual), fails every queued item with
  // kUnavailable (its continuation runs on this thread) and joins the workers; later submissions fail at
  // once. Idempotent; the destructor calls it. A process stops its batchers while whatever their
  // continuations reach (the api's I/O threads and ChargeApi) still runs.
  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    std::deque<Slot> left;
    {
      std::lock_guard<std::mutex> lk(mu_);
      left.swap(queue_);
    }
    metrics_.queued.Add(-static_cast<double>(left.size()));
    for (Slot& s : left) s.done(Error::Unavailable("the batcher stopped"));
  }

  // Blocks until the item's batch has run; returns the item's own result.
  Result<Out> Submit(Item item) {
    auto p = std::make_shared<std::promise<Result<Out>>>();
    auto f = p->get_future();
    SubmitAsync(std::move(item), [p](Result<Out> r) { p->set_value(std::move(r)); });
    return f.get();
  }

 private:
  struct Slot {
    Item item;
    Done done;
    std::chrono::steady_clock::time_point enqueued;
  };

  void Work() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      if (stop_) return;
      if (queue_.empty()) {
        cv_.wait(lk);
        continue;
      }
      const bool full = queue_.size() >= static_cast<size_t>(options_.max_batch);
      const auto leave_at = queue_.front().enqueued + options_.max_wait;
      if (in_flight_ > 0 && !full && clock_.Now() < leave_at) {
        cv_.wait_until(lk, leave_at);
        continue;
      }
      lk.unlock();  // one relaxed load when failpoints are off; a test's delay must not hold the queue
      (void)failpoints::Hit(form_failpoint_);
      lk.lock();
      if (stop_ || queue_.empty()) continue;
      std::vector<Slot> batch;
      while (!queue_.empty() && batch.size() < static_cast<size_t>(options_.max_batch)) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      metrics_.queued.Add(-static_cast<double>(batch.size()));
      ++in_flight_;
      lk.unlock();
      RunBatch(batch);
      lk.lock();
      --in_flight_;
      cv_.notify_all();  // a worker waiting for a fuller batch may leave now
    }
  }

  void RunBatch(std::vector<Slot>& batch) {
    const auto start = clock_.Now();
    metrics_.batch_size.Observe(static_cast<double>(batch.size()));
    std::vector<Item> items;
    items.reserve(batch.size());
    for (Slot& s : batch) {
      metrics_.wait_seconds.Observe(std::chrono::duration<double>(start - s.enqueued).count());
      items.push_back(std::move(s.item));
    }
    std::vector<Result<Out>> out(items.size(), Result<Out>(Error::Internal("no result for this batch item")));
    run_(items, out);
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(out[i]));
  }

  const GroupCommitOptions options_;
  Clock& clock_;
  const Run run_;
  GroupCommitMetrics metrics_;
  const std::string form_failpoint_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Slot> queue_;   // protected by mu_
  int in_flight_ = 0;        // protected by mu_: batches running now
  bool stop_ = false;        // protected by mu_
  std::vector<std::thread> workers_;
};

}  // namespace paypath::store
