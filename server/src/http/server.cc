// The HTTP shell: maps routes to core calls. Everything here is framing: auth, tenant, body
// reading with limits, Connect unary (proto/JSON) encoding, error bodies, static files.
#include "http/server.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/decode.h"
#include "core/log.h"
#include "core/query.h"
#include "core/util.h"
#include "otlp_profiles.pb.h"
#include "otlp_trace.pb.h"
#include "pprof.pb.h"
#include "push.pb.h"
#include "querier.pb.h"

namespace spanprof {

using json = nlohmann::json;
using httplib::ContentReader;
using httplib::Request;
using httplib::Response;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

void send_error(Response& res, const Error& e) {
  res.status = e.status;
  res.set_content(json{{"code", e.code}, {"message", e.message}}.dump(), "application/json");
}

void send_json(Response& res, const json& j) {
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

bool valid_tenant(const std::string& t) {
  if (t.empty() || t.size() > 150) return false;
  for (char c : t)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

Result<std::string> tenant_of(const Request& req) {
  std::string t = req.get_header_value("X-Scope-OrgID");
  if (t.empty()) return std::string("anonymous");
  if (!valid_tenant(t))
    return bad_request("X-Scope-OrgID must be 1-150 characters of [A-Za-z0-9_.-]");
  return t;
}

bool ct_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

bool authorized(const Request& req, const std::string& token) {
  if (token.empty()) return true;
  std::string h = req.get_header_value("Authorization");
  if (h.rfind("Bearer ", 0) == 0) return ct_equal(h.substr(7), token);
  if (h.rfind("Basic ", 0) == 0) {
    std::string dec;
    if (!base64_decode(h.substr(6), dec)) return false;
    size_t colon = dec.find(':');
    return colon != std::string::npos && ct_equal(dec.substr(colon + 1), token);
  }
  return false;
}

struct Body {
  std::string data;
  std::vector<httplib::MultipartFormData> parts;
};

// Reads the body (httplib has already undone Content-Encoding) and stops at `limit` bytes of
// decompressed data, so a gzip bomb costs at most `limit` bytes of memory. httplib itself also
// stops decompressing at its payload limit (`wire_limit`); that failure is reported as 413 too.
Status read_body(const Request& req, const ContentReader& reader, size_t limit, size_t wire_limit,
                 Body& b) {
  size_t total = 0;
  bool over = false;
  bool ok;
  if (req.is_multipart_form_data()) {
    ok = reader(
        [&](const httplib::MultipartFormData& f) {
          b.parts.push_back(f);
          return true;
        },
        [&](const char* d, size_t n) {
          if ((total += n) > limit) return !(over = true);
          if (!b.parts.empty()) b.parts.back().content.append(d, n);
          return true;
        });
  } else {
    ok = reader([&](const char* d, size_t n) {
      if ((total += n) > limit) return !(over = true);
      b.data.append(d, n);
      return true;
    });
  }
  if (over) return too_large("decompressed body exceeds " + std::to_string(limit) + " bytes");
  constexpr size_t kInflateChunk = 2 * 16384;  // httplib's decompression buffer, twice
  if (!ok && req.has_header("Content-Encoding") && total + kInflateChunk >= wire_limit)
    return too_large("decompressed body exceeds " + std::to_string(wire_limit) + " bytes");
  if (!ok &&
      std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > wire_limit)
    return too_large("request body exceeds " + std::to_string(wire_limit) + " bytes");
  if (!ok) return bad_request("could not read the request body (bad encoding or framing)");
  return std::nullopt;
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

int64_t parse_render_time(const std::string& s, int64_t now_ms, int64_t def) {
  if (s.empty()) return def;
  if (s.rfind("now", 0) == 0) {
    if (s == "now") return now_ms;
    if (s.size() > 4 && s[3] == '-') {
      int64_t d = parse_duration_s(s.substr(4));
      return d < 0 ? def : now_ms - d * 1000;
    }
    return def;
  }
  try {
    return unix_to_ns(std::stoll(s)) / 1'000'000;
  } catch (...) {
    return def;
  }
}

std::vector<uint64_t> parse_span_selector(const google::protobuf::RepeatedPtrField<std::string>& v,
                                          Error& err) {
  std::vector<uint64_t> out;
  for (auto& s : v) {
    uint64_t x;
    if (!parse_hex_u64(s, x)) {
      err = bad_request("span_selector entries must be 16 hex characters: " + s.substr(0, 40));
      return {};
    }
    out.push_back(x);
  }
  return out;
}

void fill_flamegraph(querier::v1::FlameGraph* fg, const FlameGraphOut& f) {
  for (auto& n : f.names) fg->add_names(n);
  for (auto& l : f.levels) {
    auto* lv = fg->add_levels();
    for (auto v : l) lv->add_values(v);
  }
  fg->set_total(f.total);
  fg->set_max_self(f.max_self);
}

int64_t end_or_now(int64_t end) { return end > 0 ? end : now_ns() / 1'000'000; }

class Routes {
 public:
  Routes(const ServerConfig& cfg, Store& store) : cfg_(cfg), store_(store), q_(store) {}

  void install(httplib::Server& s) {
    s.set_payload_max_length(cfg_.limits.max_body_bytes);
    s.set_tcp_nodelay(true);  // headers and body go out separately: avoid Nagle + delayed ACK
    s.set_read_timeout(30, 0);
    s.set_write_timeout(30, 0);
    s.set_pre_routing_handler([this](const Request& req, Response& res) {
      if (req.path == "/healthz" || req.path == "/ready") return Handled::Unhandled;
      if (!authorized(req, cfg_.auth_token)) {
        res.set_header("WWW-Authenticate", "Bearer, Basic realm=\"spanprof\"");
        send_error(res, {401, "unauthenticated", "missing or wrong credentials"});
        return Handled::Handled;
      }
      return Handled::Unhandled;
    });
    s.set_error_handler([](const Request&, Response& res) {
      if (res.body.empty()) {
        std::string code = res.status == 413   ? "resource_exhausted"
                           : res.status == 404 ? "not_found"
                           : res.status == 415 ? "invalid_argument"
                                               : "invalid_argument";
        send_error(res, {res.status, code, "HTTP " + std::to_string(res.status)});
      }
    });
    s.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      log_error("handler exception: %s", what.c_str());
      send_error(res, internal_error(what));
    });
    s.set_logger([](const Request& req, const Response& res) {
      if (res.status >= 500)
        log_error("%s %s -> %d", req.method.c_str(), req.path.c_str(), res.status);
      else if (res.status >= 400)
        log_warn("%s %s -> %d %s", req.method.c_str(), req.path.c_str(), res.status,
                 res.body.substr(0, 200).c_str());
      else
        log_debug("%s %s -> %d", req.method.c_str(), req.path.c_str(), res.status);
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
  using Handled = httplib::Server::HandlerResponse;

  // Wraps a body-carrying handler: tenant, body with limit, error mapping.
  using BodyFn = std::function<Status(const Request&, Response&, const std::string&, Body&)>;
  void post(httplib::Server& s, const std::string& path, BodyFn fn) {
    s.Post(path, [this, fn](const Request& req, Response& res, const ContentReader& reader) {
      auto t = tenant_of(req);
      if (!t) return send_error(res, t.error);
      Body b;
      if (auto e = read_body(req, reader, cfg_.limits.max_decompressed_bytes,
                             cfg_.limits.max_body_bytes, b))
        return send_error(res, *e);
      if (auto e = fn(req, res, *t, b)) send_error(res, *e);
    });
  }

  void ingest_routes(httplib::Server& s) {
    post(s, "/push.v1.PusherService/Push",
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
         });
    auto legacy = [this](const Request& req, Response& res, const std::string& tenant,
                         Body& b) -> Status {
      LegacyParams p;
      p.name = req.get_param_value("name");
      auto num = [&](const char* k, int64_t def) -> int64_t {
        std::string v = req.get_param_value(k);
        if (v.empty()) return def;
        try {
          return std::stoll(v);
        } catch (...) {
          return INT64_MIN;
        }
      };
      p.from = num("from", 0);
      p.until = num("until", 0);
      p.sample_rate = num("sampleRate", 100);
      if (p.from == INT64_MIN || p.until == INT64_MIN || p.sample_rate == INT64_MIN)
        return bad_request("from, until and sampleRate must be integers");
      p.spy_name = req.get_param_value("spyName");
      if (req.has_param("units")) p.units = req.get_param_value("units");
      if (req.has_param("aggregationType")) p.aggregation = req.get_param_value("aggregationType");
      p.format = req.get_param_value("format");
      std::vector<RawProfile> profiles;
      Labels series;
      std::string suffix;
      if (auto e = legacy_series(p, cfg_.limits, series, suffix)) return e;
      if (!b.parts.empty() || req.is_multipart_form_data()) {
        const httplib::MultipartFormData *prof = nullptr, *cfgp = nullptr;
        for (auto& part : b.parts) {
          if (part.name == "profile") prof = &part;
          if (part.name == "sample_type_config") cfgp = &part;
        }
        if (!prof) return bad_request("multipart upload needs a 'profile' part");
        std::vector<std::pair<std::string, std::string>> types;
        if (cfgp)
          if (auto e = parse_sample_type_config(cfgp->content, types)) return e;
        if (auto e = decode_pprof(prof->content, tenant, series, cfg_.limits, profiles,
                                  cfgp ? &types : nullptr))
          return e;
      } else if (p.format == "pprof") {
        if (auto e = decode_pprof(b.data, tenant, series, cfg_.limits, profiles)) return e;
      } else if (p.format == "jfr" || p.format == "trie" || p.format == "tree") {
        return unprocessable("format=" + p.format + " is not supported by spanprof");
      } else {
        std::string text = b.data;
        if (is_gzip(text)) {
          auto r = gunzip(text, cfg_.limits.max_decompressed_bytes);
          if (!r) return r.error;
          text = std::move(*r);
        }
        if (auto e = decode_folded(text, p.format == "lines", p, tenant, cfg_.limits, profiles))
          return e;
      }
      // Legacy API: from/until (any unit) are the profile's time range, also for pprof bodies.
      if (p.from > 0)
        for (auto& rp : profiles) {
          rp.time_ns = unix_to_ns(p.from);
          if (p.until > p.from) rp.duration_ns = unix_to_ns(p.until) - rp.time_ns;
        }
      if (auto e = store_.write_profiles(std::move(profiles))) return e;
      res.status = 200;
      return std::nullopt;
    };
    post(s, "/ingest", legacy);
    post(s, "/pyroscope/ingest", legacy);
    post(s, "/v1development/profiles",
         [this](const Request& req, Response& res, const std::string& tenant, Body& b) -> Status {
           bool js = is_json_ct(req);
           std::vector<RawProfile> profiles;
           if (auto e = decode_otlp_profiles(b.data, js, tenant, cfg_.limits, profiles)) return e;
           if (auto e = store_.write_profiles(std::move(profiles))) return e;
           send_message(
               res, opentelemetry::proto::profiles::v1development::ExportProfilesServiceResponse(),
               js, "application/x-protobuf");
           return std::nullopt;
         });
    post(s, "/v1/traces",
         [this](const Request& req, Response& res, const std::string& tenant, Body& b) -> Status {
           bool js = is_json_ct(req);
           std::vector<SpanRow> spans;
           if (auto e = decode_otlp_traces(b.data, js, tenant, cfg_.limits, spans)) return e;
           if (auto e = store_.write_spans(std::move(spans))) return e;
           send_message(res, opentelemetry::proto::trace::v1::ExportTraceServiceResponse(), js,
                        "application/x-protobuf");
           return std::nullopt;
         });
  }

  template <class Req>
  void connect(httplib::Server& s, const std::string& method,
               std::function<Status(const std::string&, const Req&, Response&, bool)> fn) {
    post(s, "/querier.v1.QuerierService/" + method,
         [fn](const Request& req, Response& res, const std::string& tenant, Body& b) -> Status {
           bool js = is_json_ct(req);
           Req r;
           if (js) {
             google::protobuf::util::JsonParseOptions o;
             o.ignore_unknown_fields = true;
             auto st =
                 google::protobuf::util::JsonStringToMessage(b.data.empty() ? "{}" : b.data, &r, o);
             if (!st.ok()) return bad_request("invalid JSON request: " + st.ToString());
           } else if (!r.ParseFromString(b.data)) {
             return bad_request("invalid protobuf request");
           }
           return fn(tenant, r, res, js);
         });
  }

  void querier_routes(httplib::Server& s) {
    using namespace querier::v1;
    connect<ProfileTypesRequest>(s, "ProfileTypes",
                                 [this](const std::string& t, const ProfileTypesRequest& r,
                                        Response& res, bool js) -> Status {
                                   ProfileTypesResponse out;
                                   std::map<std::string, const SeriesInfo*> seen;
                                   auto found = q_.match_any(t, {}, r.start(), r.end());
                                   if (!found) return found.error;
                                   auto& all = *found;
                                   for (auto& si : all) seen.emplace(si.profile_type, &si);
                                   for (auto& [id, si] : seen) {
                                     auto* pt = out.add_profile_types();
                                     pt->set_id(id);
                                     auto lab = [&](const char* k) {
                                       auto* v = find_label(si->labels, k);
                                       return v ? *v : std::string();
                                     };
                                     pt->set_name(lab("__name__"));
                                     pt->set_sample_type(lab("__type__"));
                                     pt->set_sample_unit(lab("__unit__"));
                                     pt->set_period_type(lab("__period_type__"));
                                     pt->set_period_unit(lab("__period_unit__"));
                                   }
                                   send_message(res, out, js);
                                   return std::nullopt;
                                 });
    connect<types::v1::LabelNamesRequest>(
        s, "LabelNames",
        [this](const std::string& t, const types::v1::LabelNamesRequest& r, Response& res,
               bool js) -> Status {
          auto ss = q_.match_any(t, {r.matchers().begin(), r.matchers().end()}, r.start(), r.end());
          if (!ss) return ss.error;
          std::set<std::string> names;
          for (auto& si : *ss)
            for (auto& kv : si.labels) names.insert(kv.first);
          types::v1::LabelNamesResponse out;
          for (auto& n : names) out.add_names(n);
          send_message(res, out, js);
          return std::nullopt;
        });
    connect<types::v1::LabelValuesRequest>(
        s, "LabelValues",
        [this](const std::string& t, const types::v1::LabelValuesRequest& r, Response& res,
               bool js) -> Status {
          auto ss = q_.match_any(t, {r.matchers().begin(), r.matchers().end()}, r.start(), r.end());
          if (!ss) return ss.error;
          std::set<std::string> vals;
          for (auto& si : *ss)
            if (auto* v = find_label(si.labels, r.name())) vals.insert(*v);
          types::v1::LabelValuesResponse out;
          for (auto& v : vals) out.add_names(v);
          send_message(res, out, js);
          return std::nullopt;
        });
    connect<SeriesRequest>(
        s, "Series",
        [this](const std::string& t, const SeriesRequest& r, Response& res, bool js) -> Status {
          auto ss = q_.match_any(t, {r.matchers().begin(), r.matchers().end()}, r.start(), r.end());
          if (!ss) return ss.error;
          std::set<Labels> uniq;
          for (auto& si : *ss) {
            Labels l;
            for (auto& kv : si.labels) {
              bool keep = r.label_names_size() == 0;
              for (auto& n : r.label_names()) keep = keep || n == kv.first;
              if (keep) l.push_back(kv);
            }
            uniq.insert(l);
          }
          SeriesResponse out;
          for (auto& l : uniq) {
            auto* ls = out.add_labels_set();
            for (auto& [k, v] : l) {
              auto* lp = ls->add_labels();
              lp->set_name(k);
              lp->set_value(v);
            }
          }
          send_message(res, out, js);
          return std::nullopt;
        });
    connect<SelectMergeStacktracesRequest>(
        s, "SelectMergeStacktraces",
        [this](const std::string& t, const SelectMergeStacktracesRequest& r, Response& res,
               bool js) -> Status {
          Error err;
          auto spans = parse_span_selector(r.span_selector(), err);
          if (!err.message.empty()) return err;
          auto st = q_.merge(t, r.profile_typeid(), r.label_selector(), r.start(),
                             end_or_now(r.end()), spans);
          if (!st) return st.error;
          SelectMergeStacktracesResponse out;
          fill_flamegraph(out.mutable_flamegraph(),
                          q_.flamegraph(*st, r.has_max_nodes() ? r.max_nodes() : 0));
          send_message(res, out, js);
          return std::nullopt;
        });
    connect<SelectMergeSpanProfileRequest>(
        s, "SelectMergeSpanProfile",
        [this](const std::string& t, const SelectMergeSpanProfileRequest& r, Response& res,
               bool js) -> Status {
          Error err;
          auto spans = parse_span_selector(r.span_selector(), err);
          if (!err.message.empty()) return err;
          SelectMergeSpanProfileResponse out;
          if (!spans.empty()) {
            auto st = q_.merge(t, r.profile_typeid(), r.label_selector(), r.start(),
                               end_or_now(r.end()), spans);
            if (!st) return st.error;
            fill_flamegraph(out.mutable_flamegraph(),
                            q_.flamegraph(*st, r.has_max_nodes() ? r.max_nodes() : 0));
          } else {
            fill_flamegraph(out.mutable_flamegraph(), FlameTree().flamegraph({}, 0));
          }
          send_message(res, out, js);
          return std::nullopt;
        });
    connect<SelectMergeProfileRequest>(
        s, "SelectMergeProfile",
        [this](const std::string& t, const SelectMergeProfileRequest& r, Response& res,
               bool js) -> Status {
          auto st = q_.merge(t, r.profile_typeid(), r.label_selector(), r.start(),
                             end_or_now(r.end()), {});
          if (!st) return st.error;
          perftools::profiles::Profile p;
          p.ParseFromString(q_.to_pprof(*st));
          send_message(res, p, js);
          return std::nullopt;
        });
    connect<SelectSeriesRequest>(
        s, "SelectSeries",
        [this](const std::string& t, const SelectSeriesRequest& r, Response& res,
               bool js) -> Status {
          auto ss = q_.select_series(
              t, r.profile_typeid(), r.label_selector(), r.start(), end_or_now(r.end()),
              r.step() > 0 ? r.step() : 15, {r.group_by().begin(), r.group_by().end()},
              r.has_aggregation() &&
                  r.aggregation() == types::v1::TIME_SERIES_AGGREGATION_TYPE_AVERAGE);
          if (!ss) return ss.error;
          SelectSeriesResponse out;
          for (auto& sp : *ss) {
            if (r.has_limit() && r.limit() > 0 && out.series_size() >= r.limit()) break;
            auto* se = out.add_series();
            for (auto& [k, v] : sp.labels) {
              auto* lp = se->add_labels();
              lp->set_name(k);
              lp->set_value(v);
            }
            for (auto& [ts, v] : sp.points) {
              auto* pt = se->add_points();
              pt->set_timestamp(ts);
              pt->set_value(v);
            }
          }
          send_message(res, out, js);
          return std::nullopt;
        });
    s.Get("/pyroscope/render", [this](const Request& req, Response& res) {
      auto t = tenant_of(req);
      if (!t) return send_error(res, t.error);
      std::string query = req.get_param_value("query");
      size_t brace = query.find('{');
      std::string head = query.substr(0, brace);
      std::string sel = brace == std::string::npos ? "{}" : query.substr(brace);
      std::string pt;
      if (head.find(':') != std::string::npos) {
        pt = head;
      } else {
        // Legacy "app.cpu{...}": the application becomes a service_name matcher.
        std::string app = head, suffix = "cpu";
        size_t dot = head.rfind('.');
        if (dot != std::string::npos) app = head.substr(0, dot), suffix = head.substr(dot + 1);
        pt = suffix == "cpu" ? "process_cpu:cpu:nanoseconds:cpu:nanoseconds" : "";
        std::string inner = sel.substr(1, sel.size() - 2);
        sel = "{service_name=\"" + app + "\"" +
              (inner.find_first_not_of(" ") == std::string::npos ? "" : "," + inner) + "}";
      }
      int64_t now_ms = now_ns() / 1'000'000;
      int64_t from = parse_render_time(req.get_param_value("from"), now_ms, now_ms - 3600'000);
      int64_t until = parse_render_time(req.get_param_value("until"), now_ms, now_ms);
      int64_t max_nodes = 0;
      try {
        std::string mn = req.get_param_value("maxNodes");
        if (mn.empty()) mn = req.get_param_value("max-nodes");
        if (!mn.empty()) max_nodes = std::stoll(mn);
      } catch (...) {
        return send_error(res, bad_request("maxNodes must be an integer"));
      }
      auto st = q_.merge(*t, pt, sel, from, until, {});
      if (!st) return send_error(res, st.error);
      auto fg = q_.flamegraph(*st, max_nodes);
      auto series = q_.select_series(*t, pt, sel, from, until, 10, {}, false);
      std::vector<double> samples;
      if (series && !series->empty())
        for (auto& [ts, v] : series->front().points) samples.push_back(v);
      send_json(res, {{"version", 1},
                      {"flamebearer",
                       {{"names", fg.names},
                        {"levels", fg.levels},
                        {"numTicks", fg.total},
                        {"maxSelf", fg.max_self}}},
                      {"metadata",
                       {{"format", "single"},
                        {"spyName", ""},
                        {"sampleRate", st->period > 0 ? 1'000'000'000 / st->period : 100},
                        {"units", st->sample_unit},
                        {"name", query}}},
                      {"timeline",
                       {{"startTime", from / 1000}, {"samples", samples}, {"durationDelta", 10}}}});
    });
  }

  void api_routes(httplib::Server& s) {
    auto get = [this, &s](const std::string& path,
                          std::function<Result<json>(const std::string&, const Request&)> fn) {
      s.Get(path, [fn](const Request& req, Response& res) {
        auto t = tenant_of(req);
        if (!t) return send_error(res, t.error);
        auto r = fn(*t, req);
        if (!r) return send_error(res, r.error);
        send_json(res, *r);
      });
    };
    auto params = [](const Request& req) {
      Params p;
      for (auto& [k, v] : req.params) p[k] = v;
      return p;
    };
    get("/api/v1/info", [](const std::string&, const Request&) -> Result<json> {
      return json{{"server", "spanprof"}, {"version", SPANPROF_VERSION}};
    });
    get("/api/v1/services",
        [this](const std::string& t, const Request&) -> Result<json> { return q_.services(t); });
    get("/api/v1/stats",
        [this](const std::string&, const Request&) -> Result<json> { return q_.stats(); });
    get("/api/v1/traces",
        [this, params](const std::string& t, const Request& r) { return q_.traces(t, params(r)); });
    get(R"(/api/v1/traces/([^/]+))",
        [this](const std::string& t, const Request& r) { return q_.trace(t, r.matches[1]); });
    get("/api/v1/flamegraph", [this, params](const std::string& t, const Request& r) {
      return q_.flamegraph_json(t, params(r));
    });
    get("/api/v1/timeline", [this, params](const std::string& t, const Request& r) {
      return q_.timeline(t, params(r));
    });
    get("/api/v1/diff",
        [this, params](const std::string& t, const Request& r) { return q_.diff(t, params(r)); });
  }

  void static_routes(httplib::Server& s) {
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
};

bool split_host_port(const std::string& hp, std::string& host, int& port) {
  size_t c = hp.rfind(':');
  if (c == std::string::npos) return false;
  host = hp.substr(0, c);
  if (host.empty()) host = "127.0.0.1";
  try {
    port = std::stoi(hp.substr(c + 1));
  } catch (...) {
    return false;
  }
  return port >= 0 && port < 65536;
}

}  // namespace

int run_server(const ServerConfig& cfg) {
  auto store = Store::open(cfg.store);
  if (!store) {
    log_error("%s", store.error.message.c_str());
    return 1;
  }
  Routes routes(cfg, **store);
  std::vector<std::unique_ptr<httplib::Server>> servers;
  std::vector<std::thread> threads;
  auto start = [&](const std::string& hp, const char* what) -> bool {
    std::string host;
    int port;
    if (!split_host_port(hp, host, port)) {
      log_error("bad %s address %s (want host:port)", what, hp.c_str());
      return false;
    }
    auto srv = std::make_unique<httplib::Server>();
    int nthreads = cfg.threads;
    srv->new_task_queue = [nthreads] { return new httplib::ThreadPool(size_t(nthreads)); };
    routes.install(*srv);
    if (port == 0) {
      port = srv->bind_to_any_port(host);
      if (port < 0) {
        log_error("cannot bind %s", hp.c_str());
        return false;
      }
    } else if (!srv->bind_to_port(host, port)) {
      log_error("cannot bind %s: %s", hp.c_str(), strerror(errno));
      return false;
    }
    log_info("%s listening on http://%s:%d", what, host.c_str(), port);
    // Tests read this line to find an ephemeral port.
    fprintf(stderr, "LISTENING %s %s:%d\n", what, host.c_str(), port);
    fflush(stderr);
    auto* raw = srv.get();
    servers.push_back(std::move(srv));
    threads.emplace_back([raw] { raw->listen_after_bind(); });
    return true;
  };
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  bool ok = start(cfg.listen, "api");
  if (ok && !cfg.otlp_listen.empty()) ok = start(cfg.otlp_listen, "otlp");
  if (ok) {
    if (cfg.listen.rfind("127.", 0) != 0 && cfg.listen.rfind("localhost:", 0) != 0 &&
        cfg.auth_token.empty())
      log_warn("listening on a non-loopback address without --auth-token");
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log_info("shutting down: finishing in-flight requests");
  }
  for (auto& s : servers) s->stop();
  for (auto& t : threads) t.join();
  (*store).reset();
  log_info("storage closed");
  return ok ? 0 : 1;
}

}  // namespace spanprof
