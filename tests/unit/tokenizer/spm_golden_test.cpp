// The SentencePiece ("llama") engine against llama.cpp on a tiny GGUF vocabulary
// (tests/data/tokenizer/spm_tiny.gguf and spm_tiny_golden.json, made by make_spm_gguf.py).

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "support/utf8.h"
#include "tokenizer/tokenizer.h"

namespace sgl::tokenizer {
namespace {

std::string bytes_of(const nlohmann::json& field) {
  if (field.contains("text")) return field["text"].get<std::string>();
  const std::string hex = field["hex"].get<std::string>();
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

std::string escaped(const std::string& s) {
  std::ostringstream o;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      o << c;
    } else {
      o << "\\x" << std::hex << static_cast<int>(c) << std::dec;
    }
  }
  return o.str();
}

TEST(SpmGolden, MatchesLlamaCpp) {
  auto gguf = model::GgufFile::open(SGL_TEST_DATA_DIR "/tokenizer/spm_tiny.gguf");
  ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
  auto tok = Tokenizer::from_gguf(*gguf);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  const Tokenizer& t = *tok;
  std::ifstream in(SGL_TEST_DATA_DIR "/tokenizer/spm_tiny_golden.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json golden = nlohmann::json::parse(in);
  const auto& meta = golden["meta"];
  EXPECT_EQ(t.kind(), "llama");
  EXPECT_EQ(t.vocab_size(), meta["n_tokens"].get<int>());
  EXPECT_EQ(t.bos_id(), meta["bos"].get<int>());
  EXPECT_EQ(t.eos_id(), meta["eos"].get<int>());
  EXPECT_EQ(t.eog_ids(), meta["eog"].get<std::vector<int32_t>>());
  EXPECT_TRUE(t.add_bos());
  int n = 0;
  for (const auto& c : golden["cases"]) {
    const std::string text = bytes_of(c["input"]);
    const auto raw = c["raw"].get<std::vector<int32_t>>();
    const auto special = c["special"].get<std::vector<int32_t>>();
    EXPECT_EQ(t.encode(text, false, false), raw) << "raw: \"" << escaped(text) << "\"";
    EXPECT_EQ(t.encode(text, true, true), special) << "special: \"" << escaped(text) << "\"";
    auto d = t.decode(special, false);
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(*d, bytes_of(c["decoded"])) << escaped(text);
    auto ds = t.decode(special, true);
    ASSERT_TRUE(ds.is_ok());
    EXPECT_EQ(*ds, bytes_of(c["decoded_skip"])) << escaped(text);
    auto dr = t.decode(raw, true);
    ASSERT_TRUE(dr.is_ok());
    EXPECT_EQ(*dr, bytes_of(c["decoded_raw"])) << escaped(text);
    // Streaming gives the same text.
    IncrementalDecoder dec(t, true);
    std::string streamed;
    for (int32_t id : raw) ASSERT_TRUE(dec.push(id, streamed).is_ok());
    dec.finish(streamed);
    EXPECT_EQ(streamed, utf8::sanitize(bytes_of(c["decoded_raw"]))) << escaped(text);
    ++n;
  }
  EXPECT_GE(n, 100);
}

}  // namespace
}  // namespace sgl::tokenizer
