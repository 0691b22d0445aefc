#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/server_args.h"

namespace sgl::server {
namespace {

TEST(Auth, ConstantTimeEquals) {
  EXPECT_TRUE(constant_time_equals("abc", "abc"));
  EXPECT_FALSE(constant_time_equals("abc", "abd"));
  EXPECT_FALSE(constant_time_equals("abc", "abcd"));
  EXPECT_FALSE(constant_time_equals("", "a"));
  EXPECT_TRUE(constant_time_equals("", ""));
}

TEST(Auth, BearerHeader) {
  EXPECT_TRUE(authorized("", ""));  // no key configured
  EXPECT_TRUE(authorized("Bearer k1", "k1"));
  EXPECT_TRUE(authorized("bearer  k1 ", "k1"));
  EXPECT_FALSE(authorized("Bearer k2", "k1"));
  EXPECT_FALSE(authorized("k1", "k1"));
  EXPECT_FALSE(authorized("Basic k1", "k1"));
  EXPECT_FALSE(authorized("", "k1"));
  EXPECT_FALSE(authorized("Bearer ", "k1"));
  EXPECT_TRUE(route_is_public("/health"));
  EXPECT_FALSE(route_is_public("/health_generate"));
  EXPECT_FALSE(route_is_public("/v1/models"));
}

TEST(ApiError, BodyShape) {
  Json j = Json::parse(error_body(ApiError{400, "bad thing", ""}));
  EXPECT_EQ(j, Json::parse(R"({"object": "error", "message": "bad thing", "type": "Bad Request",
                               "param": null, "code": 400})"));
  EXPECT_EQ(Json::parse(error_body(ApiError{404, "x", "model"}))["param"], "model");
  EXPECT_EQ(api_error_from_status(invalid_argument("x")).status, 400);
  EXPECT_EQ(api_error_from_status(unsupported("x")).status, 400);
  EXPECT_EQ(api_error_from_status(not_found("x")).status, 404);
  EXPECT_EQ(api_error_from_status(Status(StatusCode::kResourceExhausted, "x")).status, 503);
  EXPECT_EQ(api_error_from_status(internal_error("x")).status, 500);
  EXPECT_STREQ(http_reason(413), "Payload Too Large");
  EXPECT_STREQ(http_reason(401), "Unauthorized");
}

TEST(Metrics, HistogramIsCumulative) {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.5, 2);
  h.observe(7.0);
  std::string out;
  h.render(out, "x_seconds", "help text", "m=\"a\"");
  EXPECT_NE(out.find("# TYPE x_seconds histogram\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{m=\"a\",le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{m=\"a\",le=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{m=\"a\",le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_count{m=\"a\"} 4\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_sum{m=\"a\"} 8.05\n"), std::string::npos);
  EXPECT_EQ(h.count(), 4);
}

TEST(Metrics, ServerExposition) {
  ServerMetrics m("my \"model\"");
  m.on_finished(10, 4, 3, 0.5, false);
  m.on_finished(5, 0, 0, 0.1, true);
  m.on_first_token(0.02);
  m.on_tokens(0.3, 3);
  runtime::EngineStats s;
  s.running = 2;
  s.waiting = 1;
  s.kv_used = 50;
  s.kv_capacity = 200;
  s.prompt_tokens = 10;
  s.cache_hit_tokens = 4;
  const std::string t = m.render(s);
  const std::string lb = "{model_name=\"my \\\"model\\\"\"}";
  EXPECT_NE(t.find("sglang:num_requests_total" + lb + " 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("sglang:num_aborted_requests_total" + lb + " 1\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:prompt_tokens_total" + lb + " 15\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:generation_tokens_total" + lb + " 4\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:num_running_reqs" + lb + " 2\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:num_queue_reqs" + lb + " 1\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:token_usage" + lb + " 0.25\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:cache_hit_rate" + lb + " 0.4\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:inter_token_latency_seconds_count" + lb + " 3\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:time_to_first_token_seconds_count" + lb + " 1\n"), std::string::npos);
  // Every sample line is "name{labels} value".
  for (size_t p = 0; p < t.size();) {
    size_t e = t.find('\n', p);
    std::string line = t.substr(p, e - p);
    p = e + 1;
    if (line.empty() || line[0] == '#') continue;
    EXPECT_EQ(line.rfind("sglang:", 0), 0u) << line;
    EXPECT_NE(line.find("} "), std::string::npos) << line;
  }
}

TEST(ServerArgs, DefaultsAndFlags) {
  bool help = false;
  auto a = parse_server_args({"--model-path", "m.gguf"}, &help);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 30000);
  EXPECT_EQ(a->model_name(), "m.gguf");
  EXPECT_EQ(a->stream_interval, 1);
  auto b = parse_server_args({"--model-path=m",
                              "--port",
                              "8000",
                              "--api-key",
                              "k",
                              "--served-model-name",
                              "smol",
                              "--context-length",
                              "1024",
                              "--max-running-requests",
                              "8",
                              "--max-total-tokens",
                              "4096",
                              "--chunked-prefill-size",
                              "128",
                              "--schedule-policy",
                              "lpm",
                              "--disable-radix-cache",
                              "--disable-overlap-schedule",
                              "--stream-interval",
                              "4",
                              "--enable-metrics",
                              "--log-requests",
                              "--threads",
                              "2",
                              "--random-seed",
                              "7",
                              "--chat-template",
                              "t.jinja"},
                             &help);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(b->port, 8000);
  EXPECT_EQ(b->model_name(), "smol");
  EXPECT_TRUE(b->disable_radix_cache && b->enable_metrics && b->log_requests);
  EXPECT_EQ(b->random_seed, 7);
  auto o = engine_options(*b);
  ASSERT_TRUE(o.is_ok());
  EXPECT_EQ(o->schedule_policy, runtime::SchedulePolicy::kLpm);
  EXPECT_EQ(o->max_total_tokens, 4096);
  EXPECT_EQ(o->chunked_prefill_size, 128);
  EXPECT_EQ(o->threads, 2);
  EXPECT_TRUE(o->disable_overlap_schedule);
  Json j = server_args_json(*b);
  EXPECT_EQ(j["disable_overlap_schedule"], true);
  EXPECT_EQ(j["api_key"], "<set>");  // never echoed
  EXPECT_EQ(j["served_model_name"], "smol");
  EXPECT_EQ(j["tp_size"], 1);
  EXPECT_EQ(o->tp_size, 1);
}

TEST(ServerArgs, TpSize) {
  bool help = false;
  auto a = parse_server_args({"--model-path", "m", "--device", "cuda", "--tp-size", "2"}, &help);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->tp_size, 2);
  auto o = engine_options(*a);
  ASSERT_TRUE(o.is_ok());
  EXPECT_EQ(o->tp_size, 2);
  EXPECT_EQ(server_args_json(*a)["tp_size"], 2);
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--tp-size", "0"}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--tp-size", "x"}, &help).is_ok());
}

