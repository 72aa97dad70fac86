// The proof run's named scenarios: an api outage under load (retry budget on vs off) and a broker outage
// that builds an outbox backlog (relay rate limit on vs off). See prove.h.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "chaos/prove_internal.h"
#include "client/http_transport.h"
#include "client/retry_budget.h"
#include "common/log.h"

namespace paypath::chaos {
namespace {

double Since(Clock& clock, std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(clock.Now() - t).count();
}

void SleepUntil(Clock& clock, std::chrono::steady_clock::time_point t) {
  auto now = clock.Now();
  if (t > now) clock.SleepFor(t - now);
}


// Counts attempts and when they started: the outage scenario's evidence of amplification.
class CountingTransport : public client::Transport {
 public:
  CountingTransport(client::Transport& inner, Clock& clock) : inner_(inner), clock_(clock), start_(clock.Now()) {}
  client::Exchange RoundTrip(const client::HttpRequest& r, std::chrono::milliseconds timeout) override {
    {
      std::lock_guard lock(mu_);
      times_.push_back(Since(clock_, start_));
    }
    return inner_.RoundTrip(r, timeout);
  }
  std::vector<double> times() {
    std::lock_guard lock(mu_);
    return times_;
  }

 private:
  client::Transport& inner_;
  Clock& clock_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::vector<double> times_;  // protected by mu_; seconds since construction
};

client::ChargeRequest NewCharge(Random& rng, int i) {
  static const char* currencies[] = {"USD", "EUR", "GBP"};
  client::ChargeRequest c;
  c.account_id = "acct_" + std::to_string(i % 97);
  c.amount = 100 + static_cast<int64_t>(rng.UniformInclusive(99900));
  c.currency = currencies[i % 3];
  c.idempotency_key = SystemRandom::Instance().Uuid4();  // unique per run, whatever the seed
  return c;
}

// Calls that ended without an answer may or may not have charged: the same key settles each.
int Settle(RunContext& c, std::vector<client::ChargeRequest>& unfinished) {
  client::HttpTransport t(client::ParseHttpUrl("http://" + Hp(c.e.api_port)).value(), c.clock);
  client::RetryingClient cl(t, c.clock, c.rng, ProveClientOptions("prove_settle"), nullptr, nullptr);
  SettleUnfinished(cl, c.e.api_key, unfinished);
  return static_cast<int>(unfinished.size());
}

struct OutagePhase {
  int ops = 0;
  int attempts = 0;
  int ops_in_window = 0;
  int attempts_in_window = 0;
  int budget_refusals = 0;
  std::vector<double> attempt_times;
  std::vector<client::ChargeRequest> unfinished;
};

OutagePhase RunOutagePhase(RunContext& c, bool with_budget, int phase_index) {
  const ProveOptions& o = c.o;
  const double outage = o.outage_seconds;
  const double duration = 3 * outage;  // before, during and after the outage, equally long
  OutagePhase r;
  r.ops = static_cast<int>(o.outage_rate * duration);
  client::HttpTransport http(client::ParseHttpUrl("http://" + Hp(c.e.api_port)).value(), c.clock);
  CountingTransport counted(http, c.clock);
  std::string site = with_budget ? "outage_with_budget" : "outage_without_budget";
  client::RetryBudgetOptions bo;
  bo.enabled = with_budget;
  client::RetryBudget budget(site, bo);
  client::ClientOptions co = ProveClientOptions(site);
  co.max_attempts = 6;
  co.deadline = std::chrono::milliseconds(15000);
  client::RetryingClient cl(counted, c.clock, c.rng, co, &budget, nullptr);

  std::vector<client::ChargeRequest> reqs;
  for (int i = 0; i < r.ops; ++i) reqs.push_back(NewCharge(c.rng, i + phase_index * 1000000));
  const auto start = c.clock.Now();
  auto at = [&](double s) { return start + std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s)); };
  std::thread outage_thread([&] {
    SleepUntil(c.clock, at(outage));
    c.sup.Stop("api", std::chrono::seconds(2));
    SleepUntil(c.clock, at(2 * outage));
    c.sup.Start(c.e.api);
  });
  // Open loop: operation i is issued at i / rate whatever happened to the others, like real traffic.
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<std::thread> workers;
  for (int w = 0; w < 128; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < r.ops; i = next++) {
        SleepUntil(c.clock, at(i / o.outage_rate));
        client::CallResult res = cl.Charge(reqs[i], c.e.api_key);
        std::lock_guard lock(mu);
        if (res.outcome == client::Outcome::kBudgetExhausted) r.budget_refusals++;
        if (!res.ok()) r.unfinished.push_back(reqs[i]);
      }
    });
  }
  for (auto& w : workers) w.join();
  outage_thread.join();
  r.attempt_times = counted.times();
  r.attempts = static_cast<int>(r.attempt_times.size());
  for (double t : r.attempt_times)
    if (t >= outage && t < 2 * outage) r.attempts_in_window++;
  r.ops_in_window = static_cast<int>(o.outage_rate * outage);
  return r;
}

