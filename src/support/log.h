// Minimal leveled logging to stderr with an optional per-request prefix. Thread-safe: each line
// is written with one call.
#pragma once

#include <string>
#include <string_view>

namespace sgl {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
// Writes "[time LEVEL] prefix message\n" when level >= log_level().
void log_line(LogLevel level, std::string_view prefix, std::string_view message);

}  // namespace sgl

#define SGL_LOG(level, msg) ::sgl::log_line(::sgl::LogLevel::level, "", (msg))
