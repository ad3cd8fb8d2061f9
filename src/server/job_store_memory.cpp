#include "server/job_store_memory.h"

#include <algorithm>
#include <cctype>

#include "server/header_text.h"

namespace easel::server {

namespace {

// The SQLite store's `prompt LIKE '%text%'`: ASCII case-insensitive, prompts that are not strings never match.
bool prompt_contains(const Job& job, const std::string& lowered_text) {
  if (lowered_text.empty()) return true;
  if (!job.request.is_object()) return false;
  const auto it = job.request.find("prompt");
  return it != job.request.end() && it->is_string() && ascii_lower(it->get<std::string>()).find(lowered_text) != std::string::npos;
}

}  // namespace

Status MemoryJobStore::save(const Job& job) {
  std::lock_guard lock(mutex_);
  if (auto it = seq_of_.find(job.id); it != seq_of_.end()) {
    Job& stored = by_seq_.at(it->second);
    if (is_finished(stored.state)) return {};
    finished_ += is_finished(job.state);
    stored = job;
  } else {
    seq_of_[job.id] = job.seq;
    by_seq_[job.seq] = job;
    finished_ += is_finished(job.state);
  }
  for (auto it = by_seq_.begin(); finished_ > keep_finished_ && it != by_seq_.end();) {
    if (!is_finished(it->second.state)) {
      ++it;
      continue;
    }
    seq_of_.erase(it->second.id);
    it = by_seq_.erase(it);
    --finished_;
  }
  return {};
}

Result<std::optional<Job>> MemoryJobStore::get(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = seq_of_.find(id);
  if (it == seq_of_.end()) return std::optional<Job>();
  return std::optional<Job>(by_seq_.at(it->second));
}

Result<JobPage> MemoryJobStore::query(const JobQuery& query) {
  const std::string text = ascii_lower(query.text);
  std::lock_guard lock(mutex_);
  JobPage page;
  for (auto it = by_seq_.rbegin(); it != by_seq_.rend(); ++it) {
    const Job& job = it->second;
    if ((query.state && job.state != *query.state) || !prompt_contains(job, text)) continue;
    if (page.total >= query.offset && page.jobs.size() < query.limit) page.jobs.push_back(job);
    ++page.total;
  }
  return page;
}

Result<std::vector<Job>> MemoryJobStore::unfinished() {
  std::lock_guard lock(mutex_);
  std::vector<Job> jobs;
  for (const auto& [seq, job] : by_seq_)
    if (!is_finished(job.state)) jobs.push_back(job);
  return jobs;
}

}  // namespace easel::server
