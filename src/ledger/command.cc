#include "ledger/command.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/cli.h"
#include "common/clock.h"
#include "common/failpoints.h"
#include "common/log.h"
#include "common/random.h"
#include "common/worker.h"
#include "http/metrics_server.h"
#include "ledger/audit.h"
#include "ledger/consumer.h"
#include "ledger/dlq.h"
#include "outbox/command.h"

namespace paypath::ledger {
namespace {

struct Flags {
  std::string pg_url;         // the api's database (audit)
  std::string ledger_pg_url;  // the ledger's database
  std::string amqp_url;
  std::string relay_amqp_url;  // dlq replay: republishes as the relay
  std::string metrics_listen;
  std::string queue = amqp::kDefaultQueue;
  int delivery_limit = amqp::kDefaultDeliveryLimit;
  int prefetch = ledger::ConsumerOptions{}.prefetch;
  int batch = ledger::ConsumerOptions{}.batch;
  bool migrate = true;
  // audit
  bool json = false;
  double grace_s = 0;
  double max_outbox_age_s = 300;
  int64_t max_dlq = -1;
  int page_size = 10000;
  // dlq
  int limit = 100;
  std::string message_id;
};

// `amqp_env`: each command connects as its own broker user (docs/design.md "Who may do what").
void AddBrokerFlags(CLI::App* cmd, Flags& f, const char* amqp_env, const char* amqp_role) {
  cmd->add_option("--amqp-url", f.amqp_url, std::string("RabbitMQ URL of the ") + amqp_role +
                                                "'s user, amqp://user:pass@host:port/vhost")
      ->envname(amqp_env);
  cmd->add_option("--queue", f.queue, "Ledger queue name (dead letters in <queue>.dlq)")->capture_default_str();
  cmd->add_option("--delivery-limit", f.delivery_limit,
                  "Optional quorum-queue delivery limit (0 = none; the consumer dead-letters poison itself)")
      ->capture_default_str();
}

void AddLedgerDbFlag(CLI::App* cmd, Flags& f, const char* help) {
  cmd->add_option("--ledger-pg-url", f.ledger_pg_url, help)->envname("PAYPATH_LEDGER_PG_URL");
}

bool Setup(const char* component) {
  log::SetComponent(component);
  Status fp = failpoints::ConfigureFromEnv();
  if (!fp.ok()) {
    log::Error("bad_failpoints", {{"error", fp.error().ToString()}});
    return false;
  }
  return true;
}

amqp::Topology TopologyOf(const Flags& f) {
  amqp::Topology t;
  t.queue = f.queue;
  t.delivery_limit = f.delivery_limit;
  return t;
}

int RunConsumer(const Flags& f) {
  if (!Setup("consumer")) return 2;
  if (f.ledger_pg_url.empty() || f.amqp_url.empty() || f.prefetch < 1 || f.prefetch > 65535 || f.batch < 1 ||
      f.delivery_limit < 0) {
    log::Error("bad_flags", {{"error", "need --ledger-pg-url, --amqp-url, 1 <= --prefetch <= 65535, --batch >= 1, "
                                       "--delivery-limit >= 0"}});
    return 2;
  }
  auto metrics = outbox::StartMetricsServer(f.metrics_listen);
  if (!metrics.ok()) {
    log::Error("metrics_listen_failed", {{"error", metrics.error().ToString()}});
    return 2;
  }
  ConsumerOptions o;
  o.ledger_pg_url = f.ledger_pg_url;
  o.migrate = f.migrate;
  o.amqp.url = f.amqp_url;
  o.topology = TopologyOf(f);
  o.prefetch = static_cast<uint16_t>(f.prefetch);
  o.batch = std::min(f.batch, f.prefetch);  // a batch larger than prefetch could never fill
  std::atomic<bool>& stop = worker::InstallStopHandlers();
  Consumer consumer(std::move(o), SystemClock::Instance(), SystemRandom::Instance());
  return consumer.Run(stop).ok() ? 0 : 1;
}

int RunAuditCommand(const Flags& f) {
  if (!Setup("audit")) return 2;
  AuditOptions o;
  o.pg_url = f.pg_url;
  o.ledger_pg_url = f.ledger_pg_url;
  o.amqp_url = f.amqp_url;
  o.topology = TopologyOf(f);
  o.grace = std::chrono::seconds(static_cast<int64_t>(f.grace_s));
  o.max_outbox_age = std::chrono::seconds(static_cast<int64_t>(f.max_outbox_age_s));
  o.max_dlq = f.max_dlq;
  o.page_size = f.page_size;
  auto rep = RunAudit(o);
  if (!rep.ok()) {
    log::Error("audit_failed", {{"error", rep.error().ToString()}});
    return 2;
  }
  std::string out = f.json ? RenderJson(*rep) : RenderTable(*rep);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return rep->ok() ? 0 : 1;
}

Result<std::unique_ptr<amqp::Connection>> OpenForTools(const Flags& f) {
  amqp::Settings s;
  s.url = f.amqp_url;
  return amqp::Connection::Open(s);
}

int RunDlqList(const Flags& f) {
  if (!Setup("dlq")) return 2;
  auto conn = OpenForTools(f);
  if (!conn.ok()) {
    log::Error("dlq_failed", {{"error", conn.error().ToString()}});
    return 2;
  }
  auto list = ListDeadLetters(*conn.value(), TopologyOf(f), f.limit);
  if (!list.ok()) {
    log::Error("dlq_failed", {{"error", list.error().ToString()}});
    return 2;
  }
  if (!f.ledger_pg_url.empty()) {
    Status s = AnnotateReasons(f.ledger_pg_url, *list);
    if (!s.ok()) log::Warn("dlq_reasons_unavailable", {{"error", s.error().ToString()}});
  }
  std::printf("%-36s  %-24s  %-12s  %-26s  %s\n", "MESSAGE_ID", "CHARGE_ID", "TENANT", "REASON", "BODY");
  for (const auto& d : *list) {
    std::string body = d.body.size() > 120 ? d.body.substr(0, 117) + "..." : d.body;
    for (char& c : body)
      if (c == '\n' || c == '\r') c = ' ';
    std::printf("%-36s  %-24s  %-12s  %-26s  %s\n", d.message_id.empty() ? "-" : d.message_id.c_str(),
                d.charge_id.empty() ? "-" : d.charge_id.c_str(), d.tenant.empty() ? "-" : d.tenant.c_str(),
                d.reason.empty() ? "-" : d.reason.c_str(), body.c_str());
  }
  std::printf("%zu message(s) shown from %s\n", list->size(), TopologyOf(f).dead_letter_queue().c_str());
  return 0;
}

int RunDlqReplay(const Flags& f) {
  if (!Setup("dlq")) return 2;
  auto conn = OpenForTools(f);
  if (!conn.ok()) {
    log::Error("dlq_failed", {{"error", conn.error().ToString()}});
    return 2;
  }
  if (f.relay_amqp_url.empty()) {
    log::Error("bad_flags", {{"error", "--relay-amqp-url or PAYPATH_RELAY_AMQP_URL: replay republishes as the relay"}});
    return 2;
  }
  amqp::Settings rs;
  rs.url = f.relay_amqp_url;
  auto relay = amqp::Connection::Open(rs);
  if (!relay.ok()) {
    log::Error("dlq_failed", {{"error", relay.error().ToString()}});
    return 2;
  }
  std::optional<std::string> only;
  if (!f.message_id.empty()) only = f.message_id;
  auto n = ReplayDeadLetters(*conn.value(), *relay.value(), TopologyOf(f), f.limit, only);
  if (!n.ok()) {
    log::Error("dlq_replay_failed", {{"error", n.error().ToString()}});
    return 1;
  }
  std::printf("replayed %d message(s) from %s to %s\n", *n, TopologyOf(f).dead_letter_queue().c_str(),
              f.queue.c_str());
  return 0;
}

int RunDlqPark(const Flags& f) {
  if (!Setup("dlq")) return 2;
  if (f.message_id.empty() || f.limit < 1) {
    log::Error("bad_flags", {{"error", "need --message-id and --limit >= 1"}});
    return 2;
  }
  auto conn = OpenForTools(f);
  if (!conn.ok()) {
    log::Error("dlq_failed", {{"error", conn.error().ToString()}});
    return 2;
  }
  Status s = ParkMessage(*conn.value(), TopologyOf(f), f.message_id, f.limit, f.ledger_pg_url);
  if (!s.ok()) {
    log::Error("dlq_park_failed", {{"error", s.error().ToString()}});
    return 1;
  }
  std::printf("parked %s: moved from %s to %s\n", f.message_id.c_str(), f.queue.c_str(),
              TopologyOf(f).dead_letter_queue().c_str());
  return 0;
}

}  // namespace

void AddCommands(CLI::App& app) {
  // One Flags per subcommand: CLI11 applies environment variables to the options of every subcommand, run
  // or not, so subcommands sharing a variable would overwrite each other's flags with the env value.
  auto f = std::make_shared<Flags>();

  CLI::App* consumer = app.add_subcommand(
      "consumer", "Apply charge events to the ledger exactly once (inbox + double-entry posting per transaction)");
  AddLedgerDbFlag(consumer, *f, "The ledger's PostgreSQL URL (inbox, postings, balances)");
  AddBrokerFlags(consumer, *f, "PAYPATH_CONSUMER_AMQP_URL", "consumer");
  consumer->add_option("--metrics-listen", f->metrics_listen,
                       "host:port for GET /metrics and /healthz (port 0 picks one; empty = no server)")
      ->envname("PAYPATH_METRICS_LISTEN");
  consumer->add_option("--prefetch", f->prefetch, "Unacked messages in flight (basic.qos)")->capture_default_str();
  consumer->add_option("--batch", f->batch, "Messages per database transaction")->capture_default_str();
  consumer->add_flag("!--no-migrate", f->migrate, "Do not apply the ledger schema at start");
  consumer->callback([f] { cli::SetExitCode(RunConsumer(*f)); });

  f = std::make_shared<Flags>();
  CLI::App* audit = app.add_subcommand(
      "audit",
      "Reconcile the api and ledger databases; print a table (or --json); exit 1 on any breach, 2 if it cannot run");
  audit->add_option("--pg-url", f->pg_url, "The api's PostgreSQL URL (charges, outbox)")->envname("PAYPATH_PG_URL");
  AddLedgerDbFlag(audit, *f, "The ledger's PostgreSQL URL (postings, balances, inbox)");
  AddBrokerFlags(audit, *f, "PAYPATH_OPERATOR_AMQP_URL", "operator");
  audit->add_flag("--json", f->json, "Print the report as JSON");
  audit->add_option("--grace", f->grace_s, "Seconds a new charge may still be unposted")->capture_default_str();
  audit->add_option("--max-outbox-age", f->max_outbox_age_s, "Seconds an outbox row may stay unpublished")
      ->capture_default_str();
  audit->add_option("--max-dlq", f->max_dlq, "Fail if the DLQ holds more messages (-1: report only)")
      ->capture_default_str();
  audit->add_option("--page-size", f->page_size, "Rows read per page from each database")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  audit->callback([f] { cli::SetExitCode(RunAuditCommand(*f)); });

  CLI::App* dlq = app.add_subcommand("dlq", "Inspect and re-drive the dead-letter queue; park a message in it");
  dlq->require_subcommand(1);
  f = std::make_shared<Flags>();
  CLI::App* list = dlq->add_subcommand("list", "Show dead-lettered messages (they stay in the queue)");
  AddBrokerFlags(list, *f, "PAYPATH_OPERATOR_AMQP_URL", "operator");
  AddLedgerDbFlag(list, *f, "The ledger's PostgreSQL URL: show the consumer's recorded reason for each message");
  list->add_option("--limit", f->limit, "Show at most this many")->capture_default_str();
  list->callback([f] { cli::SetExitCode(RunDlqList(*f)); });
  f = std::make_shared<Flags>();
  CLI::App* replay = dlq->add_subcommand("replay", "Republish dead-lettered messages to the ledger queue");
  AddBrokerFlags(replay, *f, "PAYPATH_OPERATOR_AMQP_URL", "operator (reads the DLQ)");
  replay->add_option("--relay-amqp-url", f->relay_amqp_url,
                     "RabbitMQ URL of the relay's user: replayed messages are republished with it")
      ->envname("PAYPATH_RELAY_AMQP_URL");
  replay->add_option("--limit", f->limit, "Replay at most this many")->capture_default_str();
  replay->add_option("--message-id", f->message_id, "Replay only this message");
  replay->callback([f] { cli::SetExitCode(RunDlqReplay(*f)); });
  f = std::make_shared<Flags>();
  f->limit = 1000;
  CLI::App* park = dlq->add_subcommand(
      "park", "Move one ready message of the ledger queue to the DLQ (a message that crashes every consumer)");
  AddBrokerFlags(park, *f, "PAYPATH_CONSUMER_AMQP_URL", "consumer (reads the ledger queue)");
  AddLedgerDbFlag(park, *f, "The ledger's PostgreSQL URL: record the reason (parked_by_operator)");
  park->add_option("--message-id", f->message_id, "The message to park")->required();
  park->add_option("--limit", f->limit, "Look through at most this many ready messages")->capture_default_str();
  park->callback([f] { cli::SetExitCode(RunDlqPark(*f)); });
}

}  // namespace paypath::ledger
