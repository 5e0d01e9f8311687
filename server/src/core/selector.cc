#include "core/selector.h"

#include <cctype>
#include <cstdint>
#include <string_view>

namespace spanprof {

bool Matcher::matches(const Labels& l) const {
  const std::string* v = find_label(l, name);
  const std::string empty;
  const std::string& s = v ? *v : empty;  // a missing label matches as ""
  switch (op) {
    case kEq:
      return s == value;
    case kNeq:
      return s != value;
    case kRe:
      return std::regex_match(s, *re);
    case kNre:
      return !std::regex_match(s, *re);
  }
  return false;
}

bool matches_all(const Selector& s, const Labels& l) {
  for (auto& m : s)
    if (!m.matches(l)) return false;
  return true;
}

namespace {

// libstdc++'s std::regex reads the numbers of `{n,m}` and of backreferences `\n` into an int with
// no overflow check (UB: fuzz_selector found `\2222222222222222222`), and big repeat counts blow
// up its automaton. Numbers in those places above kMaxRegexCount are refused before std::regex
// sees the pattern. (A literal `{12345` inside a [...] class is refused too: rare, and the
// message says why.)
constexpr uint64_t kMaxRegexCount = 1000;

// libstdc++ matches with a backtracking executor by default: `((((p*)*)*)*)*x`, 30 levels deep,
// never finished against "prod" (fuzz_selector; one request would hold a server thread forever).
// Its __polynomial option selects the Thompson-NFA executor (time O(value length × automaton
// states), the automaton capped at _GLIBCXX_REGEX_STATE_LIMIT states) and refuses
// backreferences, which Prometheus' RE2 syntax does not have either.
#ifdef __GLIBCXX__
constexpr auto kRegexFlags = std::regex::ECMAScript | std::regex_constants::__polynomial;
#else
#error "selectors rely on libstdc++'s polynomial-time std::regex mode"
#endif
bool regex_counts_ok(std::string_view p) {
  bool in_brace = false;
  for (size_t i = 0; i < p.size();) {
    char c = p[i++];
    bool number = false;
    if (c == '\\') {
      if (i < p.size() && !std::isdigit(static_cast<unsigned char>(p[i]))) {
        ++i;  // an escaped character, not a backreference
        continue;
      }
      number = true;
    } else if (c == '{') {
      in_brace = number = true;
    } else if (c == ',' && in_brace) {
      number = true;
    } else if (c == '}') {
      in_brace = false;
    }
    if (!number) continue;
    uint64_t v = 0;
    for (size_t digits = 0; i < p.size() && std::isdigit(static_cast<unsigned char>(p[i]));
         ++i, ++digits) {
      if (digits >= 6) return false;
      v = v * 10 + uint64_t(p[i] - '0');
    }
    if (v > kMaxRegexCount) return false;
  }
  return true;
}
struct P {
  std::string_view t;
  size_t i = 0;
  void ws() {
    while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < t.size() && t[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
};
bool name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}
}  // namespace

Result<Selector> parse_selector(std::string_view text) {
  if (text.size() > kMaxSelectorLength) return bad_request("label selector too long");
  P p{text};
  Selector sel;
  p.ws();
  if (p.i == text.size()) return sel;  // empty selector selects everything
  if (!p.eat('{')) return bad_request("label selector must start with '{'");
  if (p.eat('}')) {
    p.ws();
    if (p.i != text.size()) return bad_request("trailing characters after label selector");
    return sel;
  }
  for (;;) {
    p.ws();
    size_t s = p.i;
    while (p.i < text.size() && name_char(text[p.i], p.i == s)) ++p.i;
    if (p.i == s) return bad_request("expected a label name at offset " + std::to_string(s));
    Matcher m;
    m.name = std::string(text.substr(s, p.i - s));
    p.ws();
    if (text.substr(p.i, 2) == "=~") {
      m.op = Matcher::kRe;
      p.i += 2;
    } else if (text.substr(p.i, 2) == "!~") {
      m.op = Matcher::kNre;
      p.i += 2;
    } else if (text.substr(p.i, 2) == "!=") {
      m.op = Matcher::kNeq;
      p.i += 2;
    } else if (p.i < text.size() && text[p.i] == '=') {
      m.op = Matcher::kEq;
      p.i += 1;
    } else {
      return bad_request("expected =, !=, =~ or !~ after label " + m.name);
    }
    p.ws();
    if (p.i >= text.size() || (text[p.i] != '"' && text[p.i] != '\'' && text[p.i] != '`'))
      return bad_request("expected a quoted value for label " + m.name);
    char q = text[p.i++];
    std::string v;
    bool closed = false;
    while (p.i < text.size()) {
      char c = text[p.i++];
      if (c == q) {
        closed = true;
        break;
      }
      if (c == '\\' && q != '`' && p.i < text.size()) {
        char e = text[p.i++];
        switch (e) {
          case 'n':
            v += '\n';
            break;
          case 't':
            v += '\t';
            break;
          default:
            v += e;
        }
      } else {
        v += c;
      }
    }
    if (!closed) return bad_request("unterminated string for label " + m.name);
    m.value = std::move(v);
    if (m.op == Matcher::kRe || m.op == Matcher::kNre) {
      if (m.value.size() > kMaxRegexLength) return bad_request("regex too long for " + m.name);
      if (!regex_counts_ok(m.value))
        return bad_request("regex for " + m.name + ": repeat counts and backreferences above " +
                           std::to_string(kMaxRegexCount) + " are not supported");
      try {
        m.re = std::make_shared<std::regex>(m.value, kRegexFlags);
      } catch (const std::regex_error& e) {
        return bad_request("invalid regex for label " + m.name + ": " + e.what());
      }
    }
    sel.push_back(std::move(m));
    if (p.eat(',')) {
      if (p.eat('}')) break;
      continue;
    }
    if (p.eat('}')) break;
    return bad_request("expected ',' or '}' in label selector");
  }
  p.ws();
  if (p.i != text.size()) return bad_request("trailing characters after label selector");
  return sel;
}

}  // namespace spanprof
