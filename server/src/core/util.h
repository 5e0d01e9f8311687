// Small helpers: hex ids, gzip, time parsing, durations/sizes. No HTTP here.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "core/types.h"

namespace spanprof {

// Parses exactly `2*n` hex chars into n bytes (n = 8 or 16 here). false on any other input.
bool parse_hex_u64(std::string_view s, uint64_t& out);
bool parse_hex_u128(std::string_view s, uint64_t& hi, uint64_t& lo);
std::string hex_u64(uint64_t v);
std::string hex_u128(uint64_t hi, uint64_t lo);
// Big-endian byte strings (OTLP binary ids); false if the size is wrong.
bool bytes_u64(std::string_view b, uint64_t& out);
bool bytes_u128(std::string_view b, uint64_t& hi, uint64_t& lo);

bool is_gzip(std::string_view b);
// Inflates gzip (or zlib) data; fails with 413 past max_out bytes (gzip bombs), 400 if corrupt.
Result<std::string> gunzip(std::string_view in, size_t max_out);
std::string gzip(std::string_view in);

// Unix time in s, ms, µs or ns chosen by magnitude → ns. 0 (and below) → 0; times past year 2262
// (the ns value would overflow) → INT64_MAX.
int64_t unix_to_ns(int64_t t);
// "7d", "12h", "30m", "45s" → seconds; -1 on error.
int64_t parse_duration_s(std::string_view s);
// "10GB", "512MB", "1024" → bytes; -1 on error.
int64_t parse_size_bytes(std::string_view s);
int64_t now_ns();

// Text bodies line by line: the line starting at `pos` without its '\n' and trailing '\r'/' '
// (the folded format's trimming), `pos` moved past it; false at the end of `text`.
bool next_trimmed_line(std::string_view text, size_t& pos, std::string_view& line);

std::string base64_encode(std::string_view in);
uint64_t hash64(std::string_view s);

}  // namespace spanprof

namespace spanprof {
// Standard base64 (padding optional); false on invalid characters.
bool base64_decode(std::string_view in, std::string& out);
}  // namespace spanprof
