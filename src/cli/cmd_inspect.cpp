// easel inspect FILE: what a checkpoint holds and what model it is.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "models/registry.h"

namespace easel::cli {
namespace {

// "2.weight" before "10.weight": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string_view na = std::string_view(a).substr(i, ie - i), nb = std::string_view(b).substr(j, je - j);
      if (na.size() != nb.size()) return na.size() < nb.size();  // no leading zeros in tensor names
      if (na != nb) return na < nb;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

int inspect(const std::string& path, bool quiet) {
  auto checkpoints = open_checkpoints(path);
  if (!checkpoints) {
    std::fprintf(stderr, "error: %s\n", checkpoints.error().message().c_str());
    return 1;
  }
  for (const Checkpoint& ck : *checkpoints) {
    std::map<std::string, std::pair<size_t, uint64_t>> by_dtype;  // dtype -> (count, bytes)
    if (!quiet) std::printf("%s\n", ck.path().string().c_str());
    auto names = ck.names();
    std::sort(names.begin(), names.end(), natural_less);
    for (const std::string& name : names) {
      const auto* item = ck.find(name);
      const auto& e = *item->entry;
      auto& [count, bytes] = by_dtype[std::string(dtype_name(e.dtype))];
      ++count;
      bytes += e.end - e.begin;
      if (!quiet) std::printf("  %-60s %-5s %s\n", name.c_str(), std::string(dtype_name(e.dtype)).c_str(), e.shape.str().c_str());
    }
    std::printf("%s: %zu tensors, %s", ck.path().filename().string().c_str(), ck.size(),
                human_bytes(ck.total_bytes()).c_str());
    const char* sep = " (";
    for (const auto& [dtype, cb] : by_dtype) {
      std::printf("%s%zu %s", sep, cb.first, dtype.c_str());
      sep = ", ";
    }
    std::printf("%s\n", by_dtype.empty() ? "" : ")");
    for (const auto& [key, value] : ck.files().front()->metadata())
      if (value.size() < 200) std::printf("  metadata %s = %s\n", key.c_str(), value.c_str());
    if (auto kind = recognize(ck))
      std::printf("  model: %s, variant %s: %s\n", kind->family.c_str(), kind->variant.c_str(), kind->detail.c_str());
    else
      std::printf("  model: not recognised\n");
  }
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& app, const GlobalOptions&, int& exit_code) {
  auto* cmd = app.add_subcommand("inspect", "List a checkpoint's tensors, dtypes and size, and recognise the model");
  auto path = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("FILE", *path, "a .safetensors, .ckpt, .pt or .pth file, a *.safetensors.index.json, or a folder")->required();
  cmd->add_flag("-q,--quiet", *quiet, "only the summary, not every tensor");
  cmd->callback([path, quiet, &exit_code] { exit_code = inspect(*path, *quiet); });
}

}  // namespace easel::cli
