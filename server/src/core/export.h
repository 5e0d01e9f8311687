// Downloads of a profile selection (/api/v1/export): pprof (gzipped perftools.profiles.Profile),
// speedscope's file format, and collapsed ("folded") stacks. The selection takes the
// /api/v1/flamegraph parameters. No HTTP here.
#pragma once
#include <string>

#include "core/ui_api.h"

namespace spanprof {

struct ExportFile {
  std::string content_type, filename, body;
};

Result<ExportFile> export_profile(const QueryEngine& q, const Store& s, const std::string& tenant,
                                  const Params& p);

}  // namespace spanprof
