#include "api/in_doubt.h"

#include <algorithm>

#include "common/log.h"
#include "common/metrics.h"

namespace paypath::api {
namespace {

metrics::Counter& InDoubtCounter(InDoubtPhase phase, const char* result) {
  return metrics::Registry::Default().GetCounter(
      "paypath_idempotency_in_doubt_total",
      "In-doubt attempts (COMMIT or claim reply lost) by phase and how they were settled (committed, "
      "not_committed, pending = unsettled when answered, untracked = resolver full)",
      {{"phase", InDoubtPhaseName(phase)}, {"result", result}});
}

metrics::Gauge& PendingGauge() {
  return metrics::Registry::Default().GetGauge("paypath_idempotency_in_doubt_pending",
                                               "In-doubt attempts this process is still trying to settle");
}

metrics::Counter& ChargesCreated() {
  return metrics::Registry::Default().GetCounter("paypath_charges_created_total",
                                                 "Charges committed to PostgreSQL (each exactly once per key)");
}

const char* ResultName(Resolution::Outcome o) {
  switch (o) {
    case Resolution::Outcome::kCommitted: return "committed";
    case Resolution::Outcome::kNotCommitted: return "not_committed";
    case Resolution::Outcome::kPending: return "pending";
  }
  return "?";
}

}  // namespace

const char* InDoubtPhaseName(InDoubtPhase p) { return p == InDoubtPhase::kCommit ? "commit" : "claim"; }

InDoubtResolver::InDoubtResolver(store::IdempotencyStore& store, Clock& clock, InDoubtOptions options)
    : store_(store), clock_(clock), options_(options) {
  // Every series exists from the start, so /metrics shows zeros rather than gaps.
  for (InDoubtPhase p : {InDoubtPhase::kCommit, InDoubtPhase::kClaim})
    for (const char* r : {"committed", "not_committed", "pending", "untracked"}) InDoubtCounter(p, r);
  PendingGauge();
}

void InDoubtResolver::Count(InDoubtPhase phase, const char* result) { InDoubtCounter(phase, result).Inc(); }

void InDoubtResolver::UpdateGauge() {
  PendingGauge().Set(static_cast<double>(count_));
  any_.store(count_ != 0);
}

size_t InDoubtResolver::pending() const {
  std::lock_guard lock(mu_);
  return count_;
}

Resolution InDoubtResolver::Try(const InDoubtAttempt& a) {
  auto s = store_.Settle(a.tenant, a.key, a.owner, a.charge_id, clock_, clock_.Now() + options_.attempt_bound,
                         options_.lock_timeout);
  Resolution r;
  if (!s.ok()) {
    log::Debug("in_doubt_unsettled", {{"tenant", a.tenant}, {"phase", InDoubtPhaseName(a.phase)},
                                      {"error", s.error().ToString()}});
    return r;
  }
  r.outcome = s->committed ? Resolution::Outcome::kCommitted : Resolution::Outcome::kNotCommitted;
  r.record = s->record;
  log::Info("in_doubt_settled", {{"tenant", a.tenant}, {"phase", InDoubtPhaseName(a.phase)},
                                 {"charge_id", a.charge_id}, {"result", ResultName(r.outcome)}});
  return r;
}

void InDoubtResolver::Finish(const std::string& slot, const std::string& owner, const Resolution& r, bool first) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(slot);
  if (it == entries_.end()) return;
  auto& v = it->second;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].attempt.owner != owner) continue;
    const InDoubtPhase phase = v[i].attempt.phase;
    if (r.outcome == Resolution::Outcome::kPending) {
      v[i].busy = false;
      v[i].interval = v[i].interval.count() == 0 ? options_.retry_interval
                                                 : std::min(v[i].interval * 2, options_.max_retry_interval);
      v[i].next_try = clock_.Now() + v[i].interval;
      if (first) Count(phase, "pending");
    } else {
      Count(phase, ResultName(r.outcome));
      // The charge committed although its request never heard so: it is a charge created all the same.
      if (phase == InDoubtPhase::kCommit && r.outcome == Resolution::Outcome::kCommitted) ChargesCreated().Inc();
      v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
      count_--;
    }
    break;
  }
  if (v.empty()) entries_.erase(it);
  UpdateGauge();
}

Resolution InDoubtResolver::Resolve(InDoubtAttempt a) {
  const std::string slot = Slot(a.tenant, a.key);
  bool tracked = false;
  {
    std::lock_guard lock(mu_);
    if (count_ < options_.max_entries) {
      // Registered before the first try, so a concurrent request for the key already sees it in doubt.
      entries_[slot].push_back({a, clock_.Now(), /*busy=*/true, std::chrono::milliseconds(0)});
      count_++;
      tracked = true;
      UpdateGauge();
    }
  }
  Resolution r = Try(a);
  if (tracked) {
    Finish(slot, a.owner, r, /*first=*/true);
  } else {
    Count(a.phase, r.outcome == Resolution::Outcome::kPending ? "untracked" : ResultName(r.outcome));
    if (a.phase == InDoubtPhase::kCommit && r.outcome == Resolution::Outcome::kCommitted) ChargesCreated().Inc();
    if (r.outcome == Resolution::Outcome::kPending)
      log::Warn("in_doubt_untracked", {{"tenant", a.tenant}, {"phase", InDoubtPhaseName(a.phase)}});
  }
  return r;
}

std::optional<Resolution> InDoubtResolver::Recheck(const std::string& tenant, const std::string& key) {
  if (!any_.load()) return std::nullopt;
  const std::string slot = Slot(tenant, key);
  std::vector<InDoubtAttempt> todo;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(slot);
    if (it == entries_.end()) return std::nullopt;
    for (Entry& e : it->second) {
      if (e.busy) continue;
      e.busy = true;
      todo.push_back(e.attempt);
    }
  }
  Resolution out;
  if (todo.empty()) return out;  // another thread is settling it right now: still pending for us
  out.outcome = Resolution::Outcome::kNotCommitted;
  for (const InDoubtAttempt& a : todo) {
    Resolution r = Try(a);
    Finish(slot, a.owner, r, /*first=*/false);
    if (r.outcome == Resolution::Outcome::kPending) out.outcome = Resolution::Outcome::kPending;
    else if (r.outcome == Resolution::Outcome::kCommitted && out.outcome != Resolution::Outcome::kPending) out = r;
  }
  std::lock_guard lock(mu_);
  if (entries_.count(slot)) out.outcome = Resolution::Outcome::kPending;  // another attempt is still open
  return out;
}

int InDoubtResolver::RunOnce() {
  std::vector<std::pair<std::string, InDoubtAttempt>> due;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.Now();
    for (auto& [slot, v] : entries_)
      for (Entry& e : v)
        if (!e.busy && e.next_try <= now) {
          e.busy = true;
          due.emplace_back(slot, e.attempt);
        }
  }
  int settled = 0;
  for (const auto& [slot, a] : due) {
    Resolution r = Try(a);
    if (r.outcome != Resolution::Outcome::kPending) settled++;
    Finish(slot, a.owner, r, /*first=*/false);
  }
  return settled;
}

}  // namespace paypath::api
