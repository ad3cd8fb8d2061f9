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
  skipped     INTEGER NOT NULL,
  prompt      TEXT NOT NULL DEFAULT ''  -- request.prompt when a string: searched without parsing every request
);
CREATE INDEX IF NOT EXISTS jobs_by_seq ON jobs (seq);
)sql";

// Schema 1 had no prompt column: add it and fill it from the requests.
constexpr const char* kMigrateFrom1 = R"sql(
ALTER TABLE jobs ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
UPDATE jobs SET prompt = json_extract(request, '$.prompt')
  WHERE json_valid(request) AND json_type(request, '$.prompt') = 'text';
)sql";

// Created after any migration, since they name columns a schema 1 file gains only then.
constexpr const char* kIndexes = "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);";

// A save of a finished job is final: a late save of an earlier state (the HTTP thread's "queued"
// racing the executor) must not bring it back to life.
constexpr const char* kSave = R"sql(
INSERT INTO jobs (id, seq, kind, priority, state, request, created_ms, started_ms, finished_ms,
                  result, error, interrupted, skipped, prompt)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
ON CONFLICT (id) DO UPDATE SET
  state = excluded.state, started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,
  result = excluded.result, error = excluded.error, interrupted = excluded.interrupted,
  skipped = excluded.skipped
WHERE jobs.state NOT IN ('done', 'failed', 'cancelled');
)sql";

const std::string kColumns =
    "id, seq, kind, priority, state, request, created_ms, started_ms, finished_ms, result, error, interrupted, skipped";
const std::string kGet = "SELECT " + kColumns + " FROM jobs WHERE id = ?1";
const std::string kUnfinished = "SELECT " + kColumns + " FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq";
// ?1 state or NULL, ?2 LIKE pattern or NULL.
const std::string kMatch = " WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR prompt LIKE ?2 ESCAPE '\\')";
const std::string kQuery = "SELECT " + kColumns + " FROM jobs" + kMatch + " ORDER BY seq DESC LIMIT ?3 OFFSET ?4";
const std::string kCount = "SELECT count(*) FROM jobs" + kMatch;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string column_text(sqlite3_stmt* st, int i) {
  const unsigned char* t = sqlite3_column_text(st, i);
  return t ? reinterpret_cast<const char*>(t) : "";
}

// The statement, finalized however the function that prepared it returns.
struct Statement {
  sqlite3_stmt* st = nullptr;
  ~Statement() { sqlite3_finalize(st); }
};

std::string prompt_of(const json& request) {
  if (!request.is_object()) return "";
  const auto it = request.find("prompt");
  return it != request.end() && it->is_string() ? it->get<std::string>() : "";
}

// "%text%" with LIKE's wildcards in the text taken literally.
std::string like_pattern(const std::string& text) {
  std::string p = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') p += '\\';
    p += c;
  }
  return p + "%";
}

// What to do about a file SQLite cannot read: the server never deletes a user's history itself.
std::string unreadable(const fs::path& path, const char* why) {
  return cat(path.string(), " is not a readable easel job database (", why,
             "); move it away to start with an empty history, or choose another --data-dir");
}

std::string read_only(const fs::path& path, const std::string& why) {
  return cat(path.string(), " is read-only: ", why,
             "; the server could not keep the jobs it accepts. Make it writable (chmod u+w) or choose another --data-dir");
}

// A file without any write permission bit was made read-only on purpose; refused even when the
// server runs as root (who could write it anyway), since the user said not to.
bool marked_read_only(const fs::path& path) {
  std::error_code ec;
  const fs::perms p = fs::status(path, ec).permissions();
  return !ec && (p & (fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write)) == fs::perms::none;
}

}  // namespace

Result<std::unique_ptr<SqliteJobStore>> SqliteJobStore::open(const fs::path& data_dir, std::chrono::milliseconds busy_timeout) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return Error(cat("cannot create the data folder ", data_dir.string(), ": ", ec.message(),
                           " (choose another with --data-dir)"));
  if (::access(data_dir.c_str(), W_OK | X_OK) != 0)
    return Error(cat("the data folder ", data_dir.string(), " is not writable (choose another with --data-dir)"));
  const fs::path path = data_dir / "easel.db";
  // SQLite takes an empty file for a new database and would start an empty history over it
  // without a word; an empty easel.db is more likely a history lost to a full disk or a bad copy.
  if (fs::is_regular_file(path, ec) && fs::file_size(path, ec) == 0 && !ec)
    return Error(cat(path.string(), " is empty (0 bytes), not an easel job database; move it away to start with "
                     "an empty history, or choose another --data-dir"));
  if (fs::exists(path, ec) && marked_read_only(path)) return Error(read_only(path, "it has no write permission"));
  sqlite3* db = nullptr;
  // NOMUTEX: the store serialises its own use of the connection.
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Error(cat("cannot open ", path.string(), ": ", why));
  }
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(db, path));
  // SQLite silently opens a file it may not write read-only.
  if (sqlite3_db_readonly(db, "main") == 1) return Error(read_only(path, "SQLite could only open it for reading"));
  sqlite3_busy_timeout(db, int(busy_timeout.count()));
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
  } else if (version < kSchemaVersion) {
    EASEL_TRY_STATUS(store->migrate(version));
  }
  if (Status s = store->exec(kIndexes); !s.ok()) return s.error();
  EASEL_TRY_STATUS(store->check_writable());
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

