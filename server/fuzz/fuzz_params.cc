// libFuzzer target: query parameters of outside requests, through the server's HTTP request parser
// (Beast) and query-string decoding, then the server's parsing and query code for
//   POST /ingest, /pyroscope/ingest  parse_legacy_params + legacy_ingest (name, from, until,
//                                    sampleRate, spyName, units, aggregationType, format; body)
//   GET /pyroscope/render            parse_render_params, then merge/flamegraph/select_series
//   GET /api/v1/{traces,traces/<id>,flamegraph,timeline,diff}  UiApi over a small store
//   GET /api/v1/profile/traces, /api/v1/export                    traces_through, export_profile
// Input: line 1 = the request target (path?query), the rest = the body (ingest only).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/export.h"
#include "core/profile_traces.h"
#include "core/ui_api.h"
#include "core/util.h"
#include "http/legacy.h"
#include "http/params.h"
#include "http_harness.h"

namespace {

using spanprof::Status;
using spanprof::fuzz::check_status;

constexpr size_t kLimit = 1 << 20;

std::filesystem::path g_dir;
void remove_dir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

// A store with one folded profile, one profile whose samples carry span ids, and a two-span
// trace, so that the queries after parsing have something to select.
spanprof::Store& store() {
  static spanprof::Store* s = [] {
    char tmpl[] = "/tmp/spanprof-fuzz-params-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    g_dir = tmpl;
    std::atexit(remove_dir);
    spanprof::StoreOptions o;
    o.dir = g_dir.string();
    o.retention_s = 0;
    auto st = spanprof::Store::open(o);
    if (!st) std::abort();
    spanprof::Store* raw = st->release();
    int64_t now_s = spanprof::now_ns() / 1'000'000'000;
    std::vector<spanprof::RawProfile> ps;
    spanprof::QueryParams q{{"name", "app.cpu{env=prod}"}, {"from", std::to_string(now_s)}};
    if (spanprof::legacy_ingest(q, false, "main;work 3\nmain;idle 1\n", {}, "anonymous", {}, ps))
      std::abort();
    spanprof::RawProfile sp = ps.front();
    sp.series = {{"__name__", "process_cpu"}, {"service_name", "app"}, {"span_name", "GET /"}};
    for (auto& x : sp.samples) x.ids = {0x0123456789abcdef, 0x1111111111111111, 1, 2};
    ps.push_back(sp);
    if (raw->write_profiles(std::move(ps))) std::abort();
    spanprof::SpanRow root, child;
    root.trace_hi = child.trace_hi = 1;
    root.trace_lo = child.trace_lo = 2;
    root.span_id = 0x0123456789abcdef;
    child.span_id = 0x1111111111111111;
    child.parent_span_id = root.span_id;
    root.name = "GET /";
    child.name = "db";
    root.service = child.service = "app";
    root.start_ns = child.start_ns = now_s * 1'000'000'000;
    root.end_ns = root.start_ns + 5'000'000;
    child.end_ns = child.start_ns + 1'000'000;
    if (raw->write_spans({root, child})) std::abort();
    return raw;
  }();
  return *s;
}

void send(spanprof::Response& res, const Status& e) {
  check_status(e);
  res.status = e ? e->status : 200;
}

spanprof::fuzz::Server& server() {
  static spanprof::fuzz::Server* srv = [] {
    auto* s = new spanprof::fuzz::Server();
    static spanprof::QueryEngine q(store());
    s->opts.max_body_bytes = kLimit;
    auto ingest = spanprof::fuzz::legacy_ingest_handler(kLimit);
    s->Post("/ingest", ingest);
    s->Post("/pyroscope/ingest", ingest);
    s->Get("/pyroscope/render", [](const spanprof::Request& req, spanprof::Response& res) {
      auto rq = spanprof::parse_render_params(req.params, spanprof::now_ns() / 1'000'000);
      if (!rq) return send(res, rq.error);
      auto st = q.merge("anonymous", rq->profile_type, rq->selector, rq->from_ms, rq->until_ms, {});
      if (!st) return send(res, st.error);
      (void)q.flamegraph(*st, rq->max_nodes);
      auto ss = q.select_series("anonymous", rq->profile_type, rq->selector, rq->from_ms,
                                rq->until_ms, 10, {}, false);
      send(res, ss ? Status() : Status(ss.error));
    });
    static spanprof::UiApi ui(q);
    using Doc = spanprof::Result<nlohmann::json> (spanprof::UiApi::*)(
        const std::string&, const spanprof::Params&) const;
    for (auto [path, fn] : {std::pair<const char*, Doc>{"/api/v1/traces", &spanprof::UiApi::traces},
                            {"/api/v1/flamegraph", &spanprof::UiApi::flamegraph},
                            {"/api/v1/timeline", &spanprof::UiApi::timeline}})
      s->Get(path, [fn = fn](const spanprof::Request& req, spanprof::Response& res) {
        auto r = (ui.*fn)("anonymous", spanprof::api_params(req.params));
        send(res, r ? Status() : Status(r.error));
      });
    s->Get("/api/v1/diff", [](const spanprof::Request& req, spanprof::Response& res) {
      auto l = spanprof::api_params_of(spanprof::first_param(req.params, "left"));
      if (!l) return send(res, l.error);
      auto r = spanprof::api_params_of(spanprof::first_param(req.params, "right"));
      if (!r) return send(res, r.error);
      auto d = ui.diff("anonymous", *l, *r, spanprof::api_params(req.params));
      send(res, d ? Status() : Status(d.error));
    });
    s->Get("/api/v1/profile/traces", [](const spanprof::Request& req, spanprof::Response& res) {
      auto r = spanprof::traces_through(store(), q, "anonymous", spanprof::api_params(req.params));
      send(res, r ? Status() : Status(r.error));
    });
    s->Get("/api/v1/export", [](const spanprof::Request& req, spanprof::Response& res) {
      auto r = spanprof::export_profile(q, store(), "anonymous", spanprof::api_params(req.params));
      send(res, r ? Status() : Status(r.error));
    });
    s->Get(R"(/api/v1/traces/([^/]+))", [](const spanprof::Request& req, spanprof::Response& res) {
      auto r = q.trace("anonymous", req.matches[1]);
      send(res, r ? Status() : Status(r.error));
    });
    return s;
  }();
  return *srv;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view target = spanprof::fuzz::next_line(in);
  bool post = target.find("ingest") != std::string_view::npos;
  server().request(post ? "POST" : "GET", target, "", in);
  return 0;
}
