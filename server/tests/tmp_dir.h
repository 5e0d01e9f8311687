// A fresh directory under /tmp for one test's store, removed with everything in it afterwards.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <string>

struct TmpDir {
  std::string path;
  TmpDir() {
    char t[] = "/tmp/spanprof-test-XXXXXX";
    path = mkdtemp(t);
  }
  ~TmpDir() { std::filesystem::remove_all(path); }
  TmpDir(const TmpDir&) = delete;
  TmpDir& operator=(const TmpDir&) = delete;
};
