// A1111's interrupt and skip (shared.state.interrupted / skipped): sampling stops at the next step
// and the batch is finished from the sampler's last x0 estimate; interrupt also ends the remaining
// batches, skip only the current one (the driver clears it when the next batch starts). A policy
// of A1111's loop, so it lives with the driver; the core's Context only knows cancellation.
#pragma once

#include <atomic>

namespace easel {

struct GenerationControl {
  const std::atomic<bool>* interrupt = nullptr;
  std::atomic<bool>* skip = nullptr;

  bool interrupted() const { return interrupt && interrupt->load(std::memory_order_relaxed); }
  bool skipped() const { return skip && skip->load(std::memory_order_relaxed); }
};

}  // namespace easel
