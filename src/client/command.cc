#include "client/command.h"

#include <CLI/CLI.hpp>

namespace paypath::client {

void AddCommands(CLI::App& app) {}

}  // namespace paypath::client
