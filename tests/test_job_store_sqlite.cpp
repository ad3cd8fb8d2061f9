// The SQLite job store on its own: what it saves comes back (by id, by state, by prompt, page by
// page), a finished job stays finished, a schema 1 file is migrated, and files it cannot use
// (newer, garbage, empty, read-only) are refused at open with a message that says what to do.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sqlite3.h>

#include "server/job_store_sqlite.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
using server::Job;
using server::JobState;
using server::SqliteJobStore;

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("easel_store_" + std::to_string(::getpid()));
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

Job sample_job(const std::string& id, int64_t seq) {
  Job j;
  j.id = id;
  j.kind = "img2img";
  j.seq = seq;
  j.priority = 3;
  j.request = {{"prompt", "a cat \xe2\x80\x94 \"quoted\""}, {"steps", 4}, {"init_image_files", {"/tmp/x.png"}}};
  j.created_ms = 1000 + seq;
  return j;
}

TEST_F(JobStoreTest, SavesAndLoadsEveryField) {
  {
    auto store = SqliteJobStore::open(dir);
    ASSERT_TRUE(store.ok()) << store.error().message();
    Job a = sample_job("aaaa", 2), b = sample_job("bbbb", 1);
    ASSERT_TRUE((*store)->save(a).ok());
    ASSERT_TRUE((*store)->save(b).ok());
    a.state = JobState::Done;
    a.started_ms = 5000;
    a.finished_ms = 6000;
    a.result = {{"images", {"2026-01-01/aaaa-0.png"}}, {"info", {{"seed", 7}}}};
    a.interrupted = true;
    ASSERT_TRUE((*store)->save(a).ok());
    b.state = JobState::Failed;
    b.error = "out of memory";
    ASSERT_TRUE((*store)->save(b).ok());
  }
  EXPECT_TRUE(fs::exists(dir / "easel.db"));
  auto store = SqliteJobStore::open(dir);
  ASSERT_TRUE(store.ok()) << store.error().message();
  const auto page = (*store)->query({});
  ASSERT_TRUE(page.ok()) << page.error().message();
  const auto& jobs = page->jobs;
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(page->total, 2u);
  EXPECT_EQ(jobs[1].id, "bbbb");  // newest (highest seq) first
  EXPECT_EQ(jobs[1].state, JobState::Failed);
  EXPECT_EQ(jobs[1].error, "out of memory");
  EXPECT_TRUE((*store)->unfinished()->empty());
  const auto got = (*store)->get("aaaa");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->result, jobs[0].result);
  EXPECT_FALSE((*store)->get("zzzz")->has_value());
  const Job& a = jobs[0];
  EXPECT_EQ(a.kind, "img2img");
  EXPECT_EQ(a.priority, 3);
  EXPECT_EQ(a.seq, 2);
  EXPECT_EQ(a.request, sample_job("aaaa", 2).request);
  EXPECT_EQ(a.state, JobState::Done);
  EXPECT_EQ(a.created_ms, 1002);
  EXPECT_EQ(a.started_ms, 5000);
  EXPECT_EQ(a.finished_ms, 6000);
  EXPECT_EQ(a.result["info"]["seed"], 7);
  EXPECT_TRUE(a.interrupted);
  EXPECT_FALSE(a.skipped);
}

TEST_F(JobStoreTest, AFinishedJobIsNotBroughtBackByALateSave) {
  auto store = SqliteJobStore::open(dir);
  ASSERT_TRUE(store.ok());
  Job j = sample_job("cccc", 1);
  Job queued = j;
  j.state = JobState::Cancelled;
  ASSERT_TRUE((*store)->save(j).ok());
  ASSERT_TRUE((*store)->save(queued).ok());  // the HTTP thread's "queued", late
  EXPECT_EQ((*store)->get("cccc")->value().state, JobState::Cancelled);
}

TEST_F(JobStoreTest, RefusesFilesItCannotUse) {
  // A database from a newer easel.
  { ASSERT_TRUE(SqliteJobStore::open(dir).ok()); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "easel.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto newer = SqliteJobStore::open(dir);
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.error().message().find("newer easel"), std::string::npos) << newer.error().message();

  // Not a database at all.
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "easel.db") << "these are not the bytes of a database, though there are quite a few of them";
  auto garbage = SqliteJobStore::open(dir);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message().find("move it away"), std::string::npos) << garbage.error().message();
}

