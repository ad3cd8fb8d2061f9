// The SQLite job store on its own: what it saves comes back, a finished job stays finished, and
// files it cannot use are refused at open with a message that says what to do.
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
    (*store)->save(a);
    (*store)->save(b);
    a.state = JobState::Done;
    a.started_ms = 5000;
    a.finished_ms = 6000;
    a.result = {{"images", {"2026-01-01/aaaa-0.png"}}, {"info", {{"seed", 7}}}};
    a.interrupted = true;
    (*store)->save(a);
    b.state = JobState::Failed;
    b.error = "out of memory";
    (*store)->save(b);
  }
  EXPECT_TRUE(fs::exists(dir / "easel.db"));
  auto store = SqliteJobStore::open(dir);
  ASSERT_TRUE(store.ok()) << store.error().message();
  const auto jobs = (*store)->load_all();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, "bbbb");  // in submission order
  EXPECT_EQ(jobs[0].state, JobState::Failed);
  EXPECT_EQ(jobs[0].error, "out of memory");
  const Job& a = jobs[1];
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
  (*store)->save(j);
  (*store)->save(queued);  // the HTTP thread's "queued", late
  EXPECT_EQ((*store)->load_all().at(0).state, JobState::Cancelled);
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

}  // namespace
}  // namespace easel
