// The job history in SQLite (`<data_dir>/easel.db`): one row per job with its request, state,
// timings, result and error, so a restarted server lists the history and runs again what had
// not finished. Only state changes reach it (JobQueue::notify); progress stays in memory.
//
// WAL mode keeps readers and the one writer from blocking each other; `schema_version` lets a
// later easel migrate the file, and an easel older than the file refuses it instead of guessing.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "server/job_queue.h"

struct sqlite3;

namespace easel::server {

class SqliteJobStore : public JobStore {
 public:
  static constexpr int kSchemaVersion = 1;

  // Creates the folder and the database when missing; the error says what is wrong with the
  // folder or file and what to do about it.
  static Result<std::unique_ptr<SqliteJobStore>> open(const std::filesystem::path& data_dir);
  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  // A failed write (disk full, file removed) is reported on stderr and does not stop the job:
  // the queue in memory stays right, only the history after a restart would miss it.
  void save(const Job& job) override;
  std::vector<Job> load_all() override;

  const std::filesystem::path& path() const { return path_; }

 private:
  SqliteJobStore(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  Status exec(const char* sql);

  sqlite3* db_;
  std::filesystem::path path_;
  std::mutex mutex_;  // one connection, used by the HTTP threads and the executor
};

}  // namespace easel::server
