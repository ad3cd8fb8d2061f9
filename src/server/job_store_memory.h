// A job store in memory, for a queue without a database (unit tests, tools): the same interface
// as the SQLite store, with a bounded history: past `keep_finished` finished jobs, the oldest
// finished one is forgotten. Unfinished jobs are always kept.
#pragma once

#include <map>
#include <mutex>
#include <unordered_map>

#include "server/job_store.h"

namespace easel::server {

class MemoryJobStore : public JobStore {
 public:
  explicit MemoryJobStore(size_t keep_finished = 1000) : keep_finished_(keep_finished) {}

  Status save(const Job& job) override;
  Result<std::optional<Job>> get(const std::string& id) override;
  Result<JobPage> query(const JobQuery& query) override;
  Result<std::vector<Job>> unfinished() override;

 private:
  const size_t keep_finished_;
  std::mutex mutex_;
  std::map<int64_t, Job> by_seq_;  // oldest first
  std::unordered_map<std::string, int64_t> seq_of_;
  size_t finished_ = 0;
};

}  // namespace easel::server
