// Always-on invariant checks. A failed check is a bug in this program (never a user error): it
// prints file:line and the message to stderr and aborts.
#pragma once

#include <string>
#include <string_view>

namespace sgl::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, std::string_view msg);
}  // namespace sgl::detail

#define SGL_CHECK(cond, ...)                                                        \
  do {                                                                              \
    if (__builtin_expect(!(cond), 0))                                               \
      ::sgl::detail::check_failed(__FILE__, __LINE__, #cond, std::string_view{__VA_ARGS__}); \
  } while (0)

#ifdef NDEBUG
#define SGL_DCHECK(cond, ...) \
  do {                        \
  } while (0)
#else
#define SGL_DCHECK(cond, ...) SGL_CHECK(cond, __VA_ARGS__)
#endif
