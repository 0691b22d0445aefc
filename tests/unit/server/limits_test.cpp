// The server's resource limits: the admission gate behind --max-queued-requests and
// --max-connections, the limit flags, request-side caps (stop strings, path-like fields) and the
// KV / admission gauges of /metrics.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "server/admission.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "server/server_args.h"

namespace sgl::server {
namespace {

TEST(AdmissionGate, RefusesBeyondTheLimitAndRecovers) {
  AdmissionGate g(3);
  EXPECT_TRUE(g.try_acquire(2));
  EXPECT_FALSE(g.try_acquire(2));  // 4 > 3: nothing reserved
  EXPECT_EQ(g.in_flight(), 2);
  EXPECT_EQ(g.rejected(), 1);
  EXPECT_TRUE(g.try_acquire(1));
  EXPECT_FALSE(g.try_acquire(1));
  g.release(3);
  EXPECT_EQ(g.in_flight(), 0);
  EXPECT_TRUE(g.try_acquire(3));
  EXPECT_EQ(g.rejected(), 2);
}

TEST(AdmissionGate, UnboundedStillCounts) {
  AdmissionGate g(0);
  EXPECT_TRUE(g.try_acquire(1000000));
  EXPECT_EQ(g.in_flight(), 1000000);
  g.release(1000000);
  EXPECT_EQ(g.in_flight(), 0);
  EXPECT_EQ(g.rejected(), 0);
}

TEST(AdmissionGate, ConcurrentAcquireNeverExceedsTheLimit) {
  AdmissionGate g(10);
  std::atomic<int64_t> max_seen{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!g.try_acquire(1)) continue;
        const int64_t now = g.in_flight();
        int64_t m = max_seen.load();
        while (now > m && !max_seen.compare_exchange_weak(m, now)) {
        }
        g.release(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_LE(max_seen.load(), 10);
  EXPECT_EQ(g.in_flight(), 0);
}

TEST(AdmissionTicket, ReleasesPartlyThenTheRestOnDestruction) {
  AdmissionGate g(8);
  ASSERT_TRUE(g.try_acquire(5));
  {
    AdmissionTicket t(&g, 5);
    t.release(2);
    EXPECT_EQ(g.in_flight(), 3);
    EXPECT_EQ(t.held(), 3);
    t.release(10);  // clamped to what it holds
    EXPECT_EQ(g.in_flight(), 0);
    ASSERT_TRUE(g.try_acquire(4));
    AdmissionTicket moved(&g, 4);
    t = std::move(moved);
    EXPECT_EQ(t.held(), 4);
    EXPECT_EQ(moved.held(), 0);
  }
  EXPECT_EQ(g.in_flight(), 0);
  AdmissionTicket empty;  // no gate: releasing is a no-op
  empty.release(1);
}

TEST(ServerArgs, LimitFlags) {
  bool help = false;
  auto d = parse_server_args({"--model-path", "m"}, &help);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->max_queued_requests, 1024);
  EXPECT_EQ(d->max_connections, 2048);
  EXPECT_EQ(d->max_body_bytes, 32 << 20);
  EXPECT_EQ(d->max_n, kMaxChoicesPerRequest);
  EXPECT_EQ(d->max_new_tokens_limit, 0);
  EXPECT_DOUBLE_EQ(d->header_timeout_s, 10);
  EXPECT_FALSE(d->disable_jump_forward);
  auto a =
      parse_server_args({"--model-path", "m", "--max-queued-requests", "0", "--max-connections",
                         "16", "--max-body-bytes", "4096", "--max-n", "4", "--max-new-tokens-limit",
                         "64", "--header-timeout", "0.5", "--body-timeout=2",
                         "--keep-alive-timeout", "1.25", "--disable-jump-forward"},
                        &help);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->max_queued_requests, 0);
  EXPECT_EQ(a->max_connections, 16);
  EXPECT_EQ(a->max_body_bytes, 4096);
  EXPECT_EQ(a->max_n, 4);
  EXPECT_EQ(a->max_new_tokens_limit, 64);
  EXPECT_DOUBLE_EQ(a->header_timeout_s, 0.5);
  EXPECT_DOUBLE_EQ(a->body_timeout_s, 2);
  EXPECT_DOUBLE_EQ(a->keep_alive_timeout_s, 1.25);
  EXPECT_TRUE(a->disable_jump_forward);
  auto o = engine_options(*a);
  ASSERT_TRUE(o.is_ok());
  EXPECT_TRUE(o->disable_jump_forward);
  Json j = server_args_json(*a);
  EXPECT_EQ(j["max_queued_requests"], nullptr);  // unbounded
  EXPECT_EQ(j["max_new_tokens_limit"], 64);
  EXPECT_EQ(j["disable_jump_forward"], true);
  for (std::vector<std::string> bad :
       std::vector<std::vector<std::string>>{{"--max-n", "0"},
                                             {"--max-n", "1025"},
                                             {"--max-connections", "0"},
                                             {"--max-body-bytes", "10"},
                                             {"--max-queued-requests", "-1"},
                                             {"--header-timeout", "0"},
                                             {"--body-timeout", "-3"},
                                             {"--keep-alive-timeout", "abc"},
                                             {"--keep-alive-timeout", "nan"},
                                             {"--disable-jump-forward=1"}}) {
    bad.insert(bad.begin(), {"--model-path", "m"});
    auto r = parse_server_args(bad, &help);
    EXPECT_FALSE(r.is_ok()) << bad[2];
    if (!r.is_ok()) EXPECT_NE(r.status().message().find(bad[2].substr(0, 10)), std::string::npos);
  }
  EXPECT_NE(server_args_help().find("--max-queued-requests"), std::string::npos);
}

TEST(RequestLimits, StopStringsAreBounded) {
  Json many = Json::array();
  for (size_t i = 0; i <= kMaxStopStrings; ++i) many.push_back("s" + std::to_string(i));
  auto r = parse_generate_request(Json{{"text", "x"}, {"sampling_params", {{"stop", many}}}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("sampling_params.stop"), std::string::npos);
  Json big = Json::array({std::string(kMaxStopBytes, 'a'), "b"});
  auto c = parse_completion_request(Json{{"prompt", "x"}, {"stop", big}});
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("bytes"), std::string::npos);
  many.erase(many.begin());  // exactly kMaxStopStrings
  EXPECT_TRUE(
      parse_chat_request(Json{{"messages", Json::array({Json{{"role", "user"}, {"content", "x"}}})},
                              {"stop", many}})
          .is_ok());
}

TEST(RequestLimits, NoFieldNamesAServerPath) {
  auto g = parse_generate_request(Json{{"text", "x"}, {"lora_path", "/etc/passwd"}});
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnsupported);
  auto c = parse_completion_request(Json{{"prompt", "x"}, {"lora_path", "a"}});
  EXPECT_FALSE(c.is_ok());
  auto m = parse_chat_request(Json{
      {"messages", Json::array({Json{{"role", "user"}, {"content", "x"}}})}, {"lora_path", "a"}});
  EXPECT_FALSE(m.is_ok());
  // A chat_template field is not read at all: the template comes from the model or the command
  // line only.
  auto t =
      parse_chat_request(Json{{"messages", Json::array({Json{{"role", "user"}, {"content", "x"}}})},
                              {"chat_template", "/etc/passwd"}});
  EXPECT_TRUE(t.is_ok());
}

TEST(Metrics, KvAndAdmissionGauges) {
  ServerMetrics m("x");
  runtime::EngineStats s;
  s.kv_used = 70;
  s.cache_size = 50;
  s.kv_capacity = 100;
  ServerGauges g;
  g.queued_sequences = 7;
  g.rejected_overload = 3;
  g.open_connections = 9;
  g.rejected_connections = 2;
  const std::string t = m.render(s, g);
  const std::string lb = "{model_name=\"x\"}";
  EXPECT_NE(t.find("sglang:kv_cache_tokens" + lb + " 50\n"), std::string::npos) << t;
  EXPECT_NE(t.find("sglang:kv_request_tokens" + lb + " 20\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:num_admitted_sequences" + lb + " 7\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:num_overload_rejections_total" + lb + " 3\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:num_open_connections" + lb + " 9\n"), std::string::npos);
  EXPECT_NE(t.find("sglang:num_rejected_connections_total" + lb + " 2\n"), std::string::npos);
}

}  // namespace
}  // namespace sgl::server
