// Errors as the HTTP API reports them: a status code plus SGLang's OpenAI-style error body
//   {"object": "error", "message": "...", "type": "Bad Request", "param": null, "code": 400}
// (`type` is the HTTP reason phrase, as SGLang's create_error_response writes it). The `openai`
// package maps the status code to its exception types (400 BadRequestError, 401
// AuthenticationError, 404 NotFoundError, ...).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "support/status.h"

namespace sgl::server {

using Json = nlohmann::ordered_json;

struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the offending field, "" = null
};

// "Bad Request", "Not Found", ... ("Error" for codes we never send).
const char* http_reason(int status);

// The error body above, serialized.
std::string error_body(const ApiError& e);
Json error_json(const ApiError& e);

// Maps an engine / parser Status to an HTTP error: invalid argument, unsupported, not found and
// out of range are the client's fault (400 / 404); exhausted resources are 503; the rest 500.
ApiError api_error_from_status(const Status& s);

// Serializes compactly; invalid UTF-8 (possible in token texts) is replaced by U+FFFD instead of
// throwing.
std::string dump_json(const Json& j);

}  // namespace sgl::server
