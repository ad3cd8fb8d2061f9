// easel pnginfo FILE: the generation parameters stored in an image (A1111's "parameters" text),
// as written or, with --json, parsed the way A1111 parses them.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "io/image.h"
#include "pipelines/infotext.h"

namespace easel::cli {
namespace {

int pnginfo(const std::string& path, bool as_json) {
  auto image = read_image(path);
  if (!image) {
    std::fprintf(stderr, "error: %s\n", image.error().message().c_str());
    return 1;
  }
  const std::string* parameters = nullptr;
  for (const auto& [key, value] : image->text)
    if (key == "parameters") parameters = &value;
  if (!parameters) {
    std::fprintf(stderr, "%s: no generation parameters (no PNG text chunk \"parameters\")\n", path.c_str());
    return 1;
  }
  if (!as_json) {
    std::printf("%s\n", parameters->c_str());
    return 0;
  }
  const Infotext info = parse_infotext(*parameters);
  nlohmann::ordered_json out;
  out["prompt"] = info.prompt;
  out["negative_prompt"] = info.negative_prompt;
  for (const auto& [k, v] : info.params) out[k] = v;
  std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

}  // namespace

void add_pnginfo_command(CLI::App& app, const GlobalOptions&, int& exit_code) {
  auto* cmd = app.add_subcommand("pnginfo", "Show the generation parameters stored in an image");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("FILE", *path, "a PNG written by easel, A1111, SD.Next or ComfyUI")->required();
  cmd->add_flag("--json", *as_json, "print the parameters parsed into JSON fields");
  cmd->callback([path, as_json, &exit_code] { exit_code = pnginfo(*path, *as_json); });
}

}  // namespace easel::cli
