// The job history in SQLite (`<data_dir>/easel.db`): one row per job with its request, state,
// timings, result and error, so a restarted server lists the history and runs again what had
// not finished. Only state changes reach it (JobQueue::notify); progress stays in memory.
//
// WAL mode keeps readers and the one writer from blocking each other; `schema_version` lets a
// later easel migrate the file, and an easel older than the file refuses it instead of guessing.
// Schema 2 added the `prompt` column (searched by GET /easel/v1/jobs?q=); a schema 1 file is
// migrated when opened.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "server/job_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace easel::server {

class SqliteJobStore : public JobStore {
 public:
  static constexpr int kSchemaVersion = 2;

  // Creates the folder and the database when missing. Refuses, with a message that says what is
  // wrong and what to do about it, a folder it cannot use and a file it cannot read or write: a
  // server that accepted jobs it could not keep would lose them silently.
  // `busy_timeout`: how long a save waits for another process holding the file (another easel on
  // the same folder) before it fails.
  static Result<std::unique_ptr<SqliteJobStore>> open(const std::filesystem::path& data_dir,
                                                      std::chrono::milliseconds busy_timeout = std::chrono::seconds(5));
  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  Status save(const Job& job) override;
  Result<std::optional<Job>> get(const std::string& id) override;
  Result<JobPage> query(const JobQuery& query) override;
  Result<std::vector<Job>> unfinished() override;

  const std::filesystem::path& path() const { return path_; }

 private:
  SqliteJobStore(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  Status exec(const char* sql);
  Status check_writable();
  Status migrate(int from_version);
  // Runs a prepared SELECT of job rows; damaged rows are reported on stderr and left out.
  Result<std::vector<Job>> read_jobs(sqlite3_stmt* statement);

  sqlite3* db_;
  std::filesystem::path path_;
  std::mutex mutex_;  // one connection, used by the HTTP threads and the executor
};

}  // namespace easel::server