// A write that is rolled back: the one sure way to learn, before any job is accepted, that
// saves will work (permissions, a read-only mount, another process holding the file).
Status SqliteJobStore::check_writable() {
  auto refusal = [&] {
    if (sqlite3_errcode(db_) == SQLITE_BUSY)
      return Error(cat(path_.string(), " is in use by another process (", sqlite3_errmsg(db_),
                       "): stop the other easel serve on this folder, or choose another --data-dir"));
    return Error(read_only(path_, sqlite3_errmsg(db_)));
  };
  if (!exec("BEGIN IMMEDIATE").ok()) return refusal();
  if (!exec("UPDATE schema_version SET version = version").ok()) {
    Error error = refusal();
    (void)exec("ROLLBACK");
    return error;
  }
  (void)exec("ROLLBACK");
  return {};
}

Status SqliteJobStore::migrate(int from_version) {
  if (from_version != 1)
    return Error(cat(path_.string(), " has schema ", from_version, ", which no easel wrote; move it away or choose another --data-dir"));
  EASEL_TRY_STATUS(exec("BEGIN IMMEDIATE"));
  Status s = exec(kMigrateFrom1);
  if (s.ok()) s = exec(cat("UPDATE schema_version SET version = ", kSchemaVersion).c_str());
  if (s.ok()) s = exec("COMMIT");
  if (!s.ok()) {
    (void)exec("ROLLBACK");
    return s.error().context(cat("migrating the job history to schema ", kSchemaVersion));
  }
  return {};
}

Status SqliteJobStore::save(const Job& job) {
  std::lock_guard lock(mutex_);
  Statement st;
  int rc = sqlite3_prepare_v2(db_, kSave, -1, &st.st, nullptr);
  if (rc == SQLITE_OK) {
    const std::string state(job_state_name(job.state)), request = dump(job.request), prompt = prompt_of(job.request);
    const std::string result = job.result.is_null() ? std::string() : dump(job.result);
    sqlite3_bind_text(st.st, 1, job.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.st, 2, job.seq);
    sqlite3_bind_text(st.st, 3, job.kind.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st.st, 4, job.priority);
    sqlite3_bind_text(st.st, 5, state.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.st, 6, request.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.st, 7, job.created_ms);
    sqlite3_bind_int64(st.st, 8, job.started_ms);
    sqlite3_bind_int64(st.st, 9, job.finished_ms);
    if (result.empty()) sqlite3_bind_null(st.st, 10);
    else sqlite3_bind_text(st.st, 10, result.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.st, 11, job.error.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st.st, 12, job.interrupted);
    sqlite3_bind_int(st.st, 13, job.skipped);
    sqlite3_bind_text(st.st, 14, prompt.c_str(), -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st.st);
  }
  if (rc != SQLITE_DONE) return Error(cat("cannot save job ", job.id, " to ", path_.string(), ": ", sqlite3_errmsg(db_)));
  return {};
}

Result<std::vector<Job>> SqliteJobStore::read_jobs(sqlite3_stmt* st) {
  std::vector<Job> jobs;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
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
  if (rc != SQLITE_DONE) return Error(cat("reading the job history in ", path_.string(), ": ", sqlite3_errmsg(db_)));
  return jobs;
}

Result<std::optional<Job>> SqliteJobStore::get(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement st;
  if (sqlite3_prepare_v2(db_, kGet.c_str(), -1, &st.st, nullptr) != SQLITE_OK)
    return Error(cat("reading the job history in ", path_.string(), ": ", sqlite3_errmsg(db_)));
  sqlite3_bind_text(st.st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  auto jobs = read_jobs(st.st);
  if (!jobs.ok()) return jobs.error();
  if (jobs->empty()) return std::optional<Job>();
  return std::optional<Job>(std::move(jobs->front()));
}

Result<JobPage> SqliteJobStore::query(const JobQuery& query) {
  std::lock_guard lock(mutex_);
  const std::string state = query.state ? std::string(job_state_name(*query.state)) : "";
  const std::string pattern = like_pattern(query.text);
  auto bind_match = [&](sqlite3_stmt* st) {
    if (query.state) sqlite3_bind_text(st, 1, state.c_str(), -1, SQLITE_TRANSIENT);
    if (!query.text.empty()) sqlite3_bind_text(st, 2, pattern.c_str(), -1, SQLITE_TRANSIENT);
  };
  auto failed = [&] { return Error(cat("reading the job history in ", path_.string(), ": ", sqlite3_errmsg(db_))); };
  JobPage page;
  {
    Statement count;
    if (sqlite3_prepare_v2(db_, kCount.c_str(), -1, &count.st, nullptr) != SQLITE_OK) return failed();
    bind_match(count.st);
    if (sqlite3_step(count.st) != SQLITE_ROW) return failed();
    page.total = size_t(sqlite3_column_int64(count.st, 0));
  }
  Statement rows;
  if (sqlite3_prepare_v2(db_, kQuery.c_str(), -1, &rows.st, nullptr) != SQLITE_OK) return failed();
  bind_match(rows.st);
  sqlite3_bind_int64(rows.st, 3, int64_t(std::min<size_t>(query.limit, INT64_MAX)));
  sqlite3_bind_int64(rows.st, 4, int64_t(std::min<size_t>(query.offset, INT64_MAX)));
  auto jobs = read_jobs(rows.st);
  if (!jobs.ok()) return jobs.error();
  page.jobs = std::move(*jobs);
  return page;
}

Result<std::vector<Job>> SqliteJobStore::unfinished() {
  std::lock_guard lock(mutex_);
  Statement st;
  if (sqlite3_prepare_v2(db_, kUnfinished.c_str(), -1, &st.st, nullptr) != SQLITE_OK)
    return Error(cat("reading the job history in ", path_.string(), ": ", sqlite3_errmsg(db_)));
  return read_jobs(st.st);
}

}  // namespace easel::server
