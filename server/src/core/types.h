// Core value types shared by ingest, storage and query. No HTTP here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spanprof {

// An error as a value: the HTTP shell maps `status` to the response code and sends
// {"code": code, "message": message}.
struct Error {
  int status = 400;
  std::string code = "invalid_argument";
  std::string message;
  int retry_after_s = 0;  // > 0: sent as Retry-After (429, 503, 507)
};

template <class T>
struct Result {
  std::optional<T> value;
  Error error;
  Result(T v) : value(std::move(v)) {}      // NOLINT(google-explicit-constructor)
  Result(Error e) : error(std::move(e)) {}  // NOLINT(google-explicit-constructor)
  explicit operator bool() const { return value.has_value(); }
  T& operator*() { return *value; }
  T* operator->() { return &*value; }
};

// Status: empty optional = success.
using Status = std::optional<Error>;

inline Error bad_request(std::string m) { return {400, "invalid_argument", std::move(m)}; }
inline Error too_large(std::string m) { return {413, "resource_exhausted", std::move(m)}; }
inline Error unprocessable(std::string m) { return {422, "invalid_argument", std::move(m)}; }
inline Error internal_error(std::string m) { return {500, "internal", std::move(m)}; }
inline Error not_found(std::string m) { return {404, "not_found", std::move(m)}; }

// Labels sorted by name, names unique.
using Labels = std::vector<std::pair<std::string, std::string>>;
void sort_labels(Labels& l);
const std::string* find_label(const Labels& l, const std::string& name);
void set_label(Labels& l, const std::string& name, std::string value);

// Per-sample span identity. 0 = absent. trace id is 128 bits split into hi/lo.
struct SpanIds {
  uint64_t span_id = 0;         // local root span (pyroscope-otel's span_id / profile_id)
  uint64_t active_span_id = 0;  // innermost span current when the sample was taken
  uint64_t trace_hi = 0, trace_lo = 0;
};

struct RawFrame {
  std::string function;
  std::string file;
  int64_t line = 0;
};

struct RawSample {
  static constexpr uint32_t kNoSample = UINT32_MAX;
  std::vector<uint32_t> frames;  // root first; indices into RawProfile::frames
  // A hint from the decoder: an earlier sample of the same RawProfile with equal `frames`, so
  // the store resolves each distinct stack once. kNoSample when none is known.
  uint32_t same_stack_as = kNoSample;
  int64_t value = 0;
  SpanIds ids;
  uint32_t label_set = 0;  // index into RawProfile::label_sets (extra series labels)
};

// One decoded profile of one profile type, before storage. Series labels of a sample are
// `series` plus label_sets[sample.label_set]; `__profile_type__` is derived by the store.
struct RawProfile {
  std::string tenant = "anonymous";
  Labels series;
  std::string sample_type = "cpu", sample_unit = "nanoseconds";
  std::string period_type = "cpu", period_unit = "nanoseconds";
  int64_t time_ns = 0, duration_ns = 0, period = 0;
  std::vector<RawFrame> frames;
  std::vector<Labels> label_sets{Labels{}};
  std::vector<RawSample> samples;
  // Inflated bytes of the pprof this profile was decoded from, on the first profile of each
  // source only: what the per-request max_decompressed_bytes budget counts.
  size_t source_bytes = 0;
};

struct AttrValue;  // stored as JSON text
struct SpanRow {
  std::string tenant = "anonymous";
  uint64_t trace_hi = 0, trace_lo = 0, span_id = 0, parent_span_id = 0;
  std::string name, service;
  int32_t kind = 0;
  int64_t start_ns = 0, end_ns = 0;
  int32_t status_code = 0;
  std::string status_message;
  std::string detail_json;  // {"attributes", "events", "resource", "scope"}
};

// Limits on outside input. Exceeding one is a 4xx with a message naming the limit.
struct Limits {
  size_t max_body_bytes = 16u << 20;
  size_t max_decompressed_bytes = 64u << 20;
  size_t max_labels_per_series = 64;
  size_t max_label_name_length = 256;
  size_t max_label_value_length = 2048;
  size_t max_stack_depth = 2048;
  size_t max_samples_per_profile = 1u << 20;  // bounds one profile's row blob in the store
  size_t max_json_depth = 64;                 // arrays/objects nested in any JSON body
  // Per request: decoded sample rows (samples x sample types, over every profile; ~100 B each),
  // profiles in one push, strings in one pprof string table (~70 B each while decoding).
  // max_decompressed_bytes above is per request too: the body and every pprof inflated in it.
  size_t max_sample_rows_per_request = 2u << 20;
  size_t max_profiles_per_push = 256;
  size_t max_strings_per_profile = 1u << 20;
  // Per tenant: ingest request bytes per second (as sent; bursts of 4 s), 429 past it. 0 = none.
  size_t max_ingest_bytes_per_s = 32u << 20;
  // Per tenant: ingest requests in progress (0 = no limit, the default: a fleet of 2,000 agents
  // in one tenant has dozens in progress while a commit waits for the disk, and the 10-minute
  // soak at 3/4 of the workers refused 14% of its pushes); 429 past it. (Decoded rows waiting
  // for the writer, the limit that holds a heavy tenant back: StoreOptions.)
  int max_inflight_per_tenant = 0;
};

}  // namespace spanprof
