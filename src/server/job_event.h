// What happens to a job, as one typed stream: the queue's state changes and what a running job
// reports through its JobControl (job_runner.h). Queue listeners (the event hub for SSE and
// WebSocket clients, the uploads cleanup, a preview store) see every event with the job it
// belongs to, in the order it happened.
#pragma once

#include <memory>
#include <string>
#include <variant>

#include "server/job.h"
#include "server/previews.h"

namespace easel::server {

// The job entered the state it now has (job.state): queued, running, done (the final result is
// job.result), failed (the error is job.error) or cancelled. Listeners get the whole Job.
struct StateChange {};

// The next piece of a token job's output (chat, caption): appended to what came before.
struct TextDelta {
  std::string text;
};

// JobProgress (job.h): images and sampler steps of an image job, or its stage.
// A live preview (previews.h), shared: listeners keep it without copying the image.
using PreviewPtr = std::shared_ptr<const Preview>;

// Besides a StateChange, listeners see the job without its request and result (null): progress
// comes every step and deltas every token, and copying a large request each time would slow the
// job down.
using JobEvent = std::variant<StateChange, JobProgress, TextDelta, PreviewPtr>;

}  // namespace easel::server
