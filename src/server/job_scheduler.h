// How a device's executor runs the jobs the queue gives it. The JobQueue starts one executor
// thread per device; the thread runs the device's JobScheduler, which takes jobs from the
// queue (highest priority first, then first come; only kinds whose runner is on that device)
// and finishes each with its result or error.
//
// SerialScheduler (today's policy): take a job, run it to the end, take the next.
//
// A scheduler that interleaves token jobs step by step (continuous batching) plugs in at the same
// place: between two decode steps of the sequences it runs, it calls take(/*wait=*/false) to admit
// newly queued jobs into its batch (prefilling them), runs one step for the whole batch through a
// runner interface for that kind that exposes prefill / step (beside JobRunner::run), sends each
// job its token through job.control->text(), and calls finish() for each sequence that ends or
// whose control->cancel is set, while the others go on. It waits (take(true)) only when its batch
// is empty. The queue needs no change for it: several jobs of a device may be running at once.
#pragma once

#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/job.h"
#include "server/job_runner.h"

namespace easel::server {

// A job an executor has taken: now Running. `control` lives until the job is finished.
struct TakenJob {
  Job job;  // as it started, request included
  JobRunner* runner = nullptr;
  std::unique_ptr<JobControl> control;
};

// What a device's executor sees of the queue.
class ExecutorQueue {
 public:
  virtual ~ExecutorQueue() = default;
  // The next queued job for this device, now running. With `wait`, blocks until there is one;
  // empty once the queue stops (and, without `wait`, when none is queued).
  virtual std::optional<TakenJob> take(bool wait) = 0;
  // Ends a taken job with what its runner returned, or the error it failed with.
  virtual void finish(TakenJob job, Result<nlohmann::json> result) = 0;
};

class JobScheduler {
 public:
  virtual ~JobScheduler() = default;
  // Runs on the device's executor thread until take() says the queue stops; every job it took is
  // finished before it returns.
  virtual void run(ExecutorQueue& queue) = 0;
};

class SerialScheduler : public JobScheduler {
 public:
  void run(ExecutorQueue& queue) override;
};

// Runs a taken job with its runner: the result, or the runner's exception as an error.
Result<nlohmann::json> run_to_end(TakenJob& job);

}  // namespace easel::server
