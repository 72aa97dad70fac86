#include "chaos/command.h"

#include <CLI/CLI.hpp>

namespace paypath::chaos {

void AddCommands(CLI::App& app) {}

}  // namespace paypath::chaos