std::vector<std::pair<double, double>> PerBucket(const std::vector<double>& times, double bucket) {
  std::map<int, int> counts;
  double end = 0;
  for (double t : times) {
    counts[static_cast<int>(t / bucket)]++;
    end = std::max(end, t);
  }
  std::vector<std::pair<double, double>> out;
  for (int b = 0; b <= static_cast<int>(end / bucket); ++b) out.emplace_back(b * bucket, counts[b] / bucket);
  return out;
}

}  // namespace

int RunOutageScenario(RunContext& c, std::chrono::steady_clock::time_point) {
  OutagePhase with = RunOutagePhase(c, true, 0);
  OutagePhase without = RunOutagePhase(c, false, 1);
  std::vector<client::ChargeRequest> unfinished = with.unfinished;
  unfinished.insert(unfinished.end(), without.unfinished.begin(), without.unfinished.end());
  int settled_calls = static_cast<int>(unfinished.size());
  int unanswered = Settle(c, unfinished);

  double amp_with = static_cast<double>(with.attempts_in_window) / std::max(1, with.ops_in_window);
  double amp_without = static_cast<double>(without.attempts_in_window) / std::max(1, without.ops_in_window);
  double total_with = static_cast<double>(with.attempts) / std::max(1, with.ops);
  double total_without = static_cast<double>(without.attempts) / std::max(1, without.ops);
  auto& v = c.report.verdict;
  v.push_back({"attempts per operation while the api was down, with budget", Fmt(amp_with),
               "< without budget", amp_with < amp_without, "client attempts counted at the transport"});
  v.push_back({"attempts per operation while the api was down, without budget", Fmt(amp_without), "", true,
               "client attempts counted at the transport"});
  v.push_back({"attempts per operation over the whole phase, with / without budget",
               Fmt(total_with) + " / " + Fmt(total_without), "", true, "client"});
  v.push_back({"calls failed fast by the retry budget", std::to_string(with.budget_refusals), "> 0",
               with.budget_refusals > 0, "client (budget phase)"});
  v.push_back({"operations without a final answer", std::to_string(unanswered), "0", unanswered == 0,
               "client (after settling " + std::to_string(settled_calls) + " unfinished calls with their keys)"});
  c.report.steps.push_back(
      {"api down for " + Fmt(c.o.outage_seconds, 1) + " s under " + Fmt(c.o.outage_rate, 0) + " charges/s, retry budget on",
       amp_with < amp_without,
       std::to_string(with.attempts_in_window) + " attempts for " + std::to_string(with.ops_in_window) +
           " operations during the outage (" + Fmt(amp_with) + " per operation); " +
           std::to_string(with.budget_refusals) + " calls failed fast instead of retrying"});
  c.report.steps.push_back(
      {"the same outage, retry budget off", true,
       std::to_string(without.attempts_in_window) + " attempts for " + std::to_string(without.ops_in_window) +
           " operations during the outage (" + Fmt(amp_without) + " per operation): the retries amplify the load "
           "on a service that is already down"});
  c.report.figures.push_back(
      {"Attempts per second around the api outage (down from " + Fmt(c.o.outage_seconds, 1) + " s to " +
           Fmt(2 * c.o.outage_seconds, 1) + " s)",
       SvgLines({{"with retry budget", PerBucket(with.attempt_times, 0.1)},
                 {"without retry budget", PerBucket(without.attempt_times, 0.1)}},
                "Client attempts per second", "seconds since the phase started")});
  c.report.notes.push_back("Outage scenario: amplification = attempts started while the api was down / operations "
                           "issued in that window. Operations the budget failed fast were settled afterwards with "
                           "their own keys, so every logical operation still ends as exactly one charge.");
  return with.ops + without.ops;
}

