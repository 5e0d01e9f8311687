// The HTTP shell: maps routes to core calls. Everything here is framing: auth, tenant, body
// reading with limits, Connect unary (proto/JSON) encoding, error bodies, static files.
#include "http/server.h"

#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/decode.h"
#include "core/export.h"
#include "core/ingest.h"
#include "core/log.h"
#include "core/profile_traces.h"
#include "core/querier.h"
#include "core/query.h"
#include "core/render.h"
#include "core/ui_api.h"
#include "core/util.h"
#include "http/admission.h"
#include "http/body.h"
#include "http/legacy.h"
#include "http/listener.h"
#include "http/params.h"
#include "http/router.h"
#include "otlp_profiles.pb.h"
#include "otlp_trace.pb.h"
#include "pprof.pb.h"
#include "push.pb.h"
#include "querier.pb.h"
#include "settings.pb.h"

namespace spanprof {

using json = nlohmann::json;

namespace {

void send_json(Response& res, const json& j) {
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

Result<std::string> tenant_of(const Request& req) {
  return tenant_from(req.get_header_value("X-Scope-OrgID"));
}

bool is_json_ct(const Request& req) {
  return req.get_header_value("Content-Type").find("json") != std::string::npos;
}

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

void send_message(Response& res, const google::protobuf::Message& m, bool as_json,
                  const char* proto_ct = "application/proto") {
  if (as_json)
    res.set_content(to_json(m), "application/json");
  else
    res.set_content(m.SerializeAsString(), proto_ct);
}

class Routes {
 public:
  Routes(const ServerConfig& cfg, Store& store, std::shared_ptr<IngestGate> gate)
      : cfg_(cfg), store_(store), q_(store), gate_(std::move(gate)) {}

  // The whole route table. Handlers take (const Request&, Response&).
  void install(Router& s) {
    s.set_pre_routing_handler([this](const Request& req, Response& res) {
      if (req.path == "/healthz" || req.path == "/ready") return false;
      if (!authorized(req.get_header_value("Authorization"), cfg_.auth_token)) {
        res.set_header("WWW-Authenticate", "Bearer, Basic realm=\"spanprof\"");
        send_error(res, {401, "unauthenticated", "missing or wrong credentials"});
        return true;
      }
      return false;
    });

    s.Get("/healthz", [](const Request&, Response& res) { res.set_content("ok\n", "text/plain"); });
    s.Get("/ready",
          [](const Request&, Response& res) { res.set_content("ready\n", "text/plain"); });

    ingest_routes(s);
    querier_routes(s);
    api_routes(s);
    static_routes(s);
  }

 private:
  // Wraps a body-carrying handler: tenant, body with limit, error mapping.
  using BodyFn = std::function<Status(const Request&, Response&, const std::string&, Body&)>;
  // `ingest`: the request counts against its tenant's ingest rate.
  void post(Router& s, const std::string& path, BodyFn fn, bool ingest = false) {
    s.Post(path, [this, fn, ingest](Request& req, Response& res) {
      auto t = tenant_of(req);
      if (!t) return send_error(res, t.error);
      TenantInFlight::Slot slot;
      if (ingest)
        if (auto e = gate_->enter(*t, req.body.size(), slot)) return send_error(res, *e);
      Body b;
      if (auto e = read_body(req, cfg_.limits.max_decompressed_bytes, b))
        return send_error(res, *e);
      if (auto e = fn(req, res, *t, b)) send_error(res, *e);
    });
  }

  void ingest_routes(Router& s) {
    post(
        s, "/push.v1.PusherService/Push",
        [this](const Request& req, Response& res, const std::string& tenant, Body& b) -> Status {
          std::string ct = req.get_header_value("Content-Type");
          if (ct.find("connect+") != std::string::npos)
            return Error{415, "invalid_argument", "streaming Connect is not supported"};
          bool js = is_json_ct(req);
          std::vector<RawProfile> profiles;
          int64_t t0 = now_ns();
          if (auto e = decode_push(b.data, js, tenant, cfg_.limits, profiles)) return e;
          int64_t t1 = now_ns();
          if (auto e = store_.write_profiles(std::move(profiles))) return e;
          log_debug("push: decode %.2f ms, durable write %.2f ms", double(t1 - t0) / 1e6,
                    double(now_ns() - t1) / 1e6);
          send_message(res, push::v1::PushResponse(), js);
          return std::nullopt;
        },
        true);
    auto legacy = [this](const Request& req, Response& res, const std::string& tenant,
                         Body& b) -> Status {
      std::vector<RawProfile> profiles;
      if (auto e = legacy_ingest(req.params, req.is_multipart_form_data(), b.data, b.parts, tenant,
                                 cfg_.limits, profiles))
        return e;
      if (auto e = store_.write_profiles(std::move(profiles))) return e;
      res.status = 200;
      return std::nullopt;
    };
    post(s, "/ingest", legacy, true);
    post(s, "/pyroscope/ingest", legacy, true);
    post(
        s, "/v1development/profiles",
        [this](const Request& req, Response& res, const std::string& tenant, Body& b) -> Status {
          bool js = is_json_ct(req);
          if (auto e = ingest_otlp_profiles(store_, b.data, js, tenant, cfg_.limits)) return e;
          send_message(
              res, opentelemetry::proto::profiles::v1development::ExportProfilesServiceResponse(),
              js, "application/x-protobuf");
          return std::nullopt;
        },
        true);
    post(
        s, "/v1/traces",
        [this](const Request& req, Response& res, const std::string& tenant, Body& b) -> Status {
          bool js = is_json_ct(req);
          if (auto e = ingest_otlp_traces(store_, b.data, js, tenant, cfg_.limits)) return e;
          send_message(res, opentelemetry::proto::trace::v1::ExportTraceServiceResponse(), js,
                       "application/x-protobuf");
          return std::nullopt;
        },
        true);
  }

  template <class Req>
  void connect(Router& s, const std::string& method,
               std::function<Status(const std::string&, const Req&, Response&, bool)> fn) {
    post(s, "/querier.v1.QuerierService/" + method,
         [this, fn](const Request& req, Response& res, const std::string& tenant,
                    Body& b) -> Status {
           bool js = is_json_ct(req);
           Req r;
           if (auto e = parse_proto_message(b.data, js, cfg_.limits, r, "request")) return e;
           return fn(tenant, r, res, js);
         });
  }

  // A querier.v1 method whose semantics are `call(tenant, request)` (core/querier): its answer,
  // or its error as Connect's.
  template <class Req, class Call>
  void method(Router& s, const std::string& name, Call call) {
    connect<Req>(s, name,
                 [call](const std::string& t, const Req& r, Response& res, bool js) -> Status {
                   auto out = call(t, r);
                   if (!out) return out.error;
                   send_message(res, *out, js);
                   return std::nullopt;
                 });
  }

  void querier_routes(Router& s) {
    using namespace querier::v1;
    namespace t1 = types::v1;
    using T = const std::string&;
    auto now_ms = [] { return now_ns() / 1'000'000; };
    const Querier* q = &querier_;
    method<ProfileTypesRequest>(s, "ProfileTypes", [q](T t, const ProfileTypesRequest& r) {
      return q->profile_types(t, r);
    });
    method<t1::LabelNamesRequest>(
        s, "LabelNames", [q](T t, const t1::LabelNamesRequest& r) { return q->label_names(t, r); });
    method<t1::LabelValuesRequest>(s, "LabelValues", [q](T t, const t1::LabelValuesRequest& r) {
      return q->label_values(t, r);
    });
    method<SeriesRequest>(s, "Series",
                          [q](T t, const SeriesRequest& r) { return q->series(t, r); });
    method<SelectMergeStacktracesRequest>(s, "SelectMergeStacktraces",
                                          [q, now_ms](T t, const SelectMergeStacktracesRequest& r) {
                                            return q->select_merge_stacktraces(t, r, now_ms());
                                          });
    method<SelectMergeSpanProfileRequest>(s, "SelectMergeSpanProfile",
                                          [q, now_ms](T t, const SelectMergeSpanProfileRequest& r) {
                                            return q->select_merge_span_profile(t, r, now_ms());
                                          });
    method<SelectMergeProfileRequest>(s, "SelectMergeProfile",
                                      [q, now_ms](T t, const SelectMergeProfileRequest& r) {
                                        return q->select_merge_profile(t, r, now_ms());
                                      });
    method<SelectSeriesRequest>(s, "SelectSeries", [q, now_ms](T t, const SelectSeriesRequest& r) {
      return q->select_series(t, r, now_ms());
    });
    method<SelectHeatmapRequest>(s, "SelectHeatmap",
                                 [q, now_ms](T t, const SelectHeatmapRequest& r) {
                                   return q->select_heatmap(t, r, now_ms());
                                 });
    method<AnalyzeQueryRequest>(s, "AnalyzeQuery", [q, now_ms](T t, const AnalyzeQueryRequest& r) {
      return q->analyze_query(t, r, now_ms());
    });
    method<DiffRequest>(s, "Diff",
                        [q, now_ms](T t, const DiffRequest& r) { return q->diff(t, r, now_ms()); });
    connect<types::v1::GetProfileStatsRequest>(
        s, "GetProfileStats",
        [this](const std::string& t, const types::v1::GetProfileStatsRequest&, Response& res,
               bool js) -> Status {
          send_message(res, querier_.profile_stats(t), js);
          return std::nullopt;
        });
    // Profiles Drilldown reads its settings at start; spanprof keeps none (Set is unimplemented).
    post(s, "/settings.v1.SettingsService/Get",
         [](const Request& req, Response& res, const std::string&, Body&) -> Status {
           send_message(res, settings::v1::GetSettingsResponse(), is_json_ct(req));
           return std::nullopt;
         });
    // Any other Connect method (settings Set, ...): Connect's unimplemented, so a client tells a
    // missing method from a missing server.
    s.Post(R"(/[A-Za-z0-9_.]+\.[A-Za-z0-9_]+/[A-Za-z0-9_]+)",
           [](const Request& req, Response& res) {
             send_error(res, unimplemented(req.path.substr(1) + " is not implemented by spanprof"));
           });
    auto render_selection = [](const RenderQuery& rq) {
      return RenderSelection{rq.profile_type, rq.selector, rq.from_ms, rq.until_ms, rq.max_nodes};
    };
    s.Get("/pyroscope/render", [this, render_selection](const Request& req, Response& res) {
      auto t = tenant_of(req);
      if (!t) return send_error(res, t.error);
      const int64_t now = now_ns() / 1'000'000;
      auto rq = parse_render_params(req.params, now);
      if (!rq) return send_error(res, rq.error);
      if (rq->dot) {
        auto dot = render_dot(querier_, *t, render_selection(*rq), now);
        if (!dot) return send_error(res, dot.error);
        return res.set_content(std::move(*dot), "text/plain");
      }
      auto doc = render(querier_, *t, render_selection(*rq), rq->group_by, rq->average, now);
      if (!doc) return send_error(res, doc.error);
      send_json(res, *doc);
    });
    s.Get("/pyroscope/render-diff", [this, render_selection](const Request& req, Response& res) {
      auto t = tenant_of(req);
      if (!t) return send_error(res, t.error);
      const int64_t now = now_ns() / 1'000'000;
      auto left = parse_render_params(req.params, now, "left");
      if (!left) return send_error(res, left.error);
      auto right = parse_render_params(req.params, now, "right");
      if (!right) return send_error(res, right.error);
      auto doc = render_diff(querier_, *t, render_selection(*left), render_selection(*right), now);
      if (!doc) return send_error(res, doc.error);
      send_json(res, *doc);
    });
  }

  void api_routes(Router& s) {
    auto get = [&s](const std::string& path,
                    std::function<Result<json>(const std::string&, const Request&)> fn) {
      s.Get(path, [fn](const Request& req, Response& res) {
        auto t = tenant_of(req);
        if (!t) return send_error(res, t.error);
        auto r = fn(*t, req);
        if (!r) return send_error(res, r.error);
        send_json(res, *r);
      });
    };
    auto params = [](const Request& req) { return api_params(req.params); };
    get("/api/v1/info", [](const std::string&, const Request&) -> Result<json> {
      return json{{"server", "spanprof"}, {"version", SPANPROF_VERSION}};
    });
    get("/api/v1/services",
        [this](const std::string& t, const Request&) -> Result<json> { return ui_.services(t); });
    get("/api/v1/stats", [this](const std::string& t, const Request&) -> Result<json> {
      return ui_.stats(t, !cfg_.admin_tenant.empty() && t == cfg_.admin_tenant);
    });
    get("/api/v1/traces", [this, params](const std::string& t, const Request& r) {
      return ui_.traces(t, params(r));
    });
    get(R"(/api/v1/traces/([^/]+))",
        [this](const std::string& t, const Request& r) { return ui_.trace(t, r.matches[1]); });
    get("/api/v1/flamegraph", [this, params](const std::string& t, const Request& r) {
      return ui_.flamegraph(t, params(r));
    });
    get("/api/v1/timeline", [this, params](const std::string& t, const Request& r) {
      return ui_.timeline(t, params(r));
    });
    get("/api/v1/diff", [this](const std::string& t, const Request& r) -> Result<json> {
      auto left = api_params_of(first_param(r.params, "left"));
      if (!left) return left.error;
      auto right = api_params_of(first_param(r.params, "right"));
      if (!right) return right.error;
      if (left->empty() || right->empty()) return bad_request("diff needs left and right");
      return ui_.diff(t, *left, *right, api_params(r.params));
    });
    get("/api/v1/profile/traces", [this, params](const std::string& t, const Request& r) {
      return traces_through(store_, q_, t, params(r));
    });
    s.Get("/api/v1/export", [this, params](const Request& req, Response& res) {
      auto t = tenant_of(req);
      if (!t) return send_error(res, t.error);
      auto f = export_profile(q_, store_, *t, params(req));
      if (!f) return send_error(res, f.error);
      res.set_header("Content-Disposition", "attachment; filename=\"" + f->filename + "\"");
      res.set_content(std::move(f->body), f->content_type);
    });
  }

  void static_routes(Router& s) {
    s.Get(R"(/(.*))", [this](const Request& req, Response& res) {
      if (req.path.rfind("/api/", 0) == 0)
        return send_error(res, not_found("no such API route: " + req.path));
      if (cfg_.ui_dir.empty()) {
        res.set_content(
            "<!doctype html><title>spanprof</title><p>spanprof server is running. The web UI "
            "is not built (run scripts/build) or --ui-dir was not given.</p>",
            "text/html");
        return;
      }
      namespace fs = std::filesystem;
      std::error_code ec;
      fs::path root = fs::weakly_canonical(cfg_.ui_dir, ec);
      fs::path want = fs::weakly_canonical(root / req.path.substr(1), ec);
      bool inside = !ec && want.string().rfind(root.string(), 0) == 0;
      if (!inside || !fs::is_regular_file(want, ec)) want = root / "index.html";  // client route
      std::ifstream f(want, std::ios::binary);
      if (!f) return send_error(res, not_found("UI file not found"));
      std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      std::string ext = want.extension().string();
      const char* ct = ext == ".html"   ? "text/html"
                       : ext == ".js"   ? "application/javascript"
                       : ext == ".css"  ? "text/css"
                       : ext == ".svg"  ? "image/svg+xml"
                       : ext == ".json" ? "application/json"
                       : ext == ".png"  ? "image/png"
                       : ext == ".ico"  ? "image/x-icon"
                                        : "application/octet-stream";
      res.set_content(std::move(data), ct);
    });
  }

  const ServerConfig& cfg_;
  Store& store_;
  QueryEngine q_;
  Querier querier_{q_};
  UiApi ui_{q_};
  std::shared_ptr<IngestGate> gate_;
};

}  // namespace

std::shared_ptr<void> install_routes(Router& r, const ServerConfig& cfg, Store& store,
                                     std::shared_ptr<IngestGate> gate) {
  if (!gate) gate = std::make_shared<IngestGate>(cfg.limits);
  auto routes = std::make_shared<Routes>(cfg, store, std::move(gate));
  routes->install(r);
  return routes;
}

}  // namespace spanprof
