#include "ledger/command.h"

#include <CLI/CLI.hpp>

namespace paypath::ledger {

void AddCommands(CLI::App& app) {}

}  // namespace paypath::ledger
