#include "server/protocol.h"

#include <gtest/gtest.h>

#include "server/json_fields.h"

namespace sgl::server {
namespace {

Json J(const char* s) { return Json::parse(s); }

TEST(ParseGenerate, SingleTextWithDefaults) {
  auto r = parse_generate_request(J(R"({"text": "hi"})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(*r->prompts[0].text, "hi");
  EXPECT_FALSE(r->batch);
  EXPECT_FALSE(r->stream);
  EXPECT_EQ(r->params[0].max_new_tokens, 128);
  EXPECT_FLOAT_EQ(r->params[0].temperature, 1.0f);
  EXPECT_EQ(r->params[0].logprob_start_len, -1);
  EXPECT_EQ(r->rids[0], "");
}

TEST(ParseGenerate, SamplingParamsAndLogprobOptions) {
  auto r = parse_generate_request(J(R"({"text": "x", "rid": "abc", "stream": true,
    "return_logprob": true, "logprob_start_len": 0, "top_logprobs_num": 5,
    "token_ids_logprob": [1, 2], "return_text_in_logprobs": true,
    "sampling_params": {"max_new_tokens": 7.0, "temperature": 0, "top_k": 20, "stop": "END",
                        "stop_token_ids": [3], "n": 2, "logit_bias": {"5": -1.5},
                        "sampling_seed": 9, "ignore_eos": true, "unknown_field": 1}})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& p = r->params[0];
  EXPECT_EQ(p.max_new_tokens, 7);
  EXPECT_EQ(p.top_k, 20);
  EXPECT_EQ(p.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(p.stop_token_ids, std::vector<int32_t>{3});
  EXPECT_EQ(p.n, 2);
  ASSERT_EQ(p.logit_bias.size(), 1u);
  EXPECT_EQ(p.logit_bias[0].first, 5);
  EXPECT_EQ(*p.sampling_seed, 9u);
  EXPECT_TRUE(p.ignore_eos && p.return_logprob && p.return_text_in_logprobs);
  EXPECT_EQ(p.logprob_start_len, 0);
  EXPECT_EQ(p.top_logprobs_num, 5);
  EXPECT_EQ(p.token_ids_logprob, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(r->rids[0], "abc");
  EXPECT_TRUE(r->stream);
  EXPECT_EQ(r->choices(), 2);
}

TEST(ParseGenerate, BatchesAndPerPromptLists) {
  auto r = parse_generate_request(J(R"({"input_ids": [[1, 2], [3]],
    "sampling_params": [{"max_new_tokens": 1}, {"max_new_tokens": 2}],
    "return_logprob": [true, false], "rid": ["a", "b"]})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->batch);
  ASSERT_EQ(r->prompts.size(), 2u);
  EXPECT_EQ(r->prompts[0].ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(r->params[1].max_new_tokens, 2);
  EXPECT_TRUE(r->params[0].return_logprob);
  EXPECT_FALSE(r->params[1].return_logprob);
  EXPECT_EQ(r->rids[1], "b");
  auto t = parse_generate_request(J(R"({"text": ["a", "b", "c"]})"));
  ASSERT_TRUE(t.is_ok());
  EXPECT_TRUE(t->batch);
  EXPECT_EQ(t->params.size(), 3u);
}

void expect_error(const char* body, const char* needle,
                  StatusCode code = StatusCode::kInvalidArgument) {
  auto r = parse_generate_request(J(body));
  ASSERT_FALSE(r.is_ok()) << body;
  EXPECT_EQ(r.status().code(), code) << body;
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << body << " -> " << r.status().message();
}

TEST(ParseGenerate, ErrorsNameTheField) {
  expect_error(R"({})", "text or input_ids");
  expect_error(R"({"text": "a", "input_ids": [1]})", "either text or input_ids");
  expect_error(R"({"text": 3})", "text: expected a string");
  expect_error(R"({"text": ["a", 2]})", "text[1]");
  expect_error(R"({"text": []})", "empty");
  expect_error(R"({"input_ids": [1, "x"]})", "input_ids[1]");
  expect_error(R"({"input_ids": [[1], 2]})", "input_ids[1]");
  expect_error(R"({"text": "a", "sampling_params": {"temperature": "hot"}})",
               "sampling_params.temperature: expected a number, got string");
  expect_error(R"({"text": "a", "sampling_params": {"max_new_tokens": 1.5}})",
               "sampling_params.max_new_tokens");
  expect_error(R"({"text": "a", "sampling_params": {"ignore_eos": 1}})", "ignore_eos");
  expect_error(R"({"text": "a", "sampling_params": {"stop": [1]}})", "sampling_params.stop[0]");
  expect_error(R"({"text": "a", "sampling_params": {"logit_bias": {"x": 1}}})", "logit_bias");
  expect_error(R"({"text": "a", "sampling_params": [{}, {}]})", "one object per prompt");
  expect_error(R"({"text": "a", "sampling_params": 5})", "sampling_params: expected an object");
  expect_error(R"({"text": "a", "sampling_params": {"json_schema": {}}})", "json_schema");
  expect_error(R"({"text": "a", "return_logprob": "yes"})", "return_logprob");
  expect_error(R"({"text": ["a", "b"], "return_logprob": [true]})", "one value per prompt");
  expect_error(R"({"text": ["a", "b"], "rid": "x"})", "rid");
  expect_error(R"({"text": "a", "sampling_params": {"n": 0}})", "n must be at least 1");
  expect_error(R"({"text": "a", "sampling_params": {"n": 5000}})", "at most");
  expect_error(R"({"text": "a", "image_data": "x.png"})", "image_data", StatusCode::kUnsupported);
  expect_error(R"({"text": "a", "stream": "yes"})", "stream");
  expect_error(R"({"text": "a", "sampling_params": {"max_new_tokens": 99999999999}})",
               "out of range");
}

TEST(ParseCompletion, PromptsAndOptions) {
  auto r = parse_completion_request(J(R"({"model": "m", "prompt": ["a", "b"], "max_tokens": 3,
    "n": 2, "logprobs": 2, "echo": true, "stop": ["x"], "seed": 4, "top_k": 5,
    "stream": true, "stream_options": {"include_usage": true}})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->prompts.size(), 2u);
  EXPECT_EQ(*r->common.max_tokens, 3);
  EXPECT_EQ(r->common.params.n, 2);
  EXPECT_EQ(r->logprobs, 2);
  EXPECT_TRUE(r->echo && r->common.stream && r->common.include_usage);
  EXPECT_EQ(*r->common.params.sampling_seed, 4u);
  EXPECT_EQ(r->common.params.top_k, 5);
  auto ids = parse_completion_request(J(R"({"prompt": [1, 2, 3]})"));
  ASSERT_TRUE(ids.is_ok());
  EXPECT_EQ(ids->prompts[0].ids.size(), 3u);
  EXPECT_FALSE(ids->common.max_tokens.has_value());
  auto lists = parse_completion_request(J(R"({"prompt": [[1], [2, 3]]})"));
  ASSERT_TRUE(lists.is_ok());
  EXPECT_EQ(lists->prompts.size(), 2u);
}

TEST(ParseCompletion, Errors) {
  EXPECT_FALSE(parse_completion_request(J(R"({})")).is_ok());
  EXPECT_FALSE(parse_completion_request(J(R"({"prompt": 5})")).is_ok());
  EXPECT_FALSE(parse_completion_request(J(R"({"prompt": "a", "logprobs": 50})")).is_ok());
  EXPECT_FALSE(parse_completion_request(J(R"({"prompt": "a", "max_tokens": -1})")).is_ok());
  // Constraints pass through to the engine (which compiles or refuses them).
  auto rx = parse_completion_request(J(R"({"prompt": "a", "regex": "a+"})"));
  ASSERT_TRUE(rx.is_ok());
  EXPECT_EQ(*rx->common.params.regex, "a+");
  auto js = parse_completion_request(J(R"({"prompt": "a", "json_schema": {"type": "string"}})"));
  ASSERT_TRUE(js.is_ok());
  EXPECT_EQ(Json::parse(*js->common.params.json_schema), J(R"({"type": "string"})"));
  EXPECT_FALSE(parse_completion_request(J(R"({"prompt": "a", "json_schema": "{bad"})")).is_ok());
  EXPECT_FALSE(parse_completion_request(J(R"({"prompt": "a", "json_schema": 3})")).is_ok());
  auto two = parse_completion_request(J(R"({"prompt": "a", "regex": "a", "ebnf": "b"})"));
  ASSERT_FALSE(two.is_ok());
  EXPECT_EQ(two.status().code(), StatusCode::kInvalidArgument);
}

TEST(ParseChat, MessagesAndResponseFormat) {
  auto r = parse_chat_request(J(R"({"messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
    "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 2,
    "response_format": {"type": "text"}, "chat_template_kwargs": {"x": 1}})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->messages[1]["content"], "ab");
  EXPECT_EQ(*r->common.max_tokens, 9);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 2);
  EXPECT_EQ(r->template_kwargs["x"], 1);

  auto img = parse_chat_request(J(R"({"messages": [{"role": "user", "content":
      [{"type": "image_url", "image_url": {"url": "x"}}]}]})"));
  ASSERT_FALSE(img.is_ok());
  EXPECT_EQ(img.status().code(), StatusCode::kUnsupported);
  const std::pair<const char*, const char*> formats[] = {
      {R"({"type": "json_object"})", R"({"type": "object"})"},
      {R"({"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "integer"}}})",
       R"({"type": "integer"})"}};
  for (auto [rf, schema] : formats) {
    Json body = J(R"({"messages": [{"role": "user", "content": "x"}]})");
    body["response_format"] = J(rf);
    auto s = parse_chat_request(body);
    ASSERT_TRUE(s.is_ok()) << rf;
    EXPECT_EQ(Json::parse(*s->common.params.json_schema), J(schema)) << rf;
    body["regex"] = "a";
    EXPECT_EQ(parse_chat_request(body).status().code(), StatusCode::kInvalidArgument) << rf;
  }
  Json bad =
      J(R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}})");
  EXPECT_EQ(parse_chat_request(bad).status().code(), StatusCode::kInvalidArgument);
  bad = J(
      R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}})");
  EXPECT_EQ(parse_chat_request(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(parse_chat_request(J(R"({"messages": []})")).is_ok());
  EXPECT_FALSE(parse_chat_request(J(R"({"messages": [{"content": "x"}]})")).is_ok());
  EXPECT_FALSE(parse_chat_request(J(R"({"messages": [{"role": "user", "content": 5}]})")).is_ok());
  EXPECT_FALSE(parse_chat_request(
                   J(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})"))
                   .is_ok());
}

TEST(ParseSmallRoutes, TokenizeDetokenizeAbort) {
  auto t = parse_tokenize_request(J(R"({"text": ["a", "b"], "add_special_tokens": false})"));
  ASSERT_TRUE(t.is_ok());
  EXPECT_TRUE(t->batch);
  EXPECT_FALSE(t->add_special_tokens);
  auto d = parse_detokenize_request(J(R"({"tokens": [1, 2]})"));
  ASSERT_TRUE(d.is_ok());
  EXPECT_FALSE(d->batch);
  EXPECT_EQ(d->ids[0].size(), 2u);
  EXPECT_FALSE(parse_detokenize_request(J(R"({"tokens": "x"})")).is_ok());
  EXPECT_TRUE(parse_abort_request(J(R"({"rid": "x"})")).is_ok());
  EXPECT_TRUE(parse_abort_request(J(R"({"abort_all": true})")).is_ok());
  EXPECT_FALSE(parse_abort_request(J(R"({})")).is_ok());
}

TEST(JsonBody, ParseErrorsAndLimits) {
  EXPECT_TRUE(parse_json_object(R"({"a": 1})").is_ok());
  auto bad = parse_json_object("{\"a\": ");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("invalid JSON"), std::string::npos);
  auto utf8 = parse_json_object("{\"text\": \"\xff\"}");
  ASSERT_FALSE(utf8.is_ok());
  EXPECT_NE(utf8.status().message().find("UTF-8"), std::string::npos);
  EXPECT_FALSE(parse_json_object("[1, 2]").is_ok());
  EXPECT_FALSE(parse_json_object(std::string(100000, '[')).is_ok());
  EXPECT_TRUE(json_depth_ok(R"({"a": "[[[[[[[[[[[[[["})", 3));
  EXPECT_FALSE(json_depth_ok("[[[[", 3));
}

TEST(JsonFields, IntegersAndNulls) {
  Json j = J(R"({"a": 3.0, "b": null, "c": 1e20, "d": -1})");
  FieldReader r(j, "p");
  int32_t a = 0, b = 42;
  EXPECT_TRUE(r.get_int("a", &a).is_ok());
  EXPECT_EQ(a, 3);
  EXPECT_TRUE(r.get_int("b", &b).is_ok());
  EXPECT_EQ(b, 42);  // null keeps the default
  EXPECT_FALSE(r.get_int("c", &a).is_ok());
  std::optional<uint64_t> u;
  Status s = r.get_uint64("d", &u);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("p.d"), std::string::npos);
}

}  // namespace
}  // namespace sgl::server
