// API-key checks for --api-key: every route but /health requires "Authorization: Bearer <key>".
#pragma once

#include <string_view>

namespace sgl::server {

// Compares in time that depends only on the lengths, not on where the strings differ.
bool constant_time_equals(std::string_view a, std::string_view b);

// True iff `authorization` is "Bearer <api_key>" (scheme case-insensitive, one or more spaces).
// An empty api_key means no key is configured: always true.
bool authorized(std::string_view authorization, std::string_view api_key);

// Routes reachable without the key.
bool route_is_public(std::string_view path);

}  // namespace sgl::server
