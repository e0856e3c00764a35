// retina: the user CLI over one or more retina agents.
//
//   retina <command> [options]      (retina --help lists the commands)
#include <cstdio>

#include "commands.hpp"

#ifndef RETINA_VERSION
#define RETINA_VERSION "unknown"
#endif

namespace retina::cli {

void add_version_command(CLI::App& app, Run& run) {
  auto* sub = app.add_subcommand("version", "Print the CLI version");
  sub->callback([&run] {
    run = [] {
      std::printf("retina %s\n", RETINA_VERSION);
      return kExitOk;
    };
  });
}

}  // namespace retina::cli

int main(int argc, char** argv) {
  using namespace retina::cli;
  CLI::App app{"retina: flows and packet captures from retina agents"};
  app.require_subcommand(1);
  Run run;
  for (const Command& c : kCommands) c.add(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  return run ? run() : kExitUsage;
}
