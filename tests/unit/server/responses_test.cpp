#include "server/responses.h"

#include <gtest/gtest.h>
#include <cmath>

namespace sgl::server {
namespace {

using runtime::PositionLogprobs;
using runtime::RequestEvent;

TokenText fake_text() {
  return [](int32_t id) { return "t" + std::to_string(id); };
}

PositionLogprobs pos(float lp, int32_t tok, std::vector<std::pair<float, int32_t>> top = {}) {
  PositionLogprobs p;
  p.token = {lp, tok};
  for (auto [l, t] : top) p.top.push_back({l, t});
  return p;
}

ChoiceState two_tokens() {
  ChoiceState c;
  c.rid = "r1";
  RequestEvent a;
  a.kind = RequestEvent::kToken;
  a.token = 5;
  a.text_delta = "t5";
  a.prompt_tokens = 3;
  a.completion_tokens = 1;
  a.cached_tokens = 2;
  a.logprobs = pos(-0.5f, 5, {{-0.5f, 5}, {-1.0f, 6}});
  a.input_logprobs = {pos(NAN, 1), pos(-2.0f, 2, {{-1.5f, 9}}), pos(-3.0f, 3, {{-0.1f, 4}})};
  c.apply(a);
  RequestEvent b;
  b.kind = RequestEvent::kToken;
  b.token = 7;
  b.text_delta = "t7";
  b.prompt_tokens = 3;
  b.completion_tokens = 2;
  b.cached_tokens = 2;
  b.logprobs = pos(-0.25f, 7, {{-0.25f, 7}, {-2.0f, 8}});
  c.apply(b);
  RequestEvent f;
  f.kind = RequestEvent::kFinish;
  f.finish = runtime::FinishReason::by_length(2);
  f.prompt_tokens = 3;
  f.completion_tokens = 2;
  f.cached_tokens = 2;
  f.timings.e2e_s = 0.5;
  c.apply(f);
  return c;
}

TEST(Responses, ChoiceStateAccumulates) {
  ChoiceState c = two_tokens();
  EXPECT_EQ(c.text, "t5t7");
  EXPECT_EQ(c.output_ids, (std::vector<int32_t>{5, 7}));
  EXPECT_EQ(c.output_lp.size(), 2u);
  EXPECT_EQ(c.input_lp.size(), 3u);
  EXPECT_TRUE(c.finished);
  EXPECT_EQ(c.unsent_tokens, 2);
}

TEST(Responses, NativeOutputShape) {
  ChoiceState c = two_tokens();
  runtime::GenerateParams p;
  p.return_logprob = true;
  p.top_logprobs_num = 2;
  p.return_text_in_logprobs = true;
  p.logprob_start_len = 0;
  Json j = native_output(c, p, fake_text(), 9.0);
  EXPECT_EQ(j["text"], "t5t7");
  EXPECT_EQ(j["output_ids"], Json::array({5, 7}));
  const Json& m = j["meta_info"];
  EXPECT_EQ(m["id"], "r1");
  EXPECT_EQ(m["finish_reason"], Json::parse(R"({"type": "length", "length": 2})"));
  EXPECT_EQ(m["prompt_tokens"], 3);
  EXPECT_EQ(m["cached_tokens"], 2);
  EXPECT_DOUBLE_EQ(m["e2e_latency"].get<double>(), 0.5);  // the finish event's time
  ASSERT_EQ(m["input_token_logprobs"].size(), 3u);
  EXPECT_TRUE(m["input_token_logprobs"][0][0].is_null());
  EXPECT_EQ(m["input_token_logprobs"][1], Json::parse(R"([-2.0, 2, "t2"])"));
  EXPECT_TRUE(m["input_top_logprobs"][0].is_null());
  EXPECT_EQ(m["output_top_logprobs"][1][0][1], 7);
  EXPECT_EQ(m["output_token_logprobs"][0][2], "t5");
  EXPECT_FALSE(m.contains("output_token_ids_logprobs"));
  // Without logprobs there are no logprob fields; unfinished choices have a null finish_reason.
  ChoiceState running;
  running.rid = "x";
  Json k = native_output(running, runtime::GenerateParams(), fake_text(), 1.25);
  EXPECT_TRUE(k["meta_info"]["finish_reason"].is_null());
  EXPECT_DOUBLE_EQ(k["meta_info"]["e2e_latency"].get<double>(), 1.25);
  EXPECT_FALSE(k["meta_info"].contains("output_token_logprobs"));
}

TEST(Responses, FinishReasonsAndUsage) {
  ChoiceState c = two_tokens();
  EXPECT_EQ(openai_finish_reason(c), "length");
  EXPECT_TRUE(openai_matched_stop(c).is_null());
  c.finish = runtime::FinishReason::matched_string("END");
  EXPECT_EQ(openai_finish_reason(c), "stop");
  EXPECT_EQ(openai_matched_stop(c), "END");
  c.finish = runtime::FinishReason::matched_token(2);
  EXPECT_EQ(openai_matched_stop(c), 2);
  ChoiceState d = c;
  d.index = 1;  // same prompt (n = 2): its prompt tokens count once
  ChoiceState e = c;
  e.index = 2;
  e.prompt_index = 1;
  Json u = openai_usage({c, d, e});
  EXPECT_EQ(u["prompt_tokens"], 6);
  EXPECT_EQ(u["completion_tokens"], 6);
  EXPECT_EQ(u["total_tokens"], 12);
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 6);
}

TEST(Responses, CompletionAndChatLogprobs) {
  ChoiceState c = two_tokens();
  size_t off = 0;
  Json in = completion_logprobs(c.input_lp, 0, c.input_lp.size(), true, fake_text(), &off);
  EXPECT_TRUE(in["token_logprobs"][0].is_null());
  EXPECT_TRUE(in["top_logprobs"][0].is_null());
  EXPECT_EQ(in["tokens"], Json::array({"t1", "t2", "t3"}));
  EXPECT_EQ(in["text_offset"], Json::array({0, 2, 4}));
  Json out = completion_logprobs(c.output_lp, 1, 2, true, fake_text(), &off);
  EXPECT_EQ(out["text_offset"], Json::array({6}));
  EXPECT_EQ(out["top_logprobs"][0]["t8"], -2.0);
  Json none = completion_logprobs(c.output_lp, 0, 2, false, fake_text(), &off);
  EXPECT_TRUE(none["top_logprobs"].is_null());
  Json chat = chat_logprobs(c.output_lp, 0, 2, fake_text());
  ASSERT_EQ(chat["content"].size(), 2u);
  EXPECT_EQ(chat["content"][0]["token"], "t5");
  EXPECT_EQ(chat["content"][0]["bytes"], Json::array({'t', '5'}));
  EXPECT_EQ(chat["content"][1]["top_logprobs"][1]["token"], "t8");
}

TEST(Responses, SseFramingAndInvalidUtf8) {
  EXPECT_EQ(sse_event(Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
  // A token piece that splits a character must not throw.
  const std::string s = sse_event(Json{{"t", std::string("\xe6\x97")}});
  EXPECT_NE(s.find("\xef\xbf\xbd"), std::string::npos);
}

}  // namespace
}  // namespace sgl::server
