// Tokenizer::from_hf_files against Hugging Face `tokenizers` on small synthetic tokenizers, one
// per supported configuration (tests/data/tokenizer/hf_*/, made by make_hf_golden.py).

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/utf8.h"
#include "tokenizer/tokenizer.h"

namespace sgl::tokenizer {
namespace {

std::string dir_of(const std::string& name) {
  return std::string(SGL_TEST_DATA_DIR) + "/tokenizer/hf_" + name;
}

nlohmann::json load_golden(const std::string& name) {
  std::ifstream in(dir_of(name) + "/golden.json");
  EXPECT_TRUE(in.good()) << name;
  return nlohmann::json::parse(in);
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

struct Expect {
  const char* name;
  const char* kind;
  const char* pre;
  bool add_bos;
};

class HfGolden : public ::testing::TestWithParam<Expect> {};

TEST_P(HfGolden, MatchesHuggingFaceTokenizers) {
  const Expect& e = GetParam();
  auto tok = Tokenizer::from_hf_files(dir_of(e.name));
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  const Tokenizer& t = *tok;
  const nlohmann::json golden = load_golden(e.name);
  EXPECT_EQ(t.vocab_size(), golden["meta"]["vocab_size"].get<int>());
  EXPECT_EQ(t.kind(), e.kind);
  EXPECT_EQ(t.pre_tokenizer(), e.pre);
  EXPECT_EQ(t.add_bos(), e.add_bos);
  int n = 0;
  for (const auto& c : golden["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto special = c["special"].get<std::vector<int32_t>>();
    EXPECT_EQ(t.encode(text, false, true), special) << "special: \"" << escaped(text) << "\"";
    EXPECT_EQ(t.encode(text, false, false), c["raw"].get<std::vector<int32_t>>())
        << "raw: \"" << escaped(text) << "\"";
    EXPECT_EQ(t.encode(text, true, true), c["with_bos"].get<std::vector<int32_t>>())
        << "with_bos: \"" << escaped(text) << "\"";
    auto decoded = t.decode(special, false);
    ASSERT_TRUE(decoded.is_ok());
    EXPECT_EQ(utf8::sanitize(*decoded), c["decoded"].get<std::string>()) << escaped(text);
    auto skipped = t.decode(special, true);
    ASSERT_TRUE(skipped.is_ok());
    EXPECT_EQ(utf8::sanitize(*skipped), c["decoded_skip"].get<std::string>()) << escaped(text);
    ++n;
  }
  EXPECT_GE(n, 100);
}

INSTANTIATE_TEST_SUITE_P(Configurations, HfGolden,
                         ::testing::Values(Expect{"llama3", "gpt2", "llama3", true},
                                           Expect{"qwen2", "gpt2", "qwen2", false},
                                           Expect{"starcoder", "gpt2", "smollm", false},
                                           Expect{"gpt2", "gpt2", "gpt2", false},
                                           Expect{"spm_llama2", "llama", "", true},
                                           Expect{"spm_metaspace", "llama", "", true}),
                         [](const ::testing::TestParamInfo<Expect>& info) {
                           return std::string(info.param.name);
                         });

TEST(HfLoader, ReadsSpecialTokensAndTemplate) {
  auto tok = Tokenizer::from_hf_files(dir_of("llama3"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->token_type(1), TokenType::kControl);
  auto user = tok->find_token("<user_tag>");
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(tok->token_type(*user), TokenType::kUserDefined);
  // User-defined tokens are matched even without parse_special, and kept by skip_special.
  auto ids = tok->encode("x<user_tag>y", false, false);
  EXPECT_NE(std::find(ids.begin(), ids.end(), *user), ids.end());
  auto text = tok->decode(ids, /*skip_special=*/true);
  ASSERT_TRUE(text.is_ok());
  EXPECT_EQ(*text, "x<user_tag>y");
  ASSERT_TRUE(tok->chat_template().has_value());
  EXPECT_NE(tok->chat_template()->find("messages"), std::string::npos);
  EXPECT_EQ(tok->eog_ids(), (std::vector<int32_t>{0, 2}));  // <|endoftext|>, <|im_end|>
}

TEST(HfLoader, SpmByteFallbackTokens) {
  auto tok = Tokenizer::from_hf_files(dir_of("spm_llama2"));
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  auto nl = tok->find_token("<0x0A>");
  ASSERT_TRUE(nl.has_value());
  EXPECT_EQ(tok->token_type(*nl), TokenType::kByte);
  EXPECT_EQ(tok->token_to_piece(*nl), "\n");
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_EQ(tok->token_type(0), TokenType::kUnknown);
  // A character absent from the vocabulary becomes its UTF-8 bytes.
  auto ids = tok->encode("\xF0\x9F\xA6\x99", false, false);  // U+1F999
  auto back = tok->decode(ids, false);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, "\xF0\x9F\xA6\x99");
}

}  // namespace
}  // namespace sgl::tokenizer
