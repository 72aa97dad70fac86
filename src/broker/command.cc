#include "broker/command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <vector>

#include "broker/amqp.h"
#include "broker/topology.h"
#include "common/cli.h"
#include "common/log.h"

namespace paypath::amqp {
namespace {

struct Flags {
  std::string amqp_url;
  std::vector<std::string> queues = {kDefaultQueue};
  int delivery_limit = kDefaultDeliveryLimit;
};

// 0 done, 1 the broker refused or could not be reached, 2 bad usage.
int Run(const Flags& f, bool declare) {
  log::SetComponent("broker");
  if (f.amqp_url.empty()) {
    log::Error("missing_settings", {{"error", "--amqp-url or PAYPATH_ADMIN_AMQP_URL (the admin's URL)"}});
    return 2;
  }
  Settings s;
  s.url = f.amqp_url;
  for (const std::string& q : f.queues) {
    Topology t;
    t.queue = q;
    t.delivery_limit = f.delivery_limit;
    // A fresh connection per queue: a refused declaration closes the channel.
    auto c = Connection::Open(s);
    if (!c.ok()) {
      log::Error("broker_unreachable", {{"error", c.error().ToString()}});
      return c.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    Status st = declare ? DeclareTopology(*c.value(), t) : DeleteTopology(*c.value(), t);
    if (!st.ok()) {
      log::Error(declare ? "declare_failed" : "delete_failed", {{"queue", q}, {"error", st.error().ToString()}});
      return st.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    if (declare) {
      std::printf("declared exchange %s, queue %s bound with key %s, %s -> %s\n", t.exchange().c_str(), q.c_str(),
                  q.c_str(), t.dead_letter_exchange().c_str(), t.dead_letter_queue().c_str());
    } else {
      std::printf("deleted queue %s, %s and exchange %s\n", q.c_str(), t.dead_letter_queue().c_str(),
                  t.dead_letter_exchange().c_str());
    }
  }
  return 0;
}

}  // namespace

void AddCommands(CLI::App& app) {
  CLI::App* broker = app.add_subcommand("broker", "Set up the broker topology (admin credentials)");
  broker->require_subcommand(1);
  // One Flags per subcommand: CLI11 applies environment variables to every subcommand's options.
  auto d = std::make_shared<Flags>();
  CLI::App* declare = broker->add_subcommand(
      "declare", "Declare exchange paypath.events and, per --queue, the quorum queue, its DLX and DLQ and the "
                 "bindings (idempotent; a queue with other arguments is an error)");
  declare->add_option("--amqp-url", d->amqp_url, "The admin's RabbitMQ URL amqp://user:pass@host:port/vhost")
      ->envname("PAYPATH_ADMIN_AMQP_URL");
  declare->add_option("--queue", d->queues, "Ledger queue (repeatable)")->capture_default_str();
  declare->add_option("--delivery-limit", d->delivery_limit,
                      "x-delivery-limit of the queue; 0 = none (the consumer dead-letters poison itself)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  declare->callback([d] { cli::SetExitCode(Run(*d, true)); });

  auto x = std::make_shared<Flags>();
  CLI::App* del = broker->add_subcommand(
      "delete", "Delete, per --queue, the queue, its DLQ and DLX with their messages (tests, clean-up); never "
                "the shared exchange paypath.events");
  del->add_option("--amqp-url", x->amqp_url, "The admin's RabbitMQ URL")->envname("PAYPATH_ADMIN_AMQP_URL");
  del->add_option("--queue", x->queues, "Ledger queue (repeatable)")->required();
  del->callback([x] { cli::SetExitCode(Run(*x, false)); });
}

}  // namespace paypath::amqp
