#include "client/command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "client/client.h"
#include "client/http_transport.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/random.h"

namespace paypath::client {
namespace {

struct ChargeFlags {
  std::string url = "http://127.0.0.1:8080";
  std::string api_key;
  ChargeRequest charge;
  ClientOptions options;
  int64_t base_ms = 100, cap_ms = 2000, attempt_timeout_ms = 2000, deadline_ms = 10000;
  bool no_budget = false;
  std::string transcript;
};

int RunCharge(const ChargeFlags& f) {
  ClientOptions options = f.options;
  options.base = std::chrono::milliseconds(f.base_ms);
  options.cap = std::chrono::milliseconds(f.cap_ms);
  options.attempt_timeout = std::chrono::milliseconds(f.attempt_timeout_ms);
  options.deadline = std::chrono::milliseconds(f.deadline_ms);
  if (Status s = options.Validate(); !s.ok()) {
    std::cerr << "paypath charge: " << s.error().message << "\n";
    return kExitUsage;
  }
  if (f.api_key.empty()) {
    std::cerr << "paypath charge: --api-key (or PAYPATH_API_KEY) is required\n";
    return kExitUsage;
  }
  auto url = ParseHttpUrl(f.url);
  if (!url.ok()) {
    std::cerr << "paypath charge: " << url.error().message << "\n";
    return kExitUsage;
  }
  std::unique_ptr<FileTranscript> transcript;
  if (!f.transcript.empty()) {
    auto t = FileTranscript::Open(f.transcript);
    if (!t.ok()) {
      std::cerr << "paypath charge: " << t.error().message << "\n";
      return kExitUsage;
    }
    transcript = std::move(t.value());
  }
  RetryBudgetOptions budget_options;
  budget_options.enabled = !f.no_budget;
  // One process makes one call, so the budget cannot run dry here; it is wired so the CLI behaves like
  // every other call site (and --no-budget is accepted for scripts that pass it to both).
  RetryBudget budget(options.call_site, budget_options);

  HttpTransport transport(url.value(), SystemClock::Instance());
  RetryingClient client(transport, SystemClock::Instance(), SystemRandom::Instance(), options, &budget,
                        transcript.get());
  CallResult r = client.Charge(f.charge, f.api_key);

  const Exchange& last = r.last;
  if (last.kind == Exchange::Kind::kResponse) {
    std::cout << "status " << last.response.status << " (" << OutcomeName(r.outcome) << ", " << r.attempts
              << " attempt(s), key " << r.key << ")\n"
              << last.response.body;
    if (!last.response.body.empty() && last.response.body.back() != '\n') std::cout << "\n";
  } else {
    std::cout << "no response: " << ExchangeKindName(last.kind) << ": " << last.detail << " ("
              << OutcomeName(r.outcome) << ", " << r.attempts << " attempt(s), key " << r.key << ")\n";
  }
  if (!r.ok()) std::cerr << "paypath charge: " << RetryReasonName(r.final_reason) << "\n";
  const int code = ExitCodeFor(r);
  if (code == kExitOutcomeUnknown)
    std::cerr << "paypath charge: outcome unknown: the charge may have been created; re-run with --key " << r.key
              << " to learn its outcome (never with a new key)\n";
  if (code == kExitNotCharged)
    std::cerr << "paypath charge: gave up; no attempt can have charged (retry later, best with --key " << r.key
              << ")\n";
  return code;
}

}  // namespace

void AddCommands(CLI::App& app) {
  auto flags = std::make_shared<ChargeFlags>();
  flags->options.call_site = "cli";
  CLI::App* cmd = app.add_subcommand(
      "charge", "Create a charge through the API with safe retries (one Idempotency-Key for every attempt)");
  cmd->add_option("--url", flags->url, "API base URL (http only)")->envname("PAYPATH_API_URL")->capture_default_str();
  cmd->add_option("--api-key", flags->api_key, "API key (sent as Authorization: Bearer)")->envname("PAYPATH_API_KEY");
  cmd->add_option("--account", flags->charge.account_id, "Account id, e.g. acct_1")->required();
  cmd->add_option("--amount", flags->charge.amount, "Amount in minor units (integer)")->required();
  cmd->add_option("--currency", flags->charge.currency, "ISO 4217 currency code, e.g. USD")->required();
  cmd->add_option("--description", flags->charge.description, "Optional description");
  cmd->add_option("--key", flags->charge.idempotency_key,
                  "Idempotency-Key to use (default: a fresh UUID v4); reuse it to retry a call whose outcome is unknown");
  cmd->add_option("--max-attempts", flags->options.max_attempts, "Attempts in total, 1..10")->capture_default_str();
  cmd->add_option("--base-ms", flags->base_ms, "Backoff base: retry n waits uniform[0, min(cap, base*2^n))")
      ->capture_default_str();
  cmd->add_option("--cap-ms", flags->cap_ms, "Backoff cap")->capture_default_str();
  cmd->add_option("--attempt-timeout-ms", flags->attempt_timeout_ms, "Timeout of one attempt")->capture_default_str();
  cmd->add_option("--deadline-ms", flags->deadline_ms, "Deadline of the whole call, waits included")
      ->capture_default_str();
  cmd->add_option("--call-site", flags->options.call_site, "call_site label for metrics")->capture_default_str();
  cmd->add_flag("--no-budget", flags->no_budget, "Disable the retry budget");
  cmd->add_option("--transcript", flags->transcript, "Append one JSON line per attempt to this file");
  cmd->callback([flags] { cli::SetExitCode(RunCharge(*flags)); });
}

}  // namespace paypath::client
