#include "core/util.h"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>

namespace spanprof {

void sort_labels(Labels& l) {
  std::stable_sort(l.begin(), l.end(), [](auto& a, auto& b) { return a.first < b.first; });
  // Later duplicates win (a sample label overrides a series label of the same name).
  Labels out;
  for (auto& kv : l) {
    if (!out.empty() && out.back().first == kv.first)
      out.back().second = std::move(kv.second);
    else
      out.push_back(std::move(kv));
  }
  l = std::move(out);
}

const std::string* find_label(const Labels& l, const std::string& name) {
  for (auto& kv : l)
    if (kv.first == name) return &kv.second;
  return nullptr;
}

void set_label(Labels& l, const std::string& name, std::string value) {
  for (auto& kv : l)
    if (kv.first == name) {
      kv.second = std::move(value);
      return;
    }
  l.emplace_back(name, std::move(value));
  sort_labels(l);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_hex_u64(std::string_view s, uint64_t& out) {
  if (s.size() != 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int h = hexval(c);
    if (h < 0) return false;
    v = (v << 4) | uint64_t(h);
  }
  out = v;
  return true;
}

bool parse_hex_u128(std::string_view s, uint64_t& hi, uint64_t& lo) {
  if (s.size() != 32) return false;
  return parse_hex_u64(s.substr(0, 16), hi) && parse_hex_u64(s.substr(16), lo);
}

std::string hex_u64(uint64_t v) {
  static const char* d = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[i] = d[v & 15];
  return s;
}

std::string hex_u128(uint64_t hi, uint64_t lo) { return hex_u64(hi) + hex_u64(lo); }

bool bytes_u64(std::string_view b, uint64_t& out) {
  if (b.size() != 8) return false;
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  out = v;
  return true;
}

bool bytes_u128(std::string_view b, uint64_t& hi, uint64_t& lo) {
  if (b.size() != 16) return false;
  return bytes_u64(b.substr(0, 8), hi) && bytes_u64(b.substr(8), lo);
}

bool is_gzip(std::string_view b) {
  return b.size() >= 2 && uint8_t(b[0]) == 0x1f && uint8_t(b[1]) == 0x8b;
}

// libdeflate (whole-buffer, 2-3x faster than zlib's streaming inflate on the ingest path). The
// output size is not known up front: start from the gzip trailer's ISIZE (the input claims it,
// so it is only a hint, capped by max_out) and double on "insufficient space" up to max_out.
Result<std::string> gunzip(std::string_view in, size_t max_out) {
  thread_local std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
      libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
  if (!d) return internal_error("libdeflate init failed");
  const bool gz = is_gzip(in);
  size_t cap = 64 * 1024;
  if (gz && in.size() >= 18) {
    uint32_t isize;
    std::memcpy(&isize, in.data() + in.size() - 4, 4);  // little-endian on every target we build
    cap = std::max<size_t>(cap, isize);
  }
  cap = std::min(cap, max_out);
  for (;;) {
    // Uninitialised on purpose: a body claiming a huge ISIZE costs address space, not a memset.
    std::unique_ptr<char[]> buf(new (std::nothrow) char[cap]);
    if (!buf) return too_large("cannot allocate " + std::to_string(cap) + " bytes to inflate");
    size_t in_used = 0, n = 0;
    libdeflate_result r = gz ? libdeflate_gzip_decompress_ex(d.get(), in.data(), in.size(),
                                                             buf.get(), cap, &in_used, &n)
                             : libdeflate_zlib_decompress_ex(d.get(), in.data(), in.size(),
                                                             buf.get(), cap, &in_used, &n);
    if (r == LIBDEFLATE_SUCCESS) return std::string(buf.get(), n);
    if (r != LIBDEFLATE_INSUFFICIENT_SPACE) return bad_request("corrupt or truncated gzip data");
    if (cap >= max_out)
      return too_large("decompressed body exceeds " + std::to_string(max_out) + " bytes");
    cap = std::min(max_out, cap * 2);
  }
}

std::string gzip(std::string_view in) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, uLong(in.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

int64_t unix_to_ns(int64_t t) {
  if (t <= 0) return 0;
  int64_t mult = t < 100'000'000'000LL           ? 1'000'000'000LL  // seconds
                 : t < 100'000'000'000'000LL     ? 1'000'000LL      // milliseconds
                 : t < 100'000'000'000'000'000LL ? 1'000LL          // microseconds
                                                 : 1;               // nanoseconds
  int64_t ns;
  // Past year 2262 in s/ms/µs the product overflows (outside input): saturate instead.
  return __builtin_mul_overflow(t, mult, &ns) ? INT64_MAX : ns;
}

bool next_trimmed_line(std::string_view text, size_t& pos, std::string_view& line) {
  if (pos >= text.size()) return false;
  size_t nl = text.find('\n', pos);
  line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
  pos = nl == std::string_view::npos ? text.size() : nl + 1;
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  return true;
}

int64_t parse_duration_s(std::string_view s) {
  if (s.empty()) return -1;
  size_t i = 0;
  int64_t n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    n = n * 10 + (s[i] - '0');
    if (n > (1LL << 40)) return -1;
    ++i;
  }
  if (i == 0) return -1;
  std::string_view u = s.substr(i);
  if (u.empty() || u == "s") return n;
  if (u == "m") return n * 60;
  if (u == "h") return n * 3600;
  if (u == "d") return n * 86400;
  if (u == "w") return n * 7 * 86400;
  return -1;
}

int64_t parse_size_bytes(std::string_view s) {
  size_t i = 0;
  int64_t n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    n = n * 10 + (s[i] - '0');
    if (n > (1LL << 50)) return -1;
    ++i;
  }
  if (i == 0) return -1;
  std::string u(s.substr(i));
  for (auto& c : u) c = char(std::toupper(c));
  if (u.empty() || u == "B") return n;
  if (u == "K" || u == "KB" || u == "KIB") return n << 10;
  if (u == "M" || u == "MB" || u == "MIB") return n << 20;
  if (u == "G" || u == "GB" || u == "GIB") return n << 30;
  if (u == "T" || u == "TB" || u == "TIB") return n << 40;
  return -1;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string base64_encode(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

uint64_t hash64(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace spanprof

#include <cstdarg>
#include <ctime>

#include "core/log.h"

namespace spanprof {
static std::atomic<int> g_level{int(LogLevel::kInfo)};
void set_log_level(LogLevel l) { g_level = int(l); }
bool log_enabled(LogLevel l) { return int(l) >= g_level; }
void log_write(LogLevel l, const char* fmt, ...) {
  if (!log_enabled(l)) return;
  static const char* names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  time_t t = time(nullptr);
  struct tm tm;
  gmtime_r(&t, &tm);
  char ts[32];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  fprintf(stderr, "%s %-5s %s\n", ts, names[int(l)], msg);
}
}  // namespace spanprof

namespace spanprof {
bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else if (c == '=')
      break;
    else
      return false;
    buf = (buf << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((buf >> bits) & 0xff);
    }
  }
  return true;
}
}  // namespace spanprof
