// Registers this component's paypath subcommands.
#pragma once

namespace CLI {
class App;
}

namespace paypath::chaos {

void AddCommands(CLI::App& app);

}  // namespace paypath::chaos
