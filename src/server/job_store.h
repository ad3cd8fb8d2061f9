// Where the job history lives. The queue keeps only unfinished jobs (and a few just finished) in
// memory; listing, searching and looking up older jobs read the store, so the history can grow
// without the server's memory growing with it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "server/job.h"

namespace easel::server {

struct JobQuery {
  std::optional<JobState> state;  // only jobs in this state
  std::string text;               // case-insensitive (ASCII) substring of the prompt; "" = any
  size_t limit = 100;
  size_t offset = 0;              // matching jobs skipped, newest first
};

struct JobPage {
  std::vector<Job> jobs;  // newest first (highest seq)
  size_t total = 0;       // every job that matches, before limit and offset
};

class JobStore {
 public:
  virtual ~JobStore() = default;
  // Insert or replace. A finished job is final: a late save of an earlier state is ignored.
  virtual Status save(const Job& job) = 0;
  virtual Result<std::optional<Job>> get(const std::string& id) = 0;
  virtual Result<JobPage> query(const JobQuery& query) = 0;
  // Queued and running jobs, in submission order: what a restarted server runs again.
  virtual Result<std::vector<Job>> unfinished() = 0;
};

}  // namespace easel::server
