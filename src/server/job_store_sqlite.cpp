#include "server/job_store_sqlite.h"

#include <unistd.h>

#include <cstdio>

#include <sqlite3.h>

namespace easel::server {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id          TEXT PRIMARY KEY,
  seq         INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  priority    INTEGER NOT NULL,
  state       TEXT NOT NULL,
  request     TEXT NOT NULL,   -- JSON, uploads already stored as files
  created_ms  INTEGER NOT NULL,
  started_ms  INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL,
  result      TEXT,            -- JSON {images, info}; NULL until done
  error       TEXT NOT NULL,
  interrupted INTEGER NOT NULL,
  skipped     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs (seq);
)sql";

// A save of a finished job is final: a late save of an earlier state (the HTTP thread's "queued"
// racing the executor) must not bring it back to life.
constexpr const char* kSave = R"sql(
INSERT INTO jobs (id, seq, kind, priority, state, request, created_ms, started_ms, finished_ms,
                  result, error, interrupted, skipped)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (id) DO UPDATE SET
  state = excluded.state, started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,
  result = excluded.result, error = excluded.error, interrupted = excluded.interrupted,
  skipped = excluded.skipped
WHERE jobs.state NOT IN ('done', 'failed', 'cancelled');
)sql";

constexpr const char* kLoad =
    "SELECT id, seq, kind, priority, state, request, created_ms, started_ms, finished_ms, result, error, "
    "interrupted, skipped FROM jobs ORDER BY seq";

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string column_text(sqlite3_stmt* st, int i) {
  const unsigned char* t = sqlite3_column_text(st, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

// What to do about a file SQLite cannot read: the server never deletes a user's history itself.
std::string unreadable(const fs::path& path, const char* why) {
  return cat(path.string(), " is not a readable easel job database (", why,
             "); move it away to start with an empty history, or choose another --data-dir");
}

}  // namespace

Result<std::unique_ptr<SqliteJobStore>> SqliteJobStore::open(const fs::path& data_dir) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return Error(cat("cannot create the data folder ", data_dir.string(), ": ", ec.message(),
                           " (choose another with --data-dir)"));
  if (::access(data_dir.c_str(), W_OK | X_OK) != 0)
    return Error(cat("the data folder ", data_dir.string(), " is not writable (choose another with --data-dir)"));
  const fs::path path = data_dir / "easel.db";
  sqlite3* db = nullptr;
  // NOMUTEX: the store serialises its own use of the connection.
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Error(cat("cannot open ", path.string(), ": ", why));
  }
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(db, path));
  sqlite3_busy_timeout(db, 5000);  // another easel on the same folder: wait a little, then fail
  if (Status s = store->exec("PRAGMA journal_mode=WAL"); !s.ok()) return Error(unreadable(path, sqlite3_errmsg(db)));
  if (Status s = store->exec("PRAGMA synchronous=NORMAL"); !s.ok()) return s.error();
  if (Status s = store->exec(kSchema); !s.ok()) return Error(unreadable(path, sqlite3_errmsg(db)));

  sqlite3_stmt* st = nullptr;
  int version = 0;
  bool has_version = false;
  if (sqlite3_prepare_v2(db, "SELECT max(version), count(*) FROM schema_version", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    has_version = sqlite3_column_int(st, 1) > 0;
    version = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  if (!has_version) {
    EASEL_TRY_STATUS(store->exec(cat("INSERT INTO schema_version (version) VALUES (", kSchemaVersion, ")").c_str()));
  } else if (version > kSchemaVersion) {
    return Error(cat(path.string(), " was written by a newer easel (schema ", version, ", this one reads up to ",
                     kSchemaVersion, "); upgrade easel or choose another --data-dir"));
  }
  // Reading every row once finds a damaged file now rather than at the first request.
  if (Status s = store->exec("SELECT count(*), sum(length(request)) FROM jobs"); !s.ok())
    return Error(unreadable(path, sqlite3_errmsg(db)));
  return store;
}

SqliteJobStore::~SqliteJobStore() { sqlite3_close(db_); }

Status SqliteJobStore::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return {};
  std::string why = message ? message : sqlite3_errmsg(db_);
  sqlite3_free(message);
  return Error(cat(path_.string(), ": ", why));
}

void SqliteJobStore::save(const Job& job) {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_, kSave, -1, &st, nullptr);
  if (rc == SQLITE_OK) {
    const std::string state(job_state_name(job.state)), request = dump(job.request);
    const std::string result = job.result.is_null() ? std::string() : dump(job.result);
    sqlite3_bind_text(st, 1, job.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, job.seq);
    sqlite3_bind_text(st, 3, job.kind.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, job.priority);
    sqlite3_bind_text(st, 5, state.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, request.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, job.created_ms);
    sqlite3_bind_int64(st, 8, job.started_ms);
    sqlite3_bind_int64(st, 9, job.finished_ms);
    if (result.empty()) sqlite3_bind_null(st, 10);
    else sqlite3_bind_text(st, 10, result.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 11, job.error.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 12, job.interrupted);
    sqlite3_bind_int(st, 13, job.skipped);
    rc = sqlite3_step(st);
  }
  if (rc != SQLITE_DONE)
    std::fprintf(stderr, "easel: cannot save job %s to %s: %s\n", job.id.c_str(), path_.c_str(), sqlite3_errmsg(db_));
  sqlite3_finalize(st);
}

std::vector<Job> SqliteJobStore::load_all() {
  std::lock_guard lock(mutex_);
  std::vector<Job> jobs;
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_, kLoad, -1, &st, nullptr);
  if (rc == SQLITE_OK) rc = SQLITE_ROW;
  while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    Job job;
    job.id = column_text(st, 0);
    job.seq = sqlite3_column_int64(st, 1);
    job.kind = column_text(st, 2);
    job.priority = sqlite3_column_int(st, 3);
    const auto state = parse_job_state(column_text(st, 4));
    job.request = json::parse(column_text(st, 5), nullptr, false);
    job.created_ms = sqlite3_column_int64(st, 6);
    job.started_ms = sqlite3_column_int64(st, 7);
    job.finished_ms = sqlite3_column_int64(st, 8);
    if (sqlite3_column_type(st, 9) != SQLITE_NULL) job.result = json::parse(column_text(st, 9), nullptr, false);
    job.error = column_text(st, 10);
    job.interrupted = sqlite3_column_int(st, 11) != 0;
    job.skipped = sqlite3_column_int(st, 12) != 0;
    if (!state || job.request.is_discarded() || job.result.is_discarded()) {
      std::fprintf(stderr, "easel: %s: job %s is damaged and left out of the history\n", path_.c_str(), job.id.c_str());
      continue;
    }
    job.state = *state;
    job.progress.stage = std::string(job_state_name(job.state));
    jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_DONE)
    std::fprintf(stderr, "easel: %s: reading the job history stopped early: %s\n", path_.c_str(), sqlite3_errmsg(db_));
  sqlite3_finalize(st);
  return jobs;
}

}  // namespace easel::server
