// paypath: one executable, one subcommand per process role. See README.md.
#include <CLI/CLI.hpp>

#include "api/command.h"
#include "broker/command.h"
#include "chaos/command.h"
#include "client/command.h"
#include "common/cli.h"
#include "ledger/command.h"
#include "outbox/command.h"

int main(int argc, char** argv) {
  CLI::App app{"paypath: an effectively-once payment path (api, relay, consumer and the tools around them)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  paypath::api::AddCommands(app);
  paypath::amqp::AddCommands(app);
  paypath::outbox::AddCommands(app);
  paypath::ledger::AddCommands(app);
  paypath::client::AddCommands(app);
  paypath::chaos::AddCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // app.exit prints the message (or the help); every usage error exits 2, the Unix convention that
    // `paypath charge` documents (its other codes say what became of the charge).
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return paypath::cli::ExitCode();
}
