#include "server/job_scheduler.h"

namespace easel::server {

Result<nlohmann::json> run_to_end(TakenJob& job) {
  return catch_errors([&] { return job.runner->run(job.job, *job.control); });
}

void SerialScheduler::run(ExecutorQueue& queue) {
  while (auto job = queue.take(/*wait=*/true)) {
    Result<nlohmann::json> result = run_to_end(*job);
    queue.finish(std::move(*job), std::move(result));
  }
}

}  // namespace easel::server
