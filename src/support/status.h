// Status and Result<T>: the error currency across module boundaries for anything a user can
// trigger (bad model files, bad text, bad requests). Internal invariants use SGL_CHECK instead.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "support/check.h"

namespace sgl {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input is malformed or out of range
  kNotFound,         // a named thing (file, tensor, key, token) does not exist
  kOutOfRange,       // an offset/size/count points outside its container
  kUnsupported,      // well-formed but not something we implement (e.g. an IQ quant type)
  kIoError,          // the operating system refused (open, mmap, read)
  kResourceExhausted,
  kInternal,
};

const char* status_code_name(StatusCode code);

// A value-type error: a code plus a human-readable message naming what was wrong.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code name>: <message>", or "ok".
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status not_found(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status out_of_range(std::string m) {
  return Status(StatusCode::kOutOfRange, std::move(m));
}
inline Status unsupported(std::string m) {
  return Status(StatusCode::kUnsupported, std::move(m));
}
inline Status io_error(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
inline Status internal_error(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}

// Quotes untrusted text (a name read from a file or a request) for an error message: wrapped in
// single quotes, control bytes escaped as \xNN, cut after max_bytes with "...".
std::string quote_for_message(std::string_view s, size_t max_bytes = 200);

// Either a T or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    SGL_CHECK(!std::get<Status>(v_).is_ok(), "Result constructed from an ok Status");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & {
    SGL_CHECK(is_ok(), "Result::value() on error: " + std::get<Status>(v_).to_string());
    return std::get<T>(v_);
  }
  const T& value() const& {
    SGL_CHECK(is_ok(), "Result::value() on error: " + std::get<Status>(v_).to_string());
    return std::get<T>(v_);
  }
  T&& value() && {
    SGL_CHECK(is_ok(), "Result::value() on error: " + std::get<Status>(v_).to_string());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sgl

// Early-return helpers for functions returning Status or Result<T>.
#define SGL_RETURN_IF_ERROR(expr)            \
  do {                                       \
    ::sgl::Status sgl_status_ = (expr);      \
    if (!sgl_status_.is_ok()) return sgl_status_; \
  } while (0)

#define SGL_CONCAT_INNER_(a, b) a##b
#define SGL_CONCAT_(a, b) SGL_CONCAT_INNER_(a, b)
#define SGL_ASSIGN_OR_RETURN(lhs, expr) \
  SGL_ASSIGN_OR_RETURN_IMPL_(SGL_CONCAT_(sgl_result_, __LINE__), lhs, expr)
#define SGL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.is_ok()) return tmp.status();           \
  lhs = std::move(tmp).value()
