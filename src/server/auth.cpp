#include "server/auth.h"

#include <cctype>

namespace sgl::server {

bool constant_time_equals(std::string_view a, std::string_view b) {
  // Walk the longer length so the time does not reveal a common prefix; fold the length
  // difference into the result.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool authorized(std::string_view authorization, std::string_view api_key) {
  if (api_key.empty()) return true;
  constexpr std::string_view kScheme = "bearer";
  bool scheme_ok = authorization.size() > kScheme.size();
  for (size_t i = 0; scheme_ok && i < kScheme.size(); ++i)
    scheme_ok = std::tolower(static_cast<unsigned char>(authorization[i])) == kScheme[i];
  std::string_view token;
  if (scheme_ok && authorization[kScheme.size()] == ' ') {
    token = authorization.substr(kScheme.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  }
  // Always compare, so a malformed header costs the same as a wrong key.
  const bool eq = constant_time_equals(token, api_key);
  return scheme_ok && eq;
}

bool route_is_public(std::string_view path) { return path == "/health"; }

}  // namespace sgl::server
