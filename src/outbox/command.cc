#include "outbox/command.h"

#include <CLI/CLI.hpp>

namespace paypath::outbox {

void AddCommands(CLI::App& app) {}

}  // namespace paypath::outbox
