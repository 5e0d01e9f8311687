// A bounds-checked reader of the protobuf wire format for the ingest hot path (pprof).
// The generated parser materialises one message object per sample, label, location and line
// (thousands per push); this reader walks the bytes in place and hands out views into them.
// Every read checks bounds; malformed input clears ok() and makes every later read return 0.
#pragma once
#include <cstdint>
#include <string_view>

namespace spanprof::pb {

// The reads below run once per byte run of a push (hundreds of thousands per second); a call per
// varint cost more than the decoding itself.
#define SPANPROF_PB_INLINE inline __attribute__((always_inline))

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLen = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5
};
inline constexpr int kMaxGroupDepth = 100;  // protobuf's default recursion limit

class Reader {
 public:
  explicit Reader(std::string_view s)
      : p_(reinterpret_cast<const uint8_t*>(s.data())), end_(p_ + s.size()) {}

  bool ok() const { return ok_; }
  void fail() { ok_ = false, p_ = end_; }

  // The next field's number and wire type; false at the end of the input or after an error.
  SPANPROF_PB_INLINE bool next(uint32_t& field, uint32_t& wire) {
    if (!ok_ || p_ >= end_) return false;
    const uint8_t* start = p_;
    // A key is at most 5 bytes; as protobuf does, bits past 32 are dropped.
    const auto key = uint32_t(varint());
    field = key >> 3;
    wire = key & 7;
    if (!ok_ || field == 0 || p_ - start > 5) {
      fail();
      return false;
    }
    return true;
  }

  SPANPROF_PB_INLINE uint64_t varint() {
    // Field keys, indices and ids are mostly one or two bytes.
    if (end_ - p_ >= 2) {
      if (p_[0] < 0x80) return *p_++;
      if (p_[1] < 0x80) {
        uint64_t v = uint64_t(p_[0] & 0x7f) | uint64_t(p_[1]) << 7;
        p_ += 2;
        return v;
      }
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) {
        fail();
        return 0;
      }
      uint8_t b = *p_++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail();
    return 0;
  }

  SPANPROF_PB_INLINE std::string_view bytes() {
    const uint8_t* start = p_;
    uint64_t n = varint();
    if (!ok_ || n > uint64_t(end_ - p_) || p_ - start > 5) {  // a length is at most 5 bytes
      fail();
      return {};
    }
    std::string_view out(reinterpret_cast<const char*>(p_), size_t(n));
    p_ += n;
    return out;
  }

  // Skips a field of the given wire type; `field` matters only for groups (types 3 and 4, a
  // proto2 form some writers still use for unknown fields): a start-group is skipped up to its
  // matching end-group, nested at most kMaxGroupDepth deep; a stray end-group is an error.
  void skip(uint32_t wire, uint32_t field, int depth = 0) {
    switch (wire) {
      case kStartGroup: {
        uint32_t f, w;
        if (depth >= kMaxGroupDepth) return fail();
        while (next(f, w)) {
          if (w == kEndGroup) {
            if (f != field) fail();
            return;
          }
          skip(w, f, depth + 1);
        }
        return fail();
      }
      case kVarint:
        varint();
        return;
      case kFixed64:
        advance(8);
        return;
      case kLen:
        bytes();
        return;
      case kFixed32:
        advance(4);
        return;
      default:
        fail();
    }
  }

  // A repeated varint field, packed (one length-delimited run) or not (one value per key).
  template <class F>
  void varints(uint32_t wire, F&& f) {
    if (wire == kVarint) {
      f(varint());
    } else if (wire == kLen) {
      packed(bytes(), f);
    } else {
      fail();
    }
  }

  // The values of a packed run read earlier with bytes(); a malformed run fails this reader.
  template <class F>
  void packed(std::string_view run, F&& f) {
    Reader r(run);
    while (r.ok_ && r.p_ < r.end_) f(r.varint());
    if (!r.ok_) fail();
  }

 private:
  void advance(size_t n) {
    if (n > size_t(end_ - p_)) return fail();
    p_ += n;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

}  // namespace spanprof::pb
