// Shared helpers for the libFuzzer harnesses in tests/fuzz/ (built with SGL_FUZZ=ON, see
// scripts/fuzz.sh). A harness aborts (FUZZ_CHECK) when an invariant of the code under test is
// broken, so libFuzzer records the input as a crash just like a sanitizer report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, msg)                                                            \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s (%s)\n", __FILE__, __LINE__, \
                   #cond, std::string(msg).c_str());                                     \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace sgl::fuzz {

// The default model (for the tokenizer and chat-template harnesses): $SGL_FUZZ_MODEL, else
// models/SmolLM2-135M-Instruct.Q4_1.gguf in the source tree.
inline std::string default_model_path() {
  if (const char* p = std::getenv("SGL_FUZZ_MODEL")) return p;
  return std::string(SGL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// Splits fuzz input into consecutive pieces: take() returns the bytes up to the next
// separator "\n#--\n" (or the rest). Lets one input carry e.g. a template and a message list.
class Pieces {
 public:
  Pieces(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}
  std::string_view take() {
    static constexpr std::string_view kSep = "\n#--\n";
    size_t at = rest_.find(kSep);
    std::string_view piece = rest_.substr(0, at);
    rest_ = at == std::string_view::npos ? std::string_view() : rest_.substr(at + kSep.size());
    return piece;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

}  // namespace sgl::fuzz
