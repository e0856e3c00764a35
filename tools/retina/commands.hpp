// The `retina` user CLI: one binary, one subcommand per row of kCommands.
// A subcommand registers its options on `app` and sets `run`, which main
// calls after a successful parse. Exit codes: 0 ok, 1 runtime failure,
// 2 bad command line.
#pragma once

#include <functional>
#include <span>

#include <CLI/CLI.hpp>

namespace retina::cli {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

using Run = std::function<int()>;
using AddCommand = void (*)(CLI::App& app, Run& run);

struct Command {
  const char* name;
  AddCommand add;
};

void add_version_command(CLI::App& app, Run& run);
void add_observe_command(CLI::App& app, Run& run);
void add_capture_command(CLI::App& app, Run& run);

// Every subcommand, in help order.
inline constexpr Command kCommands[] = {
    {"version", &add_version_command},
    {"observe", &add_observe_command},
    {"capture", &add_capture_command},
};

}  // namespace retina::cli
