// See callsite.h.
#include "callsite.h"

#include <cstdio>
#include <unordered_map>
#include <vector>

#include "linetable.h"

namespace spanprof {
namespace {

constexpr size_t kMaxFiles = 256;
constexpr long kMaxFileBytes = 4 << 20;
constexpr size_t kMaxCallee = 96;

// file -> its lines (empty when unreadable); owned by the drain thread.
std::unordered_map<std::string, std::vector<std::string>>* g_files =
    new std::unordered_map<std::string, std::vector<std::string>>;

const std::vector<std::string>& lines_of(const std::string& file) {
  auto it = g_files->find(file);
  if (it != g_files->end()) return it->second;
  if (g_files->size() >= kMaxFiles) g_files->clear();
  std::vector<std::string>& lines = (*g_files)[file];
  if (file.empty() || file[0] == '<') return lines;  // <string>, <frozen ...>
  FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) return lines;
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 &&
         text.size() + n <= static_cast<size_t>(kMaxFileBytes))
    text.append(buf, n);
  std::fclose(f);
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '\n') {
      lines.emplace_back(text, start, i - start);
      start = i + 1;
    }
  }
  return lines;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

}  // namespace

std::string call_site_callee(const CodeSymbol& sym, int lasti) {
  int col = 0, end_col = 0;
  if (!addr2cols(sym.format, sym.linetable.data(), sym.linetable.size(), lasti, &col, &end_col))
    return "";
  const int line = sym.line_at(lasti);
  const std::vector<std::string>& lines = lines_of(sym.file);
  if (line <= 0 || static_cast<size_t>(line) > lines.size()) return "";
  const std::string& src = lines[static_cast<size_t>(line) - 1];
  if (col < 0 || static_cast<size_t>(end_col) > src.size() || end_col <= col) return "";
  const std::string expr = src.substr(static_cast<size_t>(col), static_cast<size_t>(end_col - col));
  const size_t paren = expr.find('(');
  if (paren == std::string::npos || paren == 0 || paren > kMaxCallee) return "";
  std::string callee = expr.substr(0, paren);
  while (!callee.empty() && callee.back() == ' ') callee.pop_back();
  if (callee.empty() || callee.front() == '.' || callee.back() == '.') return "";
  for (char c : callee)
    if (!name_char(c)) return "";
  return callee;
}

void call_site_reset() { g_files = new std::unordered_map<std::string, std::vector<std::string>>; }

}  // namespace spanprof
