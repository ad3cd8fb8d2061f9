// The CLI's subcommands. Each registers itself on the CLI11 app and returns the exit code
// through the callback it installs.
#pragma once

#include <CLI/CLI.hpp>

namespace easel::cli {

struct GlobalOptions {
  int threads = 0;  // 0: all hardware threads
};

void add_inspect_command(CLI::App& app, const GlobalOptions& global, int& exit_code);
void add_vae_command(CLI::App& app, const GlobalOptions& global, int& exit_code);
void add_generate_command(CLI::App& app, const GlobalOptions& global, int& exit_code);
void add_pnginfo_command(CLI::App& app, const GlobalOptions& global, int& exit_code);
void add_serve_command(CLI::App& app, const GlobalOptions& global, int& exit_code);

}  // namespace easel::cli
