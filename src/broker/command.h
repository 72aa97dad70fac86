// Registers `paypath broker declare` and `paypath broker delete`: the admin's set-up and clean-up of the
// broker topology (topology.h). No running service declares anything: they only verify.
#pragma once

namespace CLI {
class App;
}

namespace paypath::amqp {

void AddCommands(CLI::App& app);

}  // namespace paypath::amqp
