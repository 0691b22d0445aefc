#include "server/api_error.h"

namespace sgl::server {

const char* http_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

Json error_json(const ApiError& e) {
  Json j = Json::object();
  j["object"] = "error";
  j["message"] = e.message;
  j["type"] = http_reason(e.status);
  j["param"] = e.param.empty() ? Json(nullptr) : Json(e.param);
  j["code"] = e.status;
  return j;
}

std::string error_body(const ApiError& e) { return dump_json(error_json(e)); }

ApiError api_error_from_status(const Status& s) {
  ApiError e;
  e.message = s.message();
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnsupported:
    case StatusCode::kOutOfRange:
      e.status = 400;
      break;
    case StatusCode::kNotFound:
      e.status = 404;
      break;
    case StatusCode::kResourceExhausted:
      e.status = 503;
      break;
    default:
      e.status = 500;
      break;
  }
  return e;
}

std::string dump_json(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace sgl::server
