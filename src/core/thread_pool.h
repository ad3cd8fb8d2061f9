// A fixed set of worker threads for data-parallel loops. The calling thread takes part in the
// work, so a pool of N threads starts N-1 workers. A parallel_for issued from inside a task runs
// inline (no nested fan-out, no deadlock).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace easel {

class ThreadPool {
 public:
  // threads <= 0: one per hardware thread.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n), each at least `grain` long (but the
  // last), spread over the pool. Returns when every range is done; rethrows the first exception.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    int64_t n = 0;
    int64_t chunk = 0;
    int64_t chunks = 0;
    int64_t next = 0;      // next chunk to hand out (guarded by mutex_)
    int64_t finished = 0;  // chunks done
    int workers = 0;       // workers inside run_chunks: the job outlives them
    std::exception_ptr error;
  };

  void worker_loop();
  void run_chunks(Job& job);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::mutex submit_mutex_;  // one parallel_for at a time
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

}  // namespace easel
