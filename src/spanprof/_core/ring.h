// Lock-free multi-producer / single-consumer byte ring for sample records.
//
// Producers are signal handlers (any thread, concurrently): they may not lock or allocate, so a
// record is reserved with a CAS on `head_`, written in place, and published by storing its length
// into the record's first word with release order. The single consumer (drain) reads committed
// records from `tail_`, zeroes what it consumed (so a later reservation never sees a stale commit
// word), then advances `tail_`. A record never wraps: when it would cross the end of the buffer the
// producer also reserves the remainder and marks it as padding. When there is no room the producer
// drops the sample and the caller counts it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace spanprof {

class Ring {
 public:
  static constexpr uint32_t kPadFlag = 0x80000000u;
  static constexpr size_t kAlign = 8;

  // Not thread-safe; called before any producer can run.
  bool init(size_t capacity_pow2);
  size_t capacity() const { return cap_; }

  // Async-signal-safe. Returns a pointer to `size` writable bytes after the 8-byte header or
  // nullptr when full. The caller must call commit() with the same pointer.
  uint8_t* reserve(uint32_t size);
  static void commit(uint8_t* body, uint32_t size) {
    size = (size + kAlign - 1) & ~static_cast<uint32_t>(kAlign - 1);  // as reserve() rounded it
    auto* word = reinterpret_cast<std::atomic<uint32_t>*>(body - kHeader);
    word->store(size, std::memory_order_release);
  }

  // Async-signal-safe. Gives back a reserve()d record that will never be committed: the consumer
  // skips it as padding.
  static void cancel(uint8_t* body, uint32_t size) {
    size = (size + kAlign - 1) & ~static_cast<uint32_t>(kAlign - 1);
    auto* word = reinterpret_cast<std::atomic<uint32_t>*>(body - kHeader);
    word->store(size | kPadFlag, std::memory_order_release);
  }

  // Consumer side. Calls fn(body, size) for each committed record in order and stops at the first
  // uncommitted one. Returns the number of records consumed. Copies are up to the callee.
  template <typename Fn>
  size_t consume(Fn&& fn, size_t max_bytes) {
    uint64_t t = tail_.load(std::memory_order_relaxed);
    const uint64_t h = head_.load(std::memory_order_acquire);
    const uint64_t start = t;
    size_t n = 0;
    while (t < h && t - start < max_bytes) {
      uint8_t* p = buf_ + (t & (cap_ - 1));
      auto* word = reinterpret_cast<std::atomic<uint32_t>*>(p);
      const uint32_t len = word->load(std::memory_order_acquire);
      if (len == 0) break;  // reserved but not yet committed
      const uint32_t body = len & ~kPadFlag;
      if (!(len & kPadFlag)) {
        fn(p + kHeader, body);
        ++n;
      }
      t += kHeader + body;
    }
    if (t != start) {
      release_range(start, t);
      tail_.store(t, std::memory_order_release);
    }
    return n;
  }

  // Used only where no producer can run (fork child before re-arming, or before start).
  void reset() {
    if (buf_ != nullptr) std::memset(buf_, 0, cap_);
    head_.store(0, std::memory_order_relaxed);
    tail_.store(0, std::memory_order_relaxed);
  }
  // Positions in bytes since start: every record reserved before head_pos() was read lies below
  // it; everything below tail_pos() has been consumed.
  uint64_t head_pos() const { return head_.load(std::memory_order_acquire); }
  uint64_t tail_pos() const { return tail_.load(std::memory_order_acquire); }
  uint64_t used_bytes() const {
    return head_.load(std::memory_order_relaxed) - tail_.load(std::memory_order_relaxed);
  }

  static constexpr uint32_t kHeader = 8;  // commit word + 4 spare bytes, keeps bodies 8-aligned

 private:
  void release_range(uint64_t from, uint64_t to) {
    while (from < to) {
      const size_t off = from & (cap_ - 1);
      const size_t chunk = static_cast<size_t>(to - from) < cap_ - off ? to - from : cap_ - off;
      std::memset(buf_ + off, 0, chunk);
      from += chunk;
    }
  }

  uint8_t* buf_ = nullptr;
  size_t cap_ = 0;
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
};

inline bool Ring::init(size_t capacity_pow2) {
  if (buf_ != nullptr) return true;
  if (capacity_pow2 < 4096 || (capacity_pow2 & (capacity_pow2 - 1)) != 0) return false;
  buf_ = static_cast<uint8_t*>(::operator new (capacity_pow2, std::align_val_t{64}));
  std::memset(buf_, 0, capacity_pow2);
  cap_ = capacity_pow2;
  return true;
}

inline uint8_t* Ring::reserve(uint32_t size) {
  size = (size + kAlign - 1) & ~static_cast<uint32_t>(kAlign - 1);
  const uint64_t need = kHeader + size;
  if (need > cap_ / 2) return nullptr;
  uint64_t h = head_.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t off = h & (cap_ - 1);
    const uint64_t pad = off + need > cap_ ? cap_ - off : 0;
    const uint64_t t = tail_.load(std::memory_order_acquire);
    if (h + pad + need - t > cap_) return nullptr;
    if (head_.compare_exchange_weak(h, h + pad + need, std::memory_order_acq_rel,
                                    std::memory_order_relaxed)) {
      if (pad != 0) {
        // pad >= kHeader because every record length is a multiple of 8 and so is cap_.
        auto* word = reinterpret_cast<std::atomic<uint32_t>*>(buf_ + off);
        word->store(static_cast<uint32_t>(pad - kHeader) | kPadFlag, std::memory_order_release);
        return buf_ + kHeader;
      }
      return buf_ + off + kHeader;
    }
  }
}

}  // namespace spanprof
