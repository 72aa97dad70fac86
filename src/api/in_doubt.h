// InDoubtResolver: settles attempts whose outcome the api could not see, so a client is told what happened
// instead of "maybe", as soon as the database answers.
//
// Two things can be in doubt (both when a connection dies with a statement in flight):
//   kCommit  the charge's COMMIT: the charge, its outbox row and the completed key are all durable, or none.
//            The lease is kept meanwhile, so nobody else runs the key.
//   kClaim   the claim's INSERT: the in-flight row (ours) may exist. Nothing can have been charged.
// The resolver settles an attempt on a fresh connection (IdempotencyStore::Settle): it locks the key's row,
// which waits for the in-doubt transaction to end, then reads it. Committed with our charge -> committed;
// still in flight under our owner token -> not committed, and our row is deleted (the lease released) so
// the next retry proceeds at once, with no 409 and no wait for the lease.
//
// The handler tries once synchronously (Resolve, bounded by attempt_bound) before answering: settled means
// a definitive answer (201 with the charge, or "nothing was charged"); unsettled means outcome-unknown,
// and the attempt stays here, retried by RunOnce (a worker loop in `paypath api`) until it settles. While a
// key is here, a request for it asks Recheck first: still unsettled -> outcome-unknown again (never 409).
//
// Bounded: at most max_entries attempts; beyond that an attempt is left to its lease (it expires, and a
// retry then replays or takes the key over) and counted as untracked. Entries live only in this process:
// if it dies, the leases expire on their own, which is the pre-resolver behaviour.
//
// A commit settled as committed counts in paypath_charges_created_total here, whichever thread settles it.
// Metrics: paypath_idempotency_in_doubt_total{phase,result} (result = committed, not_committed, pending,
// untracked; pending counts attempts the synchronous try left unsettled) and the gauge
// paypath_idempotency_in_doubt_pending. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "store/idempotency_store.h"

namespace paypath::api {

struct InDoubtOptions {
  // Each entry is a few hundred bytes. One process sees an in-doubt attempt only when a connection dies
  // mid-statement, a handful per database incident; 4096 bounds memory even if every handler thread hits
  // it over a long outage.
  size_t max_entries = 4096;
  // One settlement attempt (connect, lock, read): about a second, so the synchronous try still answers
  // well inside a client's 2 s attempt timeout.
  std::chrono::milliseconds attempt_bound{1000};
  // How long to wait for the in-doubt transaction's row lock. A transaction whose connection died is over
  // in milliseconds; 500 ms leaves half the bound for connecting.
  std::chrono::milliseconds lock_timeout{500};
  // Before the first background attempt at an entry: short, so a retry arriving a second later (the
  // Retry-After) usually finds the attempt settled. Each unsuccessful attempt doubles it, up to
  // max_retry_interval: an in-doubt transaction the server cannot see is dead (a partition) holds its row
  // lock until the server's TCP keepalive ends it, and the resolver should not hammer it meanwhile.
  std::chrono::milliseconds retry_interval{200};
  std::chrono::milliseconds max_retry_interval{5000};
};

enum class InDoubtPhase { kCommit, kClaim };
const char* InDoubtPhaseName(InDoubtPhase p);

struct InDoubtAttempt {
  InDoubtPhase phase = InDoubtPhase::kCommit;
  std::string tenant;
  std::string key;
  std::string owner;      // the lease owner token of the attempt
  std::string charge_id;  // kCommit: the charge its transaction wrote; empty for kClaim
};

struct Resolution {
  enum class Outcome { kCommitted, kNotCommitted, kPending };
  Outcome outcome = Outcome::kPending;
  store::KeyRecord record;  // kCommitted: the completed key (expiry; response when it was read back)
};

class InDoubtResolver {
 public:
  InDoubtResolver(store::IdempotencyStore& store, Clock& clock, InDoubtOptions options = {});

  // Registers the attempt and tries to settle it once within attempt_bound. Settled: the entry is gone.
  // Pending: it stays for RunOnce/Recheck (or, when full, is left to its lease).
  Resolution Resolve(InDoubtAttempt attempt);

  // nullopt when nothing is in doubt here for (tenant, key). Otherwise tries once now (unless another
  // thread is already trying it) and returns the result; settled entries leave.
  std::optional<Resolution> Recheck(const std::string& tenant, const std::string& key);

  // Tries each entry whose retry time has come, once. Returns how many settled.
  int RunOnce();

  size_t pending() const;

 private:
  struct Entry {
    InDoubtAttempt attempt;
    std::chrono::steady_clock::time_point next_try;
    bool busy = false;  // a thread is settling it right now
    std::chrono::milliseconds interval{0};  // the wait before the next background attempt
  };
  using Entries = std::map<std::string, std::vector<Entry>>;  // by tenant + '\n' + key

  // Settles one attempt on the store; kPending on any error.
  Resolution Try(const InDoubtAttempt& a);
  // Records a finished try of entry `id` of `slot`: removes it when settled, else schedules the next.
  void Finish(const std::string& slot, const std::string& owner, const Resolution& r, bool count);
  static std::string Slot(const std::string& tenant, const std::string& key) { return tenant + "\n" + key; }
  void Count(InDoubtPhase phase, const char* result);
  void UpdateGauge();  // mu_ held

  store::IdempotencyStore& store_;
  Clock& clock_;
  const InDoubtOptions options_;

  mutable std::mutex mu_;
  Entries entries_;   // protected by mu_
  size_t count_ = 0;  // protected by mu_: entries in entries_
  // count_ != 0, readable without mu_: every request asks Recheck, and almost always nothing is in doubt.
  std::atomic<bool> any_{false};
};

}  // namespace paypath::api
