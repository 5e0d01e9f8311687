#include "grpc/otlp_grpc.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/server_callback_handlers.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <functional>
#include <string_view>
#include <vector>

#include "core/ingest.h"
#include "core/log.h"
#include "grpc/workers.h"
#include "otlp_profiles.pb.h"
#include "otlp_trace.pb.h"
#include "rpc_status.pb.h"

namespace spanprof {

namespace {

using Ingest = Status (*)(Store&, std::string_view, bool, const std::string&, const Limits&);

// The first value of metadata `key` (lowercase, as gRPC delivers keys), "" when absent.
std::string metadata(const grpc::ServerContextBase& ctx, const char* key) {
  auto it = ctx.client_metadata().find(key);
  return it == ctx.client_metadata().end() ? std::string()
                                           : std::string(it->second.data(), it->second.size());
}

// An Error as a gRPC status. A retry delay travels as google.rpc.RetryInfo in the status details:
// OTLP clients retry RESOURCE_EXHAUSTED only when it is there.
grpc::Status to_grpc(const Error& e) {
  auto code = static_cast<grpc::StatusCode>(grpc_status_code(e));
  if (e.retry_after_s <= 0) return grpc::Status(code, e.message);
  google::rpc::RetryInfo ri;
  ri.mutable_retry_delay()->set_seconds(e.retry_after_s);
  google::rpc::Status st;
  st.set_code(int(code));
  st.set_message(e.message);
  st.add_details()->PackFrom(ri);
  return grpc::Status(code, e.message, st.SerializeAsString());
}

// The request as one contiguous byte string: a view of gRPC's single slice when it is one (the
// usual case), else a copy of its slices.
struct Bytes {
  std::vector<grpc::Slice> slices;
  std::string joined;
  std::string_view view;
  bool read(const grpc::ByteBuffer& bb) {
    if (!bb.Dump(&slices).ok()) return false;
    if (slices.size() == 1) {
      view = std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size());
      return true;
    }
    joined.reserve(bb.Length());
    for (auto& s : slices) joined.append(reinterpret_cast<const char*>(s.begin()), s.size());
    view = joined;
    return true;
  }
};

// One service of one unary method whose request and response stay bytes: gRPC hands the
// (inflated, size-checked) message to `ingest` untouched, so the core's decoder is the only
// parser, as on the HTTP side. Registered as a raw callback method through grpc::internal's
// method table, the interface protoc's generated services use (stable within the Debian 1.51
// release the build pins); the callback returns at once, the work runs on `workers`.
class RawExport : public grpc::Service {
 public:
  RawExport(const char* path, Ingest ingest, std::string ok_response, const ServerConfig& cfg,
            Store& store, IngestGate& gate, Workers& workers)
      : ingest_(ingest),
        ok_(std::move(ok_response)),
        cfg_(cfg),
        store_(store),
        gate_(gate),
        workers_(workers) {
    AddMethod(
        new grpc::internal::RpcServiceMethod(path, grpc::internal::RpcMethod::NORMAL_RPC, nullptr));
    MarkMethodRawCallback(
        0, new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
               [this](grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                      grpc::ByteBuffer* res) { return start(*ctx, *req, *res); }));
  }

 private:
  grpc::ServerUnaryReactor* start(grpc::CallbackServerContext& ctx, const grpc::ByteBuffer& req,
                                  grpc::ByteBuffer& res) {
    grpc::ServerUnaryReactor* reactor = ctx.DefaultReactor();
    if (!authorized(metadata(ctx, "authorization"), cfg_.auth_token)) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong credentials"));
      return reactor;
    }
    auto tenant = tenant_from(metadata(ctx, "x-scope-orgid"));
    if (!tenant) {
      reactor->Finish(to_grpc(tenant.error));
      return reactor;
    }
    // `req`, `res` and the reactor live until Finish.
    bool queued = workers_.post(
        [this, reactor, &req, &res, t = std::move(*tenant)] { reactor->Finish(run(t, req, res)); });
    if (!queued)
      reactor->Finish(to_grpc(Error{
          503, "unavailable", "too many OTLP/gRPC calls waiting (--max-queued-requests)", 1}));
    return reactor;
  }

  grpc::Status run(const std::string& tenant, const grpc::ByteBuffer& req, grpc::ByteBuffer& res) {
    Bytes body;
    if (!body.read(req)) return grpc::Status(grpc::StatusCode::INTERNAL, "cannot read message");
    // The rate counts the message as gRPC hands it over (inflated when sent gzipped).
    TenantInFlight::Slot slot;
    if (auto e = gate_.enter(tenant, body.view.size(), slot)) return to_grpc(*e);
    if (auto e = ingest_(store_, body.view, false, tenant, cfg_.limits)) return to_grpc(*e);
    // An empty partial_success: everything was accepted (the core stores all or nothing).
    grpc::Slice s(ok_);
    res = grpc::ByteBuffer(&s, 1);
    return grpc::Status::OK;
  }

  Ingest ingest_;
  std::string ok_;
  const ServerConfig& cfg_;
  Store& store_;
  IngestGate& gate_;
  Workers& workers_;
};

}  // namespace

struct OtlpGrpcServer::Impl {
  Impl(const ServerConfig& c, Store& s, std::shared_ptr<IngestGate> g)
      : cfg(c), store(s), gate(std::move(g)) {}
  const ServerConfig& cfg;
  Store& store;
  std::shared_ptr<IngestGate> gate;
  Workers workers{std::max(1, cfg.otlp_grpc_threads), cfg.http.max_queued_requests};
  RawExport traces{
      "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
      &ingest_otlp_traces,
      opentelemetry::proto::trace::v1::ExportTraceServiceResponse().SerializeAsString(),
      cfg,
      store,
      *gate,
      workers};
  RawExport profiles{"/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
                     &ingest_otlp_profiles,
                     opentelemetry::proto::profiles::v1development::ExportProfilesServiceResponse()
                         .SerializeAsString(),
                     cfg,
                     store,
                     *gate,
                     workers};
  std::unique_ptr<grpc::Server> server;
};

OtlpGrpcServer::OtlpGrpcServer(const ServerConfig& cfg, Store& store,
                               std::shared_ptr<IngestGate> gate)
    : impl_(std::make_unique<Impl>(cfg, store, std::move(gate))) {}

OtlpGrpcServer::~OtlpGrpcServer() { stop(0); }

int OtlpGrpcServer::start(const std::string& host, int port, std::string& err) {
  const ServerConfig& cfg = impl_->cfg;
  grpc::ServerBuilder b;
  int bound = -1;
  b.AddListeningPort(host + ":" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
  b.RegisterService(&impl_->traces);
  b.RegisterService(&impl_->profiles);
  // The message as received and again once inflated: a gzip bomb costs at most this much.
  b.SetMaxReceiveMessageSize(int(std::min<size_t>(cfg.limits.max_body_bytes, INT32_MAX)));
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, cfg.http.idle_timeout_s * 1000);
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 64);
  impl_->server = b.BuildAndStart();
  if (!impl_->server || bound <= 0) {
    impl_->server.reset();
    err = "gRPC could not listen on " + host + ":" + std::to_string(port) +
          " (address in use or not local?)";
    return -1;
  }
  return bound;
}

void OtlpGrpcServer::stop(int grace_s) {
  if (!impl_->server) return;
  // The workers keep running meanwhile: Shutdown waits for every call to finish.
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(grace_s));
  impl_->server->Wait();
  impl_->server.reset();
  impl_->workers.stop();
  log_info("OTLP/gRPC receiver stopped");
}

}  // namespace spanprof
