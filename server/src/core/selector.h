// Prometheus-syntax label selectors: {name="v", name!="v", name=~"re", name!~"re"}.
// Regexes are ECMAScript std::regex with full-match semantics (anchored like Prometheus/RE2).
#pragma once
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "core/types.h"

namespace spanprof {

struct Matcher {
  enum Op { kEq, kNeq, kRe, kNre } op = kEq;
  std::string name, value;
  std::shared_ptr<std::regex> re;
  bool matches(const Labels& l) const;
};

using Selector = std::vector<Matcher>;

// Max selector text accepted (std::regex is recursive: long patterns can exhaust the stack).
constexpr size_t kMaxSelectorLength = 4096;
constexpr size_t kMaxRegexLength = 512;

Result<Selector> parse_selector(std::string_view text);
bool matches_all(const Selector& s, const Labels& l);

}  // namespace spanprof
