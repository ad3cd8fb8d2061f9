// A runner turns the jobs of the kinds it declares into results: image generation (txt2img,
// img2img) now, chat and caption next. The JobQueue sends each job to the runner registered for
// its kind, on that runner's device, and hands it a JobControl for the time it runs.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/job.h"
#include "server/job_event.h"

namespace easel::server {

// What a running job polls (cancel, interrupt, skip) and reports to (progress, text deltas,
// previews). The queue makes one per job and it lives exactly as long as the job runs; its sink
// points into the queue, never into a frame. A runner's own callbacks (engine progress, previews)
// go on the runner's own per-job Context, so they die with the runner's frame.
class JobControl {
 public:
  using Sink = std::function<void(JobEvent)>;
  explicit JobControl(Sink sink) : sink_(std::move(sink)) {}
  JobControl(const JobControl&) = delete;
  JobControl& operator=(const JobControl&) = delete;

  std::atomic<bool> cancel{false}, interrupt{false}, skip{false};

  void report(const JobProgress& progress) const { sink_(progress); }
  void text(std::string delta) const { sink_(TextDelta{std::move(delta)}); }
  void preview(Preview preview) const { sink_(std::make_shared<const Preview>(std::move(preview))); }

 private:
  Sink sink_;
};

class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // The job kinds it runs; the queue sends it those only.
  virtual std::vector<std::string> kinds() const = 0;
  // Runs the job; returns its result or throws (the message becomes the job's error). A job
  // stopped through control.cancel ends by throwing.
  virtual nlohmann::json run(const Job& job, JobControl& control) = 0;
};

}  // namespace easel::server
