// spanprof-server entry point: flags (CLI11) → ServerConfig → run_server.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

#include "core/log.h"
#include "core/util.h"
#include "http/server.h"

int main(int argc, char** argv) {
  spanprof::ServerConfig cfg;
  CLI::App app{"spanprof-server: span profile and trace server"};
  app.set_version_flag("--version", SPANPROF_VERSION);
  std::string retention = "7d", max_disk = "0", log_level = "info", retention_interval = "60s",
              max_disk_keep = "60s";
  cfg.store.dir = "spanprof-data";
  app.add_option("--data-dir", cfg.store.dir, "directory for the database");
  app.add_option("--listen", cfg.listen, "host:port for the HTTP API and UI");
  app.add_option("--otlp-listen", cfg.otlp_listen, "extra host:port for OTLP/HTTP (e.g. :4318)");
  app.add_option("--otlp-grpc", cfg.otlp_grpc,
                 "host:port for OTLP/gRPC, traces and profiles (e.g. :4317 = 127.0.0.1:4317; "
                 "default: off)");
  app.add_option("--otlp-grpc-threads", cfg.otlp_grpc_threads,
                 "threads running OTLP/gRPC calls (decoding, commits); more calls wait, up to "
                 "--max-queued-requests, then get UNAVAILABLE (default 8)");
  app.add_option("--ui-dir", cfg.ui_dir, "directory with the built web UI (index.html)");
  app.add_option("--auth-token", cfg.auth_token, "require Bearer token (or Basic password)");
  app.add_option("--admin-tenant", cfg.admin_tenant,
                 "tenant whose /api/v1/stats also shows server-wide figures (default: none)");
  app.add_option("--retention", retention, "delete data older than this (7d, 12h; 0 = keep)");
  app.add_option(
      "--max-disk", max_disk,
      "keep the data dir within this size, deleting the oldest data (10GB; 0 = no limit)");
  app.add_option("--max-disk-keep", max_disk_keep,
                 "--max-disk never deletes data acknowledged this recently; writes that do not fit "
                 "get 507 instead (default 60s)");
  app.add_option("--retention-interval", retention_interval, "how often retention runs");
  app.add_option("--max-body-bytes", cfg.limits.max_body_bytes, "largest request body accepted");
  app.add_option(
      "--max-decompressed-bytes", cfg.limits.max_decompressed_bytes,
      "decompressed bytes per request: the body and every profile in it (default 64 MiB)");
  app.add_option("--max-labels", cfg.limits.max_labels_per_series, "labels per series");
  app.add_option("--max-label-length", cfg.limits.max_label_value_length, "label value length");
  app.add_option("--max-stack-depth", cfg.limits.max_stack_depth, "frames per stack");
  app.add_option("--max-samples-per-profile", cfg.limits.max_samples_per_profile,
                 "samples in one profile (default 1048576)");
  app.add_option("--max-sample-rows", cfg.limits.max_sample_rows_per_request,
                 "decoded sample rows per request: samples x sample types (default 2097152)");
  app.add_option("--max-profiles-per-push", cfg.limits.max_profiles_per_push,
                 "profiles in one push request (default 256)");
  app.add_option("--max-strings-per-profile", cfg.limits.max_strings_per_profile,
                 "entries in one profile's string table (default 1048576)");
  app.add_option("--max-series-per-tenant", cfg.store.max_series_per_tenant,
                 "series per tenant; new ones past it get 429 (default 50000, 0 = no limit)");
  app.add_option("--max-ingest-rate", cfg.limits.max_ingest_bytes_per_s,
                 "ingest request bytes per second per tenant, bursts of 4 s; 429 past it "
                 "(default 33554432, 0 = no limit)");
  app.add_option("--max-inflight-per-tenant", cfg.limits.max_inflight_per_tenant,
                 "ingest requests in progress per tenant; 429 past it (default 0 = no limit)");
  app.add_option("--max-inflight-rows-per-tenant", cfg.store.max_inflight_rows_per_tenant,
                 "decoded sample rows per tenant waiting for the writer; 429 past it "
                 "(default 4194304, 0 = no limit)");
  app.add_option("--max-json-depth", cfg.limits.max_json_depth,
                 "arrays/objects nested in a JSON body (default 64)");
  app.add_option("--threads", cfg.http.workers,
                 "worker threads running requests (decoding, queries, commits); default 32");
  app.add_option("--header-timeout", cfg.http.header_timeout_s,
                 "seconds a new connection has to send its request headers (default 10)");
  app.add_option("--body-timeout", cfg.http.body_timeout_s,
                 "seconds to receive a request body or send a response (default 60)");
  app.add_option("--idle-timeout", cfg.http.idle_timeout_s,
                 "seconds an idle keep-alive connection is kept (default 120)");
  app.add_option("--max-connections", cfg.http.max_connections,
                 "open connections in all (default 16384; needs file descriptors)");
  app.add_option("--max-connections-per-client", cfg.http.max_connections_per_client,
                 "open connections per client IP address (default 4096)");
  app.add_option("--max-queued-requests", cfg.http.max_queued_requests,
                 "complete requests waiting for a worker before 503 (default 4096)");
  app.add_option("--log-level", log_level, "debug|info|warn|error");
  if (const char* t = std::getenv("SPANPROF_AUTH_TOKEN")) cfg.auth_token = t;
  CLI11_PARSE(app, argc, argv);
  using spanprof::LogLevel;
  spanprof::set_log_level(log_level == "debug"   ? LogLevel::kDebug
                          : log_level == "warn"  ? LogLevel::kWarn
                          : log_level == "error" ? LogLevel::kError
                                                 : LogLevel::kInfo);
  cfg.store.retention_s = retention == "0" ? 0 : spanprof::parse_duration_s(retention);
  cfg.store.max_disk_bytes = spanprof::parse_size_bytes(max_disk);
  cfg.store.retention_interval_s = spanprof::parse_duration_s(retention_interval);
  cfg.store.disk_keep_s = max_disk_keep == "0" ? 0 : spanprof::parse_duration_s(max_disk_keep);
  if (cfg.store.retention_s < 0 || cfg.store.max_disk_bytes < 0 || cfg.store.disk_keep_s < 0 ||
      cfg.store.retention_interval_s <= 0) {
    log_error("bad --retention, --max-disk, --max-disk-keep or --retention-interval value");
    return 2;
  }
  return spanprof::run_server(cfg);
}
