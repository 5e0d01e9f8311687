// Levelled logging to stderr. Level from SPANPROF_LOG (debug|info|warn|error), default info.
#pragma once
#include <cstdio>

namespace spanprof {
enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
void set_log_level(LogLevel l);
bool log_enabled(LogLevel l);
void log_write(LogLevel l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
}  // namespace spanprof

#define log_debug(...) ::spanprof::log_write(::spanprof::LogLevel::kDebug, __VA_ARGS__)
#define log_info(...) ::spanprof::log_write(::spanprof::LogLevel::kInfo, __VA_ARGS__)
#define log_warn(...) ::spanprof::log_write(::spanprof::LogLevel::kWarn, __VA_ARGS__)
#define log_error(...) ::spanprof::log_write(::spanprof::LogLevel::kError, __VA_ARGS__)
