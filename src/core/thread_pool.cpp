#include "core/thread_pool.h"

#include <algorithm>

namespace easel {
namespace {
// The pool whose task this thread is running, if any: a nested parallel_for runs inline.
thread_local const ThreadPool* current_pool = nullptr;

struct PoolScope {
  const ThreadPool* saved;
  explicit PoolScope(const ThreadPool* p) : saved(current_pool) { current_pool = p; }
  ~PoolScope() { current_pool = saved; }
};
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks(Job& job) {
  PoolScope scope(this);
  for (;;) {
    int64_t c;
    {
      std::lock_guard lock(mutex_);
      if (job.next >= job.chunks) return;
      c = job.next++;
    }
    const int64_t begin = c * job.chunk;
    const int64_t end = std::min(job.n, begin + job.chunk);
    std::exception_ptr error;
    try {
      (*job.fn)(begin, end);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(mutex_);
    if (error && !job.error) job.error = error;
    if (++job.finished == job.chunks) work_done_.notify_all();
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    Job* job;
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || (job_ && generation_ != seen); });
      if (stopping_) return;
      seen = generation_;
      job = job_;
      ++job->workers;
    }
    run_chunks(*job);
    std::lock_guard lock(mutex_);
    if (--job->workers == 0) work_done_.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t(size()) * 4);
  if (max_chunks <= 1 || workers_.empty() || current_pool == this) {
    fn(0, n);
    return;
  }
  std::lock_guard submit(submit_mutex_);
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunk = (n + max_chunks - 1) / max_chunks;
  job.chunks = (n + job.chunk - 1) / job.chunk;
  {
    std::lock_guard lock(mutex_);
    job_ = &job;
    ++generation_;
  }
  work_ready_.notify_all();
  run_chunks(job);
  {
    std::unique_lock lock(mutex_);
    work_done_.wait(lock, [&] { return job.finished == job.chunks && job.workers == 0; });
    job_ = nullptr;
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace easel
