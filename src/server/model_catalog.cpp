#include "server/model_catalog.h"

#include <algorithm>

namespace easel::server {

namespace fs = std::filesystem;

namespace {

bool has_extension(const fs::path& p, std::initializer_list<const char*> exts) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return std::any_of(exts.begin(), exts.end(), [&](const char* x) { return e == x; });
}

std::vector<ModelEntry> scan(const std::vector<fs::path>& folders, bool allow_diffusers_folders) {
  std::vector<ModelEntry> out;
  for (const fs::path& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      const fs::path& p = it->path();
      const bool diffusers = allow_diffusers_folders && it->is_directory(ec) && fs::exists(p / "model_index.json", ec);
      const bool file = it->is_regular_file(ec) && has_extension(p, {".safetensors", ".ckpt", ".pt", ".gguf", ".bin"});
      if (!diffusers && !file) continue;
      if (diffusers) it.disable_recursion_pending();
      ModelEntry e;
      e.name = fs::relative(p, folder, ec).generic_string();
      e.model_name = p.stem().string();
      e.title = e.name;
      e.path = p;
      out.push_back(std::move(e));
    }
  }
  std::sort(out.begin(), out.end(), [](const ModelEntry& a, const ModelEntry& b) { return a.name < b.name; });
  return out;
}

// VAE-approx: .safetensors files at the top, and folders with a config.json (diffusers).
std::vector<ModelEntry> scan_vae_approx(const fs::path& folder) {
  std::vector<ModelEntry> out;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return out;
  for (auto it = fs::directory_iterator(folder, fs::directory_options::skip_permission_denied, ec);
       it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path& p = it->path();
    const bool file = it->is_regular_file(ec) && has_extension(p, {".safetensors"});
    const bool diffusers = it->is_directory(ec) && fs::exists(p / "config.json", ec);
    if (!file && !diffusers) continue;
    ModelEntry e;
    e.name = e.title = p.filename().string();
    e.model_name = p.stem().string();
    e.path = p;
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const ModelEntry& a, const ModelEntry& b) { return a.name < b.name; });
  return out;
}

std::optional<ModelEntry> find_in(const std::vector<ModelEntry>& entries, const std::string& key) {
  for (const auto& e : entries)
    if (key == e.title || key == e.name || key == e.model_name || (!e.hash.empty() && key == e.hash) ||
        key == e.path.string())
      return e;
  return std::nullopt;
}

}  // namespace

ModelCatalog::ModelCatalog(fs::path models_dir) : dir_(std::move(models_dir)) { refresh(); }

void ModelCatalog::refresh() {
  auto ck = scan({dir_ / "Stable-diffusion", dir_ / "checkpoints"}, true);
  auto vae = scan({dir_ / "VAE"}, false);
  auto approx = scan_vae_approx(dir_ / "VAE-approx");
  std::lock_guard lock(mutex_);
  // Keep hashes already computed for files still there.
  for (auto& e : ck)
    for (const auto& old : checkpoints_)
      if (old.path == e.path && !old.hash.empty()) {
        e.hash = old.hash;
        e.title = old.title;
      }
  checkpoints_ = std::move(ck);
  vaes_ = std::move(vae);
  vae_approx_ = std::move(approx);
}

std::vector<ModelEntry> ModelCatalog::vae_approx() const {
  std::lock_guard lock(mutex_);
  return vae_approx_;
}

std::vector<ModelEntry> ModelCatalog::checkpoints() const {
  std::lock_guard lock(mutex_);
  return checkpoints_;
}

std::vector<ModelEntry> ModelCatalog::vaes() const {
  std::lock_guard lock(mutex_);
  return vaes_;
}

std::optional<ModelEntry> ModelCatalog::find_checkpoint(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return find_in(checkpoints_, key);
}

std::optional<ModelEntry> ModelCatalog::find_vae(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return find_in(vaes_, key);
}

void ModelCatalog::set_hash(const fs::path& path, const std::string& hash) {
  std::lock_guard lock(mutex_);
  for (auto& e : checkpoints_)
    if (e.path == path) {
      e.hash = hash;
      e.title = e.name + " [" + hash + "]";
    }
}

}  // namespace easel::server
