// The frontend interpreter against a scripted fake backend (ordering, blocking reads, fork/join,
// select scoring, roles, errors, streaming, run_batch pre-caching) and against the real engine.
#include "sgl/lang.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "sgl/engine.h"

namespace sgl::lang {
namespace {

// Scripted backend: gen returns "<N>" (N counts calls), or the text scripted for the variable
// named by a marker "@name" at the end of the prompt; select scores come from `scores`.
class FakeBackend final : public Backend {
 public:
  std::map<std::string, double> scores;  // choice -> mean logprob
  std::mutex mu;
  std::vector<GenRequest> log;
  std::atomic<int> calls{0};

  Result<GenResult> generate(const GenRequest& req,
                             const std::function<void(std::string_view)>& on_delta) override {
    {
      std::lock_guard<std::mutex> lk(mu);
      log.push_back(req);
    }
    GenResult r;
    r.prompt_tokens = static_cast<int>(req.text.size());
    if (req.params.regex && *req.params.regex == "(")
      return invalid_argument("regex: unbalanced parenthesis at 1");
    if (req.params.max_new_tokens == 0) {
      if (req.params.return_logprob) {
        // Scoring request: [null, the prefix's last char, one entry per choice char].
        for (const auto& [c, sc] : scores) {
          if (req.text.size() >= c.size() &&
              req.text.compare(req.text.size() - c.size(), c.size(), c) == 0) {
            const std::string prefix = req.text.substr(0, req.text.size() - c.size());
            r.input_token_logprobs.push_back({NAN, 0, ""});
            r.input_token_logprobs.push_back(
                {-9.0, 1, prefix.empty() ? "" : prefix.substr(prefix.size() - 1)});
            for (size_t i = 0; i < c.size(); ++i)
              r.input_token_logprobs.push_back({sc, 2, c.substr(i, 1)});
          }
        }
      }
      return r;
    }
    const int n = ++calls;
    r.text = "<" + std::to_string(n) + ">";
    if (on_delta) {
      on_delta(r.text.substr(0, 1));
      on_delta(r.text.substr(1));
    }
    r.completion_tokens = 1;
    r.meta_info["completion_tokens"] = 1;
    return r;
  }
  Result<ChatRoles> chat_roles() override {
    ChatRoles r;
    r.roles["system"] = {"[S]", "[/S]\n"};
    r.roles["user"] = {"[U]", "[/U]\n"};
    r.roles["assistant"] = {"[A]", "[/A]\n"};
    r.stop = {"[/A]"};
    return r;
  }
  CacheStats cache_stats() override { return {}; }
  Status flush_cache() override { return Status::ok(); }
};

TEST(Lang, AppendsInOrderAndBlocksOnReads) {
  FakeBackend b;
  auto st = run(b, [](State& s) {
    s += "Q: ";
    s += gen("x", {.max_tokens = 4});
    s += " then ";
    s += gen("y");
    EXPECT_EQ(s["x"], "<1>");
    EXPECT_EQ(s["y"], "<2>");
    s += "!";
  });
  ASSERT_TRUE(st.status().is_ok()) << st.status().to_string();
  EXPECT_EQ(st.text(), "Q: <1> then <2>!");
  ASSERT_EQ(b.log.size(), 2u);
  EXPECT_EQ(b.log[0].text, "Q: ");
  EXPECT_EQ(b.log[0].params.max_new_tokens, 4);
  EXPECT_EQ(b.log[1].text, "Q: <1> then ");
}

TEST(Lang, ForkCommitsThePrefixOnceAndJoinGathersLists) {
  FakeBackend b;
  auto st = run(b, [](State& s) {
    s += "Plan:";
    auto f = s.fork(3);
    for (size_t i = 0; i < f.size(); ++i) f[i] += " step " + std::to_string(i) + ": " + gen("step");
    f.join();
    EXPECT_EQ(s.list("step").size(), 3u);
    // Nested forks.
    auto g = s.fork(2);
    for (auto& br : g) {
      auto h = br.fork(2);
      for (auto& leaf : h) leaf += gen("leaf");
      h.join();
      br += gen("mid");
    }
    g.join();
  });
  ASSERT_TRUE(st.status().is_ok()) << st.status().to_string();
  auto steps = st.list("step");
  ASSERT_EQ(steps.size(), 3u);
  std::set<std::string> uniq(steps.begin(), steps.end());
  EXPECT_EQ(uniq.size(), 3u);
  EXPECT_EQ(st.list("mid").size(), 2u);
  // Each branch gathered 2 leaves as a list; the outer join flattens them: 2 x 2.
  EXPECT_EQ(st.list("leaf").size(), 4u);
  int prefix_commits = 0;
  for (const auto& r : b.log)
    if (r.params.max_new_tokens == 0 && r.text == "Plan:") ++prefix_commits;
  EXPECT_EQ(prefix_commits, 4);   // one per fork(n > 1) call: 1 + 1 outer + 2 nested
  EXPECT_EQ(st.text(), "Plan:");  // branches do not write into the parent's text
}

TEST(Lang, SelectScoresEveryChoiceInOneBatch) {
  FakeBackend b;
  b.scores = {{"red", -2.0}, {"green", -0.5}, {"blue", -1.0}};
  auto st = run(b, [](State& s) {
    s += "Colour: ";
    s += select("c", {"red", "green", "blue"});
  });
  ASSERT_TRUE(st.status().is_ok()) << st.status().to_string();
  EXPECT_EQ(st["c"], "green");
  EXPECT_EQ(st.text(), "Colour: green");
  auto meta = st.meta_info("c");
  ASSERT_EQ(meta["normalized_prompt_logprobs"].size(), 3u);
  // The prefix's last token lies inside the prefix, so it is dropped from the mean.
  EXPECT_DOUBLE_EQ(meta["normalized_prompt_logprobs"][1].get<double>(), -0.5);
  // Prefill once, then the scoring requests start at prompt_tokens - 2.
  ASSERT_GE(b.log.size(), 4u);
  EXPECT_EQ(b.log[0].params.max_new_tokens, 0);
  EXPECT_FALSE(b.log[0].params.return_logprob);
  EXPECT_EQ(b.log[1].params.logprob_start_len,
            static_cast<int>(std::string("Colour: ").size()) - 2);
  EXPECT_TRUE(b.log[1].params.return_text_in_logprobs);
  // gen with choices is a select; greedy_token_selection also picks the best first token.
  b.log.clear();
  auto st2 = run(b, [](State& s) {
    s += "Colour: ";
    s += gen("c",
             {.choices = {"blue", "red"}, .choices_method = ChoicesMethod::kGreedyTokenSelection});
  });
  EXPECT_EQ(st2["c"], "blue");
}

TEST(Lang, RolesUseTheTemplateAndAddItsStopString) {
  FakeBackend b;
  auto st = run(b, [](State& s) {
    s += system("Be brief.");
    s += user("Hi");
    s += assistant(gen("a"));
    s += gen("outside");
  });
  ASSERT_TRUE(st.status().is_ok()) << st.status().to_string();
  EXPECT_EQ(st.text(), "[S]Be brief.[/S]\n[U]Hi[/U]\n[A]<1>[/A]\n<2>");
  auto m = st.messages();
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[2]["role"], "assistant");
  EXPECT_EQ(m[2]["content"], "<1>");
  ASSERT_EQ(b.log.size(), 2u);
  EXPECT_EQ(b.log[0].params.stop, std::vector<std::string>{"[/A]"});
  EXPECT_TRUE(b.log[1].params.stop.empty());
}

TEST(Lang, ErrorsSurfaceWithoutDeadlock) {
  FakeBackend b;
  auto st = run(b, [](State& s) {
    s += gen("ok");
    s += gen("bad", {.regex = std::string("(")});
    s += gen("never");
    (void)s["never"];  // throws: the state failed
    ADD_FAILURE() << "reading a variable of a failed state must throw";
  });
  Status s = st.status();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("unbalanced parenthesis"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("bad"), std::string::npos);
  EXPECT_EQ(st.get("ok"), "<1>");
  EXPECT_EQ(b.calls.load(), 1);  // nothing after the failure ran

  auto st2 = run(b, [](State& s) {
    s += "x";
    (void)s["missing"];
  });
  EXPECT_FALSE(st2.status().is_ok());
  EXPECT_NE(st2.status().message().find("never produced"), std::string::npos);
}

TEST(Lang, GenWithNGathersEverySample) {
  FakeBackend b;
  GenOptions o;
  o.n = 3;
  auto st = run(b, [o](State& s) {
    s += "Q:";
    s += gen("x", o);
    s += "!";
  });
  ASSERT_TRUE(st.status().is_ok()) << st.status().to_string();
  auto xs = st.list("x");
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(st.text(), "Q:" + xs[0] + "!");
  EXPECT_EQ(b.calls.load(), 3);
}

TEST(Lang, StreamingDeliversTheWholeText) {
  FakeBackend b;
  RunOptions o;
  o.stream = true;
  auto st = run(
      b,
      [](State& s) {
        s += "A";
        s += gen("g");
        s += "B";
      },
      o);
  std::string all;
  while (auto c = st.next_chunk()) all += *c;
  ASSERT_TRUE(st.status().is_ok());
  EXPECT_EQ(all, "A<1>B");
  EXPECT_EQ(all, st.text());
}

TEST(Lang, RunBatchPrecachesALongConstantPrefix) {
  FakeBackend b;
  const std::string sys(80, 'x');
  std::vector<Program> progs;
  for (int i = 0; i < 4; ++i)
    progs.push_back([&sys, i](State& s) {
      s += sys + " question " + std::to_string(i);
      s += gen("a");
    });
  auto res = run_batch(b, progs, {.num_threads = 2});
  ASSERT_EQ(res.size(), 4u);
  for (auto& r : res) EXPECT_TRUE(r.status().is_ok());
  ASSERT_FALSE(b.log.empty());
  EXPECT_EQ(b.log[0].params.max_new_tokens, 0);
  EXPECT_EQ(b.log[0].text, sys + " question ");
  std::set<std::string> answers;
  for (auto& r : res) answers.insert(r["a"]);
  EXPECT_EQ(answers.size(), 4u);
}

// ---------------------------------------------------------------- the real engine

const std::string kModelPath =
    std::string(SGL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

TEST(LangEngine, ProgramsRunOnTheInProcessEngine) {
  if (!std::filesystem::exists(kModelPath)) GTEST_SKIP() << "model not found: " << kModelPath;
  runtime::EngineOptions eo;
  eo.threads = 2;
  eo.max_total_tokens = 4096;
  auto engine = runtime::Engine::create(kModelPath, eo);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto backend = make_engine_backend(**engine);
  auto roles = backend->chat_roles();
  ASSERT_TRUE(roles.is_ok()) << roles.status().to_string();
  EXPECT_EQ(roles->roles["user"].first, "<|im_start|>user\n");
  EXPECT_EQ(roles->roles["user"].second, "<|im_end|>\n");
  EXPECT_EQ(roles->stop, std::vector<std::string>{"<|im_end|>"});

  RunOptions ro;
  ro.defaults.temperature = 0.0f;
  auto program = [](State& s) {
    s += system("You are a helpful assistant.");
    s += user("What is the capital of France? Answer in one word.");
    s += assistant(gen("answer", {.max_tokens = 8}));
    s += user("Is Paris in Europe?");
    s += assistant(select("yn", {"Yes", "No"}));
    auto f = s.fork(2);
    f[0] += user("Name a colour.") + assistant(gen("x", {.max_tokens = 4}));
    f[1] += user("Name an animal.") + assistant(gen("x", {.max_tokens = 4}));
    f.join();
  };
  auto a = run(*backend, program, ro);
  ASSERT_TRUE(a.status().is_ok()) << a.status().to_string();
  EXPECT_FALSE(a["answer"].empty());
  EXPECT_TRUE(a["yn"] == "Yes" || a["yn"] == "No");
  EXPECT_EQ(a.list("x").size(), 2u);
  EXPECT_EQ(a.messages().size(), 5u);
  // Deterministic at temperature 0, and the second run reuses the cache.
  auto b = run(*backend, program, ro);
  ASSERT_TRUE(b.status().is_ok());
  EXPECT_EQ(a.text(), b.text());
  EXPECT_EQ(a.list("x"), b.list("x"));
  EXPECT_GT(backend->cache_stats().hit_rate(), 0.3);
}

}  // namespace
}  // namespace sgl::lang