namespace {

struct Drain {
  double broker_up = 0;  // seconds since t0
  double drained = 0;
  int64_t backlog = 0;
};

Drain RunBacklogPhase(RunContext& c, const std::string& stack, std::chrono::steady_clock::time_point t0, int phase,
                      int* unanswered, bool* ok) {
  Drain d;
  std::string out;
  if (RunProgram({stack, "stop", "rabbitmq"}) != 0) {
    *ok = false;
    return d;
  }
  client::HttpTransport t(client::ParseHttpUrl("http://" + Hp(c.e.api_port)).value(), c.clock);
  client::RetryingClient cl(t, c.clock, c.rng, ProveClientOptions("prove_backlog"), nullptr, nullptr);
  const int n = c.o.backlog_charges;
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<client::ChargeRequest> unfinished;
  std::vector<std::thread> workers;
  for (int w = 0; w < c.o.concurrency; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        client::ChargeRequest req = NewCharge(c.rng, i + phase * 1000000);
        if (!cl.Charge(req, c.e.api_key).ok()) {
          std::lock_guard lock(mu);
          unfinished.push_back(req);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  *unanswered += Settle(c, unfinished);
  d.backlog = Scalar(c.db, "SELECT count(*) FROM outbox WHERE published_at IS NULL");
  if (RunProgram({stack, "start", "rabbitmq"}) != 0) {
    *ok = false;
    return d;
  }
  d.broker_up = Since(c.clock, t0);
  auto deadline = c.clock.Now() + std::chrono::seconds(c.o.quiesce_timeout_s);
  while (c.clock.Now() < deadline) {
    if (Scalar(c.db, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0 &&
        Scalar(c.ledger_db, "SELECT count(*) FROM ledger_entries WHERE direction = 'debit'") ==
            Scalar(c.db, "SELECT count(*) FROM charges"))
      break;
    c.clock.SleepFor(std::chrono::milliseconds(100));
  }
  d.drained = Since(c.clock, t0);
  // Let the sampler record the drained state.
  c.clock.SleepFor(std::chrono::milliseconds(600));
  return d;
}

struct DrainFigures {
  double drain_rate = 0;      // rows/s while the backlog fell from 90% to 10%
  double apply_rate = 0;      // effects/s over the same interval
  double max_apply_1s = 0;    // the highest effects/s over any 1 s window
  std::vector<std::pair<double, double>> backlog, apply;  // vs seconds since the broker returned
};

DrainFigures Analyze(const std::vector<TimePoint>& tl, const Drain& d) {
  DrainFigures f;
  std::vector<TimePoint> pts;
  for (const auto& p : tl)
    if (p.t >= d.broker_up - 1 && p.t <= d.drained + 1) pts.push_back(p);
  if (pts.size() < 2) return f;
  double t90 = -1, t10 = -1, e90 = 0, e10 = 0;
  for (const auto& p : pts) {
    if (t90 < 0 && p.outbox_backlog <= 0.9 * d.backlog) {
      t90 = p.t;
      e90 = p.effects_total;
    }
    if (t10 < 0 && p.outbox_backlog <= 0.1 * d.backlog) {
      t10 = p.t;
      e10 = p.effects_total;
    }
  }
  if (t90 >= 0 && t10 > t90) {
    f.drain_rate = 0.8 * d.backlog / (t10 - t90);
    f.apply_rate = (e10 - e90) / (t10 - t90);
  }
  for (size_t i = 0; i < pts.size(); ++i) {
    f.backlog.emplace_back(pts[i].t - d.broker_up, pts[i].outbox_backlog);
    for (size_t j = i + 1; j < pts.size(); ++j) {
      if (pts[j].t - pts[i].t >= 1.0) {
        double rate = (pts[j].effects_total - pts[i].effects_total) / (pts[j].t - pts[i].t);
        f.max_apply_1s = std::max(f.max_apply_1s, rate);
        f.apply.emplace_back(pts[i].t - d.broker_up, rate);
        break;
      }
    }
  }
  return f;
}

}  // namespace

int RunBacklogScenario(RunContext& c, std::chrono::steady_clock::time_point t0) {
  const char* stack = std::getenv("PAYPATH_STACK");
  if (stack == nullptr || *stack == '\0') {
    log::Error("prove_setup", {{"error", "the backlog scenario stops and starts RabbitMQ through scripts/stack: "
                                         "set PAYPATH_STACK (scripts/stack env prints it)"}});
    return -1;
  }
  int unanswered = 0;
  bool ok = true;
  Drain limited = RunBacklogPhase(c, stack, t0, 0, &unanswered, &ok);
  // The same outage again with the relay's rate limit effectively off.
  c.sup.Stop("relay");
  ChildSpec unlimited = c.e.relay;
  for (size_t i = 0; i + 1 < unlimited.args.size(); ++i)
    if (unlimited.args[i] == "--rate" || unlimited.args[i] == "--burst") unlimited.args[i + 1] = "1000000";
  c.sup.Start(unlimited);
  Drain open = ok ? RunBacklogPhase(c, stack, t0, 1, &unanswered, &ok) : Drain{};
  std::vector<TimePoint> tl;
  {
    std::lock_guard lock(c.timeline_mu);
    tl = c.report.timeline;
  }
  DrainFigures fl = Analyze(tl, limited), fo = Analyze(tl, open);
  const double rate = c.o.relay_rate;
  auto& v = c.report.verdict;
  v.push_back({"broker stopped and restarted twice", ok ? "yes" : "no", "yes", ok, "scripts/stack"});
  v.push_back({"backlog when the broker returned (limited / unlimited)",
               std::to_string(limited.backlog) + " / " + std::to_string(open.backlog),
               std::to_string(c.o.backlog_charges) + " / " + std::to_string(c.o.backlog_charges),
               limited.backlog == c.o.backlog_charges && open.backlog == c.o.backlog_charges, "outbox rows"});
  v.push_back({"relay drain rate with the limit (rows/s)", Fmt(fl.drain_rate, 0),
               Fmt(0.8 * rate, 0) + " .. " + Fmt(1.2 * rate, 0), fl.drain_rate >= 0.8 * rate && fl.drain_rate <= 1.2 * rate,
               "backlog slope from 90% to 10%, sampled from PostgreSQL"});
  v.push_back({"consumer apply rate with the limit, busiest second (effects/s)", Fmt(fl.max_apply_1s, 0),
               "<= " + Fmt(1.2 * rate, 0), fl.max_apply_1s > 0 && fl.max_apply_1s <= 1.2 * rate, "ledger postings"});
  v.push_back({"relay drain rate without the limit (rows/s)", Fmt(fo.drain_rate, 0), "", true,
               "the thundering herd the limit prevents"});
  v.push_back({"consumer apply rate without the limit, busiest second", Fmt(fo.max_apply_1s, 0), "", true,
               "ledger postings"});
  v.push_back({"operations without a final answer", std::to_string(unanswered), "0", unanswered == 0, "client"});
  c.report.steps.push_back({"broker down while " + std::to_string(c.o.backlog_charges) +
                                " charges were accepted, relay limited to " + Fmt(rate, 0) + "/s",
                            fl.drain_rate >= 0.8 * rate && fl.drain_rate <= 1.2 * rate,
                            "drained " + std::to_string(limited.backlog) + " rows at " + Fmt(fl.drain_rate, 0) +
                                " rows/s; consumer applied at " + Fmt(fl.apply_rate, 0) + "/s (busiest second " +
                                Fmt(fl.max_apply_1s, 0) + ")"});
  c.report.steps.push_back({"the same outage, rate limit off", true,
                            "drained " + std::to_string(open.backlog) + " rows at " + Fmt(fo.drain_rate, 0) +
                                " rows/s; consumer peaked at " + Fmt(fo.max_apply_1s, 0) + " effects/s"});
  c.report.figures.push_back({"Outbox backlog after the broker returned",
                              SvgLines({{"relay limited to " + Fmt(rate, 0) + "/s", fl.backlog},
                                        {"rate limit off", fo.backlog}},
                                       "Outbox backlog (rows)", "seconds since the broker returned")});
  c.report.figures.push_back({"Ledger effects per second after the broker returned",
                              SvgLines({{"relay limited to " + Fmt(rate, 0) + "/s", fl.apply},
                                        {"rate limit off", fo.apply}},
                                       "Consumer apply rate (effects/s, 1 s windows)", "seconds since the broker returned")});
  return 2 * c.o.backlog_charges;
}

}  // namespace paypath::chaos
