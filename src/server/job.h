// A job of the queue: what was asked for, where it stands, and what came of it. Its states form a
// small state machine: queued -> running -> done | failed | cancelled, and queued -> cancelled
// (a running job stopped by a shutdown goes back to queued, to run again after a restart).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace easel::server {

enum class JobState { Queued, Running, Done, Failed, Cancelled };
std::string_view job_state_name(JobState state);  // "queued", "running", "done", "failed", "cancelled"
std::optional<JobState> parse_job_state(std::string_view name);
inline bool is_finished(JobState s) { return s == JobState::Done || s == JobState::Failed || s == JobState::Cancelled; }

struct JobProgress {
  int image = 0, images = 1;  // images finished, images asked for (batch_size x n_iter)
  int step = 0, steps = 0;    // sampler steps of the current image batch
  std::string stage;          // "queued", "text", "sample", "decode", ...
  bool operator==(const JobProgress&) const = default;
};

struct Job {
  std::string id;
  std::string kind;          // which runner runs it: "txt2img", "img2img" (job_runner.h)
  nlohmann::json request;    // the request as the API received it (files already stored)
  int priority = 0;
  int64_t seq = 0;           // submission order
  JobState state = JobState::Queued;
  int64_t created_ms = 0, started_ms = 0, finished_ms = 0;  // Unix time; 0 = not yet
  JobProgress progress;
  nlohmann::json result;     // what the runner returned (images, info)
  std::string error;         // why it failed
  bool interrupted = false, skipped = false;
};

int64_t unix_ms();
// 16 random hex digits: names (job ids, stored uploads) a client cannot guess or enumerate.
std::string random_id();

}  // namespace easel::server
