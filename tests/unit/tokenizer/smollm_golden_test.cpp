// The default model's tokenizer against llama.cpp's own tokenization of a varied corpus
// (tests/data/tokenizer/smollm2_golden.json, made by make_golden.py with llama-cpp-python).

#include <gtest/gtest.h>

#include <filesystem>
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

const char kModelPath[] = SGL_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const char kGoldenPath[] = SGL_TEST_DATA_DIR "/tokenizer/smollm2_golden.json";

std::string bytes_of(const nlohmann::json& field) {
  if (field.contains("text")) return field["text"].get<std::string>();
  const std::string hex = field["hex"].get<std::string>();
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

std::string printable(const std::string& s) {
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

class SmolLmGolden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kModelPath)) return;
    auto gguf = model::GgufFile::open(kModelPath);
    ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
    auto tok = Tokenizer::from_gguf(*gguf);
    ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
    tokenizer_ = new Tokenizer(std::move(tok).value());
    std::ifstream in(kGoldenPath);
    ASSERT_TRUE(in.good()) << kGoldenPath;
    golden_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete golden_;
    tokenizer_ = nullptr;
    golden_ = nullptr;
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) GTEST_SKIP() << "default model not found: " << kModelPath;
  }

  static Tokenizer* tokenizer_;
  static nlohmann::json* golden_;
};

Tokenizer* SmolLmGolden::tokenizer_ = nullptr;
nlohmann::json* SmolLmGolden::golden_ = nullptr;

TEST_F(SmolLmGolden, Metadata) {
  const Tokenizer& t = *tokenizer_;
  const auto& meta = (*golden_)["meta"];
  EXPECT_EQ(t.vocab_size(), meta["n_tokens"].get<int>());
  EXPECT_EQ(t.kind(), "gpt2");
  EXPECT_EQ(t.pre_tokenizer(), "smollm");
  EXPECT_EQ(t.bos_id(), meta["bos"].get<int>());
  EXPECT_EQ(t.eos_id(), meta["eos"].get<int>());
  EXPECT_EQ(t.eot_id(), meta["eot"].get<int>());
  EXPECT_EQ(t.eog_ids(), meta["eog"].get<std::vector<int32_t>>());
  EXPECT_FALSE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  std::vector<int32_t> control;
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    if (t.is_control(id)) control.push_back(id);
  }
  EXPECT_EQ(control, meta["control"].get<std::vector<int32_t>>());
  for (const auto& [id, field] : meta["pieces"].items()) {
    EXPECT_EQ(t.token_to_piece(std::stoi(id)), bytes_of(field)) << "token " << id;
  }
  ASSERT_TRUE(t.chat_template().has_value());
  EXPECT_NE(t.chat_template()->find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(t.find_token("<|im_start|>"), std::optional<int32_t>(1));
  EXPECT_EQ(t.find_token("no such token"), std::nullopt);
}

TEST_F(SmolLmGolden, EncodeMatchesLlamaCpp) {
  const Tokenizer& t = *tokenizer_;
  int n = 0;
  for (const auto& c : (*golden_)["cases"]) {
    const std::string text = bytes_of(c["input"]);
    EXPECT_EQ(t.encode(text, false, false), c["raw"].get<std::vector<int32_t>>())
        << "raw: \"" << printable(text) << "\"";
    EXPECT_EQ(t.encode(text, true, true), c["special"].get<std::vector<int32_t>>())
        << "special: \"" << printable(text) << "\"";
    ++n;
  }
  EXPECT_GE(n, 80);
}

TEST_F(SmolLmGolden, DecodeMatchesLlamaCpp) {
  const Tokenizer& t = *tokenizer_;
  for (const auto& c : (*golden_)["cases"]) {
    const auto ids = c["special"].get<std::vector<int32_t>>();
    auto decoded = t.decode(ids, /*skip_special=*/false);
    ASSERT_TRUE(decoded.is_ok());
    EXPECT_EQ(*decoded, bytes_of(c["decoded"])) << printable(bytes_of(c["input"]));
    auto skipped = t.decode(ids, /*skip_special=*/true);
    ASSERT_TRUE(skipped.is_ok());
    EXPECT_EQ(*skipped, bytes_of(c["decoded_skip"])) << printable(bytes_of(c["input"]));
  }
}

TEST_F(SmolLmGolden, RoundTripsValidText) {
  const Tokenizer& t = *tokenizer_;
  for (const auto& c : (*golden_)["cases"]) {
    if (!c["input"].contains("text")) continue;
    const std::string text = c["input"]["text"].get<std::string>();
    auto back = t.decode(t.encode(text, false, false), false);
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(*back, text);
  }
}

TEST_F(SmolLmGolden, IncrementalDecoderStreamsTheSameText) {
  const Tokenizer& t = *tokenizer_;
  for (const auto& c : (*golden_)["cases"]) {
    const auto ids = c["special"].get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      IncrementalDecoder dec(t, skip);
      std::string streamed;
      for (int32_t id : ids) {
        std::string chunk;
        ASSERT_TRUE(dec.push(id, chunk).is_ok());
        EXPECT_TRUE(utf8::is_valid(chunk)) << printable(chunk);
        streamed += chunk;
      }
      std::string tail;
      dec.finish(tail);
      streamed += tail;
      EXPECT_EQ(streamed, utf8::sanitize(bytes_of(c[skip ? "decoded_skip" : "decoded"])));
    }
  }
}

TEST_F(SmolLmGolden, DecodeRejectsOutOfRangeIds) {
  const Tokenizer& t = *tokenizer_;
  std::vector<int32_t> ids = {19556, t.vocab_size()};
  auto r = t.decode(ids, false);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange);
  ids = {-1};
  EXPECT_FALSE(t.decode(ids, false).is_ok());
  IncrementalDecoder dec(t, false);
  std::string out;
  EXPECT_EQ(dec.push(-5, out).code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace sgl::tokenizer
