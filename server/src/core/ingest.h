// OTLP export requests from bytes to storage: the one path both transports take (OTLP/HTTP routes
// in http/server.cc, OTLP/gRPC in grpc/otlp_grpc.cc), so they file identical data and refuse the
// same input with the same Error.
#pragma once
#include <string>
#include <string_view>

#include "core/store.h"
#include "core/types.h"

namespace spanprof {

// ExportProfilesServiceRequest (binary proto, or OTLP JSON when `json`): decoded with `lim`, then
// written durably. All or nothing: on an Error nothing of the request is stored.
Status ingest_otlp_profiles(Store& store, std::string_view body, bool json,
                            const std::string& tenant, const Limits& lim);

// ExportTraceServiceRequest, likewise.
Status ingest_otlp_traces(Store& store, std::string_view body, bool json, const std::string& tenant,
                          const Limits& lim);

}  // namespace spanprof