TEST(ServerArgs, KvCacheDtype) {
  bool help = false;
  for (const char* t : {"auto", "bf16", "fp8_e4m3", "fp8_e5m2"}) {
    auto a = parse_server_args({"--model-path", "m", "--kv-cache-dtype", t}, &help);
    ASSERT_TRUE(a.is_ok()) << t << ": " << a.status().to_string();
    EXPECT_EQ(a->kv_cache_dtype, t);
  }
  auto a = parse_server_args({"--model-path", "m", "--kv-cache-dtype", "fp8_e4m3"}, &help);
  ASSERT_TRUE(a.is_ok());
  auto o = engine_options(*a);
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->kv_dtype, backend::KvDtype::kFp8E4M3);
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--kv-cache-dtype", "fp4"}, &help).is_ok());
}

TEST(ServerArgs, WeightDtype) {
  // SGLang's --dtype names reach the engine options; auto by default; unknown names fail at
  // parse time, float32 later (the CUDA backend refuses it with its reason).
  bool help = false;
  auto def = parse_server_args({"--model-path", "m"}, &help);
  ASSERT_TRUE(def.is_ok());
  EXPECT_EQ(def->dtype, "auto");
  auto def_o = engine_options(*def);
  ASSERT_TRUE(def_o.is_ok());
  EXPECT_EQ(def_o->dtype, backend::WeightDtype::kAuto);
  struct Case {
    const char* name;
    backend::WeightDtype want;
  };
  for (const Case& c :
       {Case{"half", backend::WeightDtype::kF16}, Case{"float16", backend::WeightDtype::kF16},
        Case{"bfloat16", backend::WeightDtype::kBF16},
        Case{"float32", backend::WeightDtype::kF32}}) {
    auto a = parse_server_args({"--model-path", "m", "--dtype", c.name}, &help);
    ASSERT_TRUE(a.is_ok()) << c.name << ": " << a.status().to_string();
    auto o = engine_options(*a);
    ASSERT_TRUE(o.is_ok()) << o.status().to_string();
    EXPECT_EQ(o->dtype, c.want) << c.name;
    EXPECT_EQ(server_args_json(*a)["dtype"], c.name);
  }
  auto bad = parse_server_args({"--model-path", "m", "--dtype=fp8"}, &help);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("--dtype"), std::string::npos);
}

TEST(ServerArgs, ErrorsAndHelp) {
  bool help = false;
  EXPECT_FALSE(parse_server_args({}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--port", "x"}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--port", "70000"}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--bogus"}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--schedule-policy", "x"}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path"}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--enable-metrics=1"}, &help).is_ok());
  EXPECT_FALSE(parse_server_args({"--model-path", "m", "--load-format", "pt"}, &help).is_ok());
  auto d = parse_server_args({"--model-path", "config.json", "--load-format", "dummy",
                              "--tokenizer-path", "tok.gguf", "--device", "cuda"},
                             &help);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  auto eo = engine_options(*d);
  ASSERT_TRUE(eo.is_ok());
  EXPECT_EQ(eo->load_format, "dummy");
  EXPECT_EQ(eo->tokenizer_path, "tok.gguf");
  EXPECT_EQ(server_args_json(*d)["load_format"], "dummy");
  EXPECT_TRUE(parse_server_args({"--help"}, &help).is_ok());
  EXPECT_TRUE(help);
  const std::string h = server_args_help();
  for (const char* f :
       {"--host", "--port", "--api-key", "--served-model-name", "--context-length",
        "--max-running-requests", "--max-total-tokens", "--chunked-prefill-size",
        "--schedule-policy", "--disable-radix-cache", "--disable-overlap-schedule",
        "--stream-interval", "--chat-template",
        "--enable-metrics", "--log-requests", "--threads", "--random-seed"})
    EXPECT_NE(h.find(f), std::string::npos) << f;
}

}  // namespace
}  // namespace sgl::server
