#include "core/jsontext.h"

#include <cctype>

#include "core/util.h"

namespace spanprof {

namespace {

bool is_id_key(std::string_view k) {
  return k == "traceId" || k == "spanId" || k == "parentSpanId" || k == "trace_id" ||
         k == "span_id" || k == "parent_span_id";
}

int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool hex_bytes(std::string_view s, std::string& out) {
  if (s.size() % 2) return false;
  out.clear();
  for (size_t i = 0; i < s.size(); i += 2) {
    int a = hex_val(s[i]), b = hex_val(s[i + 1]);
    if (a < 0 || b < 0) return false;
    out += char(a << 4 | b);
  }
  return true;
}

Error too_deep(size_t max_depth) {
  return bad_request("JSON nests deeper than the limit of " + std::to_string(max_depth) +
                     " levels (--max-json-depth)");
}

// One pass over `text`. With `out`, copies it, rewriting id values.
Status scan(std::string_view text, size_t max_depth, std::string* out) {
  size_t depth = 0;
  bool id_value_next = false;  // the last token was `"<id key>" :`
  std::string bytes;
  size_t copied = 0;  // text[0, copied) is already in *out
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '[' || c == '{') {
      if (++depth > max_depth) return too_deep(max_depth);
      id_value_next = false;
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
      id_value_next = false;
    } else if (c == '"') {
      size_t start = i + 1, j = start;
      bool escaped = false;
      for (; j < text.size() && text[j] != '"'; ++j)
        if (text[j] == '\\') ++j, escaped = true;
      if (j >= text.size()) return bad_request("invalid JSON: unterminated string");
      std::string_view s = text.substr(start, j - start);
      i = j;
      size_t k = j + 1;
      while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
      bool is_key = k < text.size() && text[k] == ':';
      if (is_key) {
        id_value_next = !escaped && is_id_key(s);
        i = k;
        continue;
      }
      if (id_value_next && out && !escaped && hex_bytes(s, bytes)) {
        out->append(text.substr(copied, start - copied));
        out->append(base64_encode(bytes));
        copied = j;
      }
      id_value_next = false;
    } else if (!std::isspace(static_cast<unsigned char>(c))) {
      id_value_next = false;
    }
  }
  if (out) out->append(text.substr(copied));
  return std::nullopt;
}

}  // namespace

Status check_json_depth(std::string_view text, size_t max_depth) {
  return scan(text, max_depth, nullptr);
}

Status otlp_json_ids_to_base64(std::string_view text, size_t max_depth, std::string& out) {
  out.clear();
  out.reserve(text.size());
  return scan(text, max_depth, &out);
}

}  // namespace spanprof
