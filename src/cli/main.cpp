// easel: local generative vision. `easel --help` lists the commands.
#include <cstdio>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"easel: generate, edit and understand images with the models you already have, locally."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "easel 0.1.0");
  easel::cli::GlobalOptions global;
  app.add_option("--threads", global.threads, "CPU threads to use (default: all)")->check(CLI::NonNegativeNumber);
  int exit_code = 0;
  easel::cli::add_inspect_command(app, global, exit_code);
  easel::cli::add_vae_command(app, global, exit_code);
  easel::cli::add_generate_command(app, global, exit_code);
  easel::cli::add_pnginfo_command(app, global, exit_code);
  easel::cli::add_serve_command(app, global, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
