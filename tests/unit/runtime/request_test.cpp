#include "runtime/request.h"

#include <gtest/gtest.h>

#include <functional>

namespace sgl::runtime {
namespace {

constexpr int32_t kVocab = 1000;
constexpr int32_t kContext = 2048;

// Applies `mutate` to default params and expects validate() to fail naming `field`.
void expect_invalid(const std::function<void(GenerateParams&)>& mutate, const std::string& field) {
  GenerateParams p;
  mutate(p);
  Status st = p.validate(kVocab, kContext);
  ASSERT_FALSE(st.is_ok()) << "expected an error naming " << field;
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(field), std::string::npos) << st.message();
}

TEST(GenerateParams, DefaultsMatchSGLangAndValidate) {
  GenerateParams p;
  EXPECT_EQ(p.max_new_tokens, 128);
  EXPECT_EQ(p.min_new_tokens, 0);
  EXPECT_EQ(p.top_k, -1);
  EXPECT_EQ(p.n, 1);
  EXPECT_TRUE(p.skip_special_tokens);
  EXPECT_TRUE(p.spaces_between_special_tokens);
  EXPECT_FALSE(p.no_stop_trim);
  EXPECT_FALSE(p.ignore_eos);
  EXPECT_EQ(p.logprob_start_len, -1);
  EXPECT_EQ(p.top_logprobs_num, 0);
  EXPECT_TRUE(p.validate(kVocab, kContext).is_ok());
  p.max_new_tokens = 0;  // prefill only
  EXPECT_TRUE(p.validate(kVocab, kContext).is_ok());
}

TEST(GenerateParams, EachBadFieldIsNamed) {
  expect_invalid([](auto& p) { p.max_new_tokens = -1; }, "max_new_tokens");
  expect_invalid([](auto& p) { p.max_new_tokens = kContext; }, "max_new_tokens");
  expect_invalid([](auto& p) { p.min_new_tokens = -1; }, "min_new_tokens");
  expect_invalid([](auto& p) { p.min_new_tokens = 200; }, "min_new_tokens");
  expect_invalid([](auto& p) { p.n = 0; }, "n must");
  expect_invalid([](auto& p) { p.temperature = -0.5f; }, "temperature");
  expect_invalid([](auto& p) { p.top_p = 0.0f; }, "top_p");
  expect_invalid([](auto& p) { p.top_p = 1.5f; }, "top_p");
  expect_invalid([](auto& p) { p.top_k = 0; }, "top_k");
  expect_invalid([](auto& p) { p.top_k = -2; }, "top_k");
  expect_invalid([](auto& p) { p.min_p = 1.5f; }, "min_p");
  expect_invalid([](auto& p) { p.frequency_penalty = 2.5f; }, "frequency_penalty");
  expect_invalid([](auto& p) { p.presence_penalty = -3.0f; }, "presence_penalty");
  expect_invalid([](auto& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty");
  expect_invalid([](auto& p) { p.logit_bias = {{kVocab, 1.0f}}; }, "logit_bias");
  expect_invalid([](auto& p) { p.stop = {"ok", ""}; }, "stop");
  expect_invalid([](auto& p) { p.stop = {std::string("\xff")}; }, "stop");
  expect_invalid([](auto& p) { p.stop_token_ids = {5, kVocab}; }, "stop_token_ids");
  expect_invalid([](auto& p) { p.stop_token_ids = {-1}; }, "stop_token_ids");
  expect_invalid(
      [](auto& p) {
        p.regex = "a+";
        p.ebnf = "root ::= \"a\"";
      },
      "regex");
  expect_invalid(
      [](auto& p) {
        p.regex = "a+";
        p.json_schema = "{}";
      },
      "json_schema");
  expect_invalid([](auto& p) { p.json_schema = "{not json"; }, "json_schema");
  expect_invalid([](auto& p) { p.logprob_start_len = -2; }, "logprob_start_len");
  expect_invalid([](auto& p) { p.top_logprobs_num = -1; }, "top_logprobs_num");
  expect_invalid([](auto& p) { p.token_ids_logprob = {kVocab}; }, "token_ids_logprob");
}

TEST(GenerateParams, GoodValuesPass) {
  GenerateParams p;
  p.max_new_tokens = 16;
  p.min_new_tokens = 16;
  p.stop = {"\n\n", "日本"};
  p.stop_token_ids = {0, kVocab - 1};
  p.top_k = 1;
  p.json_schema = R"({"type": "object"})";
  p.top_logprobs_num = 5;
  p.logprob_start_len = 0;
  p.token_ids_logprob = {1, 2};
  EXPECT_TRUE(p.validate(kVocab, kContext).is_ok());
  EXPECT_TRUE(p.validate(kVocab, 0).is_ok());  // unknown context length
  EXPECT_EQ(p.max_stop_len(), std::string("日本").size());
}

TEST(GenerateParams, SamplingCopiesEverySamplerField) {
  GenerateParams p;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  p.top_k = 40;
  p.min_p = 0.05f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = -0.5f;
  p.repetition_penalty = 1.2f;
  p.logit_bias = {{3, -1.5f}};
  p.sampling_seed = 1234;
  SamplingParams s = p.sampling();
  EXPECT_EQ(s.temperature, 0.7f);
  EXPECT_EQ(s.top_p, 0.9f);
  EXPECT_EQ(s.top_k, 40);
  EXPECT_EQ(s.min_p, 0.05f);
  EXPECT_EQ(s.frequency_penalty, 0.5f);
  EXPECT_EQ(s.presence_penalty, -0.5f);
  EXPECT_EQ(s.repetition_penalty, 1.2f);
  ASSERT_EQ(s.logit_bias.size(), 1u);
  EXPECT_EQ(s.logit_bias[0].first, 3);
  EXPECT_EQ(s.logit_bias[0].second, -1.5f);
  ASSERT_TRUE(s.seed.has_value());
  EXPECT_EQ(*s.seed, 1234u);
  EXPECT_FALSE(GenerateParams().sampling().seed.has_value());
}

TEST(FinishReason, JsonShapesAreSGLangs) {
  using nlohmann::json;
  EXPECT_EQ(FinishReason::matched_token(2).to_json(),
            json::parse(R"({"type":"stop","matched":2})"));
  EXPECT_EQ(FinishReason::matched_string("\n\n").to_json(),
            json::parse(R"({"type":"stop","matched":"\n\n"})"));
  EXPECT_EQ(FinishReason().to_json(), json::parse(R"({"type":"stop","matched":null})"));
  EXPECT_EQ(FinishReason::by_length(128).to_json(),
            json::parse(R"({"type":"length","length":128})"));
  EXPECT_EQ(FinishReason::aborted("bad").to_json(),
            json::parse(R"({"type":"abort","message":"bad"})"));
  // The matched token id stays a JSON integer, the matched string a JSON string.
  EXPECT_TRUE(FinishReason::matched_token(0).to_json()["matched"].is_number_integer());
  EXPECT_TRUE(FinishReason::matched_string("0").to_json()["matched"].is_string());
  EXPECT_STREQ(FinishReason::by_length(1).type(), "length");
  EXPECT_STREQ(FinishReason::aborted("x").type(), "abort");
  EXPECT_STREQ(FinishReason::matched_token(1).type(), "stop");
}

}  // namespace
}  // namespace sgl::runtime
