// Registers this component's paypath subcommands.
#pragma once

namespace CLI {
class App;
}

namespace paypath::outbox {

void AddCommands(CLI::App& app);

}  // namespace paypath::outbox