TEST_F(JobStoreTest, QueriesByStateAndPromptNewestFirstPageByPage) {
  auto store = SqliteJobStore::open(dir);
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 10; ++i) {
    Job j = sample_job("job" + std::to_string(i), i);
    j.request["prompt"] = i % 2 ? "A Red ball, 100% round" : "a blue_cube";
    j.state = i < 7 ? JobState::Done : JobState::Queued;
    ASSERT_TRUE((*store)->save(j).ok());
  }
  Job odd = sample_job("job-array", 10);
  odd.request["prompt"] = {"red", "ball"};  // not a string: never matches a search
  ASSERT_TRUE((*store)->save(odd).ok());

  auto ids = [](const server::JobPage& page) {
    std::vector<std::string> out;
    for (const Job& j : page.jobs) out.push_back(j.id);
    return out;
  };
  auto red = (*store)->query({.text = "red BALL"});
  ASSERT_TRUE(red.ok()) << red.error().message();
  EXPECT_EQ(red->total, 5u);
  EXPECT_EQ(ids(*red), (std::vector<std::string>{"job9", "job7", "job5", "job3", "job1"}));
  auto page = (*store)->query({.text = "red", .limit = 2, .offset = 1});
  EXPECT_EQ(page->total, 5u);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"job7", "job5"}));
  // LIKE's wildcards in the text are taken literally.
  EXPECT_EQ((*store)->query({.text = "100%"})->total, 5u);
  EXPECT_EQ((*store)->query({.text = "0% r"})->total, 5u);
  EXPECT_EQ((*store)->query({.text = "e_c"})->total, 5u);
  EXPECT_EQ((*store)->query({.text = "e%c"})->total, 0u);
  EXPECT_EQ((*store)->query({.text = "blue_"})->total, 5u);
  EXPECT_EQ((*store)->query({.text = "bluex"})->total, 0u);
  auto queued = (*store)->query({.state = JobState::Queued});
  EXPECT_EQ(queued->total, 4u);  // job7..job9 and job-array
  EXPECT_EQ((*store)->query({.state = JobState::Done, .text = "blue"})->total, 4u);  // 0, 2, 4, 6
  auto unfinished = (*store)->unfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 4u);
  EXPECT_EQ(unfinished->front().id, "job7");  // submission order
}

TEST_F(JobStoreTest, MigratesASchema1File) {
  // A history written by an easel with schema 1 (no prompt column).
  fs::create_directories(dir);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "easel.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (1);
    CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL, priority INTEGER NOT NULL,
      state TEXT NOT NULL, request TEXT NOT NULL, created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL,
      finished_ms INTEGER NOT NULL, result TEXT, error TEXT NOT NULL, interrupted INTEGER NOT NULL, skipped INTEGER NOT NULL);
    INSERT INTO jobs VALUES ('old1', 0, 'txt2img', 0, 'done', '{"prompt": "An Old Lighthouse"}', 1, 2, 3, NULL, '', 0, 0);
    INSERT INTO jobs VALUES ('old2', 1, 'txt2img', 0, 'queued', '{"prompt": 5}', 4, 0, 0, NULL, '', 0, 0);
  )sql", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto store = SqliteJobStore::open(dir);
  ASSERT_TRUE(store.ok()) << store.error().message();
  auto found = (*store)->query({.text = "old lighthouse"});
  ASSERT_TRUE(found.ok()) << found.error().message();
  ASSERT_EQ(found->jobs.size(), 1u);
  EXPECT_EQ(found->jobs[0].id, "old1");
  EXPECT_EQ((*store)->query({})->total, 2u);
  EXPECT_EQ((*store)->unfinished()->size(), 1u);
  store = Error("closed");  // reopen: the migrated file is at the current version
  ASSERT_EQ(sqlite3_open((dir / "easel.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), SqliteJobStore::kSchemaVersion);
  sqlite3_finalize(st);
  sqlite3_close(db);
  EXPECT_TRUE(SqliteJobStore::open(dir).ok());
}

TEST_F(JobStoreTest, RefusesAnEmptyFileInsteadOfStartingAnEmptyHistory) {
  fs::create_directories(dir);
  std::ofstream(dir / "easel.db").flush();  // 0 bytes
  auto empty = SqliteJobStore::open(dir);
  ASSERT_FALSE(empty.ok());
  const std::string& message = empty.error().message();
  EXPECT_NE(message.find("empty (0 bytes)"), std::string::npos) << message;
  EXPECT_NE(message.find("move it away"), std::string::npos) << message;
  EXPECT_NE(message.find("--data-dir"), std::string::npos) << message;
  EXPECT_EQ(fs::file_size(dir / "easel.db"), 0u) << "the user's file is left as it was";

  // A folder without the file still starts a new history.
  fs::remove(dir / "easel.db");
  EXPECT_TRUE(SqliteJobStore::open(dir).ok());
  EXPECT_GT(fs::file_size(dir / "easel.db"), 0u);
}

TEST_F(JobStoreTest, RefusesAReadOnlyFile) {
  { ASSERT_TRUE(SqliteJobStore::open(dir).ok()); }
  fs::permissions(dir / "easel.db", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);  // chmod 444
  auto store = SqliteJobStore::open(dir);
  fs::permissions(dir / "easel.db", fs::perms::owner_write, fs::perm_options::add);
  ASSERT_FALSE(store.ok()) << "a history it cannot write would lose every job it accepts";
  const std::string& message = store.error().message();
  EXPECT_NE(message.find("easel.db is read-only"), std::string::npos) << message;
  EXPECT_NE(message.find("--data-dir"), std::string::npos) << message;
}

TEST_F(JobStoreTest, AFileAnotherProcessHoldsIsRefusedAsInUse) {
  { ASSERT_TRUE(SqliteJobStore::open(dir).ok()); }
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "easel.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto store = SqliteJobStore::open(dir, std::chrono::milliseconds(50));
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message().find("in use by another process"), std::string::npos) << store.error().message();
}

TEST_F(JobStoreTest, ASaveThatCannotBeWrittenIsAnError) {
  auto store = SqliteJobStore::open(dir, std::chrono::milliseconds(50));
  ASSERT_TRUE(store.ok());
  // Another process holds the write lock past the busy timeout.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "easel.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  const Status saved = (*store)->save(sample_job("dddd", 1));
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  ASSERT_FALSE(saved.ok());
  EXPECT_NE(saved.error().message().find("cannot save job dddd"), std::string::npos) << saved.error().message();
  EXPECT_FALSE((*store)->get("dddd")->has_value());
}

}  // namespace
}  // namespace easel
