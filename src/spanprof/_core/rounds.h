// The wall sampler's memory of the objects it visits every round (thread states, tasks), kept in
// the order of the list they are visited in. Those lists rarely change order between rounds, so an
// object's state is found by position, a compare; a hash of the keys is built only in a round
// where the list changed. One owner thread; no locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace spanprof {

template <typename E>
class RoundEntries {
 public:
  struct Slot {
    uintptr_t key;  // 0: taken into the next round
    E e;
  };

  // Starts a listing; entries not visited before end() are gone. `expect`: the list's length.
  void begin(size_t expect) {
    next_.clear();
    if (next_.capacity() < expect) next_.reserve(expect + expect / 4);
    pos_ = 0;
    indexed_ = false;
  }

  // The state kept for `key` (non-zero), default-constructed when it is new. The reference lasts
  // until the next visit().
  E& visit(uintptr_t key) {
    while (pos_ < cur_.size() && cur_[pos_].key == 0) ++pos_;
    if (pos_ < cur_.size() && cur_[pos_].key == key) return take(pos_++, key);
    if (!indexed_) {
      index_.clear();
      for (size_t i = 0; i < cur_.size(); ++i)
        if (cur_[i].key != 0) index_.emplace(cur_[i].key, i);
      indexed_ = true;
    }
    const auto it = index_.find(key);
    if (it != index_.end() && cur_[it->second].key == key) return take(it->second, key);
    next_.push_back(Slot{key, E{}});
    return next_.back().e;
  }

  // Ends the listing: gone(key, entry) for each entry not visited.
  template <typename Gone>
  void end(Gone&& gone) {
    for (Slot& s : cur_)
      if (s.key != 0) gone(s.key, s.e);
    cur_.swap(next_);
    next_.clear();
  }

  size_t size() const { return cur_.size(); }
  Slot& at(size_t i) { return cur_[i]; }
  std::vector<Slot>& slots() { return cur_; }
  void clear() {
    cur_.clear();
    next_.clear();
    index_.clear();
  }

 private:
  E& take(size_t i, uintptr_t key) {
    next_.push_back(Slot{key, std::move(cur_[i].e)});
    cur_[i].key = 0;
    return next_.back().e;
  }

  std::vector<Slot> cur_, next_;
  std::unordered_map<uintptr_t, size_t> index_;
  size_t pos_ = 0;
  bool indexed_ = false;
};

}  // namespace spanprof
