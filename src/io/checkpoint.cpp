#include "io/checkpoint.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"

namespace easel {

using json = nlohmann::json;

Result<std::unique_ptr<TensorFile>> open_tensor_file(const std::filesystem::path& path) {
  EASEL_TRY(auto file, MappedFile::open(path));
  if (looks_like_torch_checkpoint(file->bytes())) {
    EASEL_TRY(auto ck, TorchCheckpointFile::parse(std::move(file)));
    return std::unique_ptr<TensorFile>(std::make_unique<TorchCheckpointFile>(std::move(ck)));
  }
  EASEL_TRY(auto st, SafetensorsFile::parse(std::move(file)));
  return std::unique_ptr<TensorFile>(std::make_unique<SafetensorsFile>(std::move(st)));
}


Result<Checkpoint> Checkpoint::open_files(const std::vector<std::filesystem::path>& files) {
  Checkpoint ck;
  if (!files.empty()) ck.path_ = files.front();
  for (const auto& f : files) {
    EASEL_TRY(auto file_ptr, open_tensor_file(f));
    ck.files_.push_back(std::move(file_ptr));
    const TensorFile* file = ck.files_.back().get();
    for (const auto& e : file->entries()) {
      auto [it, inserted] = ck.items_.emplace(e.name, Item{file, &e});
      if (!inserted)
        return Error(cat("tensor '", e.name, "' is in both ", it->second.file->path().string(), " and ",
                         file->path().string()));
    }
  }
  return ck;
}

Result<Checkpoint> Checkpoint::open(const std::filesystem::path& path) {
  const std::string name = path.string();
  if (name.size() < 11 || name.substr(name.size() - 11) != ".index.json") {
    EASEL_TRY(auto ck, open_files({path}));
    return ck;
  }
  EASEL_TRY(auto index_file, MappedFile::open(path));
  const char* text = reinterpret_cast<const char*>(index_file->data());
  json index = json::parse(text, text + index_file->size(), nullptr, false);
  if (index.is_discarded() || !index.is_object()) return Error(name + ": not a valid JSON index");
  const auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) return Error(name + ": no 'weight_map' object");

  std::vector<std::filesystem::path> shards;
  std::map<std::string, std::string> expected;  // tensor -> shard file name
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) return Error(cat(name, ": weight_map entry '", tensor, "' is not a file name"));
    const std::string file = shard.get<std::string>();
    if (file.find('/') != std::string::npos || file.find('\\') != std::string::npos || file == "..")
      return Error(cat(name, ": shard name '", file, "' must be a file beside the index"));
    expected[tensor] = file;
    const auto shard_path = path.parent_path() / file;
    if (std::find(shards.begin(), shards.end(), shard_path) == shards.end()) shards.push_back(shard_path);
  }
  EASEL_TRY(auto ck, open_files(shards));
  ck.path_ = path;
  for (const auto& [tensor, file] : expected) {
    const Item* item = ck.find(tensor);
    if (!item) return Error(cat(name, ": lists tensor '", tensor, "' in ", file, " but that file does not hold it"));
    if (item->file->path().filename() != file)
      return Error(cat(name, ": lists tensor '", tensor, "' in ", file, " but it is in ",
                       item->file->path().filename().string()));
  }
  return ck;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [name, item] : items_) out.push_back(name);
  return out;
}

const Checkpoint::Item* Checkpoint::find(std::string_view name) const {
  auto it = items_.find(name);
  return it == items_.end() ? nullptr : &it->second;
}

Result<Tensor> Checkpoint::get(std::string_view name) const {
  const Item* item = find(name);
  if (!item) return Error(cat(path_.string(), ": no tensor '", name, "'"));
  return tensor(*item);
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, item] : items_) total += item.entry->end - item.entry->begin;
  return total;
}

}  // namespace easel
