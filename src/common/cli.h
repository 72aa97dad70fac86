// Subcommand plumbing: each component registers its subcommands on the CLI11 app (AddCommands in its
// command.cc) and reports the process exit code through SetExitCode from the subcommand's callback.
#pragma once

namespace paypath::cli {

void SetExitCode(int code);
int ExitCode();

}  // namespace paypath::cli
