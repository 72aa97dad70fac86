#include "api/command.h"

#include <CLI/CLI.hpp>

namespace paypath::api {

void AddCommands(CLI::App& app) {}

}  // namespace paypath::api
