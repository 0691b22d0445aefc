// Inputs found by the fuzz harness tests/fuzz/fuzz_tokenizer.cpp, checked against llama.cpp
// (llama-cpp-python 0.3.36, vocab_only, tokenize(add_bos=False, special=False) and detokenize on
// SmolLM2-135M-Instruct.Q4_1.gguf). The harness first assumed that valid UTF-8 round-trips exactly;
// llama.cpp drops the control bytes 0x04, 0x06, 0x13, 0x14, 0x16 and 0x1d with this vocabulary, and
// so must we. Skipped without the default model.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

namespace sgl::tokenizer {
namespace {

const char kModelPath[] = SGL_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

const Tokenizer* smollm() {
  static const Tokenizer* tok = []() -> const Tokenizer* {
    if (!std::filesystem::exists(kModelPath)) return nullptr;
    auto gguf = model::GgufFile::open(kModelPath);
    if (!gguf.is_ok()) return nullptr;
    auto t = Tokenizer::from_gguf(*gguf);
    if (!t.is_ok()) return nullptr;
    return new Tokenizer(std::move(t).value());
  }();
  return tok;
}

TEST(TokenizerFuzzRegression, CrashInputMatchesLlamaCpp) {
  const Tokenizer* tok = smollm();
  if (!tok) GTEST_SKIP() << "default model not found";
  // build-fuzz/artifacts/fuzz_tokenizer/crash-0932f7e5bcd25b9cd140789cb64746425590780d without
  // its flag byte.
  const std::string text("\x00\x00\x00\x00\x00\x00\x00\x06" "a\xe2\x86\x91\x00\x0f\x00 ", 16);
  const std::vector<int32_t> want = {190, 190, 190, 190, 190, 190, 190,
                                     81,  23227, 235, 190, 203, 190, 216};
  const std::vector<int32_t> ids = tok->encode(text, false, false);
  EXPECT_EQ(ids, want);
  auto back = tok->decode(ids, false);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, std::string("\x00\x00\x00\x00\x00\x00\x00" "a\xe2\x86\x91\x00\x0f\x00 ", 15));
}

TEST(TokenizerFuzzRegression, ControlBytesWithoutATokenAreDroppedAsLlamaCppDoes) {
  const Tokenizer* tok = smollm();
  if (!tok) GTEST_SKIP() << "default model not found";
  for (char c : {'\x04', '\x06', '\x13', '\x14', '\x16', '\x1d'}) {
    const std::string text = std::string("a") + c + "b";
    EXPECT_EQ(tok->encode(text, false, false), (std::vector<int32_t>{81, 82})) << int(c);
  }
}

}  // namespace
}  // namespace sgl::tokenizer
