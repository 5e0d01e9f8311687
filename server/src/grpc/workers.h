// The threads that run OTLP/gRPC Export calls (grpc/otlp_grpc.cc): `n` of them, at most
// `max_queued` calls waiting, post() false past that (the caller answers UNAVAILABLE, which every
// OTLP client retries). gRPC's own threads only hand calls over, so a burst of exporters queues
// here instead of making gRPC refuse with RESOURCE_EXHAUSTED, which OTLP clients drop; the HTTP
// workers are never used. No gRPC header: unit-tested on its own (tests/admission_test.cc).
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace spanprof {

class Workers {
 public:
  Workers(int n, size_t max_queued) : max_queued_(max_queued) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Workers() { stop(); }
  bool post(std::function<void()> job) {
    {
      std::lock_guard g(mu_);
      if (stopping_ || queue_.size() >= max_queued_) return false;
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }
  // Runs what is queued, then joins.
  void stop() {
    {
      std::lock_guard g(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock l(mu_);
        cv_.wait(l, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }
  size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace spanprof
