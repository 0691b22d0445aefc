// StopChecker against the real SmolLM2 tokenizer: token sequences come from the tokenizer's own
// encoding of sentences, so stop strings split across tokens exactly as generated text would.
#include "runtime/stop_checker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "models/loader.h"
#include "support/utf8.h"

namespace sgl::runtime {
namespace {

constexpr const char* kModelPath = SGL_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Outcome {
  std::vector<std::string> deltas;
  std::string text;
  FinishReason reason;
  int32_t steps = 0;
};

class StopCheckerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = models::load_model(kModelPath);
    if (m.is_ok()) model_ = std::move(m).value();
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "model not found: " << kModelPath;
  }

  static const tokenizer::Tokenizer& tok() { return model_->tok(); }
  static std::vector<int32_t> enc(const std::string& s) { return tok().encode(s, false, false); }
  static std::string dec(std::span<const int32_t> ids, bool skip_special = true) {
    return utf8::sanitize(tok().decode(ids, skip_special).value());
  }

  // Pushes `ids` until the checker finishes (or flushes by length after the last one) and checks
  // the streaming invariants on the way.
  static Outcome run(const std::vector<int32_t>& ids, const GenerateParams& p) {
    StopChecker sc(tok(), p);
    Outcome o;
    std::string streamed;
    auto take = [&](const StopChecker::Step& s) {
      o.deltas.emplace_back(s.delta);
      EXPECT_TRUE(utf8::is_valid(s.delta)) << "broken UTF-8 emitted: " << s.delta;
      streamed += s.delta;
      // What a client has seen is always a prefix of what the checker will end with.
      EXPECT_EQ(sc.text().compare(0, streamed.size(), streamed), 0)
          << "streamed '" << streamed << "' is not a prefix of '" << sc.text() << "'";
    };
    std::vector<std::string> seen_prefixes;
    for (int32_t id : ids) {
      auto s = sc.push(id);
      take(s);
      seen_prefixes.push_back(streamed);
      if (s.finished) break;
    }
    if (!sc.finished()) take(sc.finish_by_length());
    o.text = sc.text();
    o.reason = sc.finish_reason();
    o.steps = sc.num_tokens();
    EXPECT_EQ(streamed, o.text) << "deltas do not concatenate to text()";
    for (const auto& pre : seen_prefixes)
      EXPECT_EQ(o.text.compare(0, pre.size(), pre), 0) << "emitted then trimmed: " << pre;
    return o;
  }

  static std::string matched_string(const FinishReason& r) {
    const auto* s = std::get_if<std::string>(&r.matched);
    return s ? *s : std::string("<not a string>");
  }
  static int32_t matched_token(const FinishReason& r) {
    const auto* t = std::get_if<int32_t>(&r.matched);
    return t ? *t : -12345;
  }
  // Index of the token whose decoding first makes the text contain `needle`.
  static int32_t first_step_containing(const std::vector<int32_t>& ids, const std::string& needle) {
    for (size_t t = 1; t <= ids.size(); ++t)
      if (dec(std::span(ids).first(t)).find(needle) != std::string::npos) return int32_t(t);
    return -1;
  }

  static std::unique_ptr<models::LoadedModel> model_;
};

std::unique_ptr<models::LoadedModel> StopCheckerTest::model_;

const std::string kSentence = "The capital of France is Paris. It is a big city.";

TEST_F(StopCheckerTest, StopStringSpanningTokensIsTrimmed) {
  auto ids = enc(kSentence);
  ASSERT_EQ(dec(ids), kSentence);
  // The stop string is not inside any single token: it only appears across a token boundary.
  for (int32_t id : ids)
    ASSERT_EQ(std::string(tok().token_to_piece(id)).find("capital of"), std::string::npos);
  GenerateParams p;
  p.stop = {"capital of"};
  auto o = run(ids, p);
  EXPECT_EQ(o.text, "The ");
  EXPECT_EQ(o.reason.kind, FinishReason::kStop);
  EXPECT_EQ(matched_string(o.reason), "capital of");
  EXPECT_EQ(o.steps, first_step_containing(ids, "capital of"));
  EXPECT_GT(o.steps, 1);
}

TEST_F(StopCheckerTest, StopStringAtTheFirstToken) {
  GenerateParams p;
  p.stop = {"The"};
  auto o = run(enc(kSentence), p);
  EXPECT_EQ(o.text, "");
  EXPECT_EQ(o.steps, 1);
  EXPECT_EQ(matched_string(o.reason), "The");
  for (const auto& d : o.deltas) EXPECT_EQ(d, "");
}

TEST_F(StopCheckerTest, StopStringInsideOneToken) {
  GenerateParams p;
  p.stop = {"api"};
  auto o = run(enc(kSentence), p);
  EXPECT_EQ(o.text, "The c");
  EXPECT_EQ(matched_string(o.reason), "api");
  p.no_stop_trim = true;  // SGLang keeps the whole output, through the end of the token
  o = run(enc(kSentence), p);
  EXPECT_EQ(o.text, "The capital");
  EXPECT_EQ(matched_string(o.reason), "api");
}

TEST_F(StopCheckerTest, EarliestMatchWins) {
  GenerateParams p;
  p.stop = {"Paris", "capital"};
  auto o = run(enc(kSentence), p);
  EXPECT_EQ(matched_string(o.reason), "capital");
  EXPECT_EQ(o.text, "The ");
  // Both complete on the token " Paris"; the one that starts earlier in the text wins.
  p.stop = {"s Paris", "is Paris"};
  o = run(enc(kSentence), p);
  EXPECT_EQ(matched_string(o.reason), "is Paris");
  EXPECT_EQ(o.text, "The capital of France ");
}

TEST_F(StopCheckerTest, NoStopTrimKeepsTheStopString) {
  GenerateParams p;
  p.stop = {"capital of"};
  p.no_stop_trim = true;
  auto o = run(enc(kSentence), p);
  EXPECT_EQ(o.text, "The capital of");
  EXPECT_EQ(matched_string(o.reason), "capital of");
}

TEST_F(StopCheckerTest, PartialStopStringIsHeldBackThenReleased) {
  const std::string text = "The capital city of France is Paris.";
  auto ids = enc(text);
  GenerateParams p;
  p.stop = {"capital of", "Paris!"};
  StopChecker sc(tok(), p);
  std::string streamed;
  bool held_capital = false;
  for (int32_t id : ids) {
    auto s = sc.push(id);
    streamed += s.delta;
    ASSERT_FALSE(s.finished);
    if (sc.text() == "The capital") {
      EXPECT_EQ(streamed, "The ");
      EXPECT_EQ(sc.held_back_bytes(), std::string("capital").size());
      held_capital = true;
    }
    if (sc.text().ends_with("Paris")) {
      EXPECT_FALSE(streamed.ends_with("Paris"));
    }
  }
  EXPECT_TRUE(held_capital);
  auto s = sc.finish_by_length();
  streamed += s.delta;
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(sc.text(), text);
  EXPECT_EQ(s.finish_reason.kind, FinishReason::kLength);
  EXPECT_EQ(s.finish_reason.length, int32_t(ids.size()));
}

TEST_F(StopCheckerTest, EosFinishesAndIsNotText) {
  const int32_t eos = tok().eos_id();
  ASSERT_TRUE(tok().is_eog(eos));
  auto ids = enc("Hello there");
  const size_t n = ids.size();
  ids.push_back(eos);
  for (int32_t id : enc(" more")) ids.push_back(id);
  GenerateParams p;
  auto o = run(ids, p);
  EXPECT_EQ(o.text, "Hello there");
  EXPECT_EQ(o.reason.kind, FinishReason::kStop);
  EXPECT_EQ(matched_token(o.reason), eos);
  EXPECT_EQ(o.steps, int32_t(n + 1));
  EXPECT_EQ(o.reason.to_json()["matched"], eos);
  // Kept with no_stop_trim, and then visible only when special tokens are not skipped.
  p.no_stop_trim = true;
  EXPECT_EQ(run(ids, p).text, "Hello there");
  p.skip_special_tokens = false;
  EXPECT_EQ(run(ids, p).text, "Hello there" + std::string(tok().token_to_piece(eos)));
}

TEST_F(StopCheckerTest, StopTokenIdsTrimTheToken) {
  auto ids = enc(kSentence);
  auto paris = enc(" Paris");
  ASSERT_EQ(paris.size(), 1u);
  ASSERT_NE(std::find(ids.begin(), ids.end(), paris[0]), ids.end());
  GenerateParams p;
  p.stop_token_ids = {paris[0]};
  auto o = run(ids, p);
  EXPECT_EQ(o.text, "The capital of France is");
  EXPECT_EQ(matched_token(o.reason), paris[0]);
  p.no_stop_trim = true;
  EXPECT_EQ(run(ids, p).text, "The capital of France is Paris");
}

TEST_F(StopCheckerTest, MinNewTokensSuppressesEosAndStopIds) {
  const int32_t eos = tok().eos_id();
  auto hello = enc("Hello");
  auto world = enc(" world");
  ASSERT_EQ(hello.size(), 1u);
  ASSERT_EQ(world.size(), 1u);
  std::vector<int32_t> ids = {hello[0], eos, world[0], world[0], eos, hello[0]};
  GenerateParams p;
  p.min_new_tokens = 3;
  auto o = run(ids, p);
  // The first EOS is token #2 (only 1 before it): ignored. The second has 4 before it: stops.
  EXPECT_EQ(o.steps, 5);
  EXPECT_EQ(matched_token(o.reason), eos);
  EXPECT_EQ(o.text, "Hello world world");
  // Same for stop_token_ids.
  ids = {hello[0], world[0], hello[0], world[0], hello[0]};
  p.stop_token_ids = {world[0]};
  o = run(ids, p);
  EXPECT_EQ(o.steps, 4);
  EXPECT_EQ(matched_token(o.reason), world[0]);
  EXPECT_EQ(o.text, "Hello worldHello");
  // min_new_tokens does not suppress stop strings (SGLang enforces it only on the logits of
  // stop tokens).
  p.stop_token_ids.clear();
  p.stop = {"world"};
  o = run(ids, p);
  EXPECT_EQ(o.steps, 2);
  EXPECT_EQ(o.text, "Hello ");
}

TEST_F(StopCheckerTest, IgnoreEosRunsToLength) {
  const int32_t eos = tok().eos_id();
  auto ids = enc("One two");
  ids.push_back(eos);
  for (int32_t id : enc(" three")) ids.push_back(id);
  GenerateParams p;
  p.ignore_eos = true;
  p.stop_token_ids = {ids[1]};  // SGLang: ignore_eos disables stop_token_ids too
  p.max_new_tokens = int32_t(ids.size());
  auto o = run(ids, p);
  EXPECT_EQ(o.reason.kind, FinishReason::kLength);
  EXPECT_EQ(o.reason.length, int32_t(ids.size()));
  EXPECT_EQ(o.text, "One two three");
  EXPECT_EQ(o.text, dec(ids));
}

TEST_F(StopCheckerTest, MaxNewTokensIsCheckedFirst) {
  auto ids = enc(kSentence);
  GenerateParams p;
  p.max_new_tokens = 3;
  auto o = run(ids, p);
  EXPECT_EQ(o.reason.kind, FinishReason::kLength);
  EXPECT_EQ(o.reason.length, 3);
  EXPECT_EQ(o.steps, 3);
  EXPECT_EQ(o.text, dec(std::span(ids).first(3)));
  // A stop string completed by the last allowed token: length wins and nothing is trimmed.
  p.stop = {"capital"};
  p.max_new_tokens = first_step_containing(ids, "capital");
  o = run(ids, p);
  EXPECT_EQ(o.reason.kind, FinishReason::kLength);
  EXPECT_EQ(o.text, "The capital");
  // max_new_tokens = 0: the scheduler finishes without pushing.
  p.max_new_tokens = 0;
  StopChecker sc(tok(), p);
  auto s = sc.finish_by_length();
  EXPECT_TRUE(s.finished);
  EXPECT_EQ(s.finish_reason.to_json(), nlohmann::json::parse(R"({"type":"length","length":0})"));
  EXPECT_EQ(sc.text(), "");
}

TEST_F(StopCheckerTest, AbortFlushesHeldText) {
  GenerateParams p;
  p.stop = {"The capital of Spain"};
  StopChecker sc(tok(), p);
  std::string streamed;
  for (int32_t id : enc("The capital of")) streamed += sc.push(id).delta;
  EXPECT_EQ(streamed, "");
  auto s = sc.abort("client disconnected");
  streamed += s.delta;
  EXPECT_EQ(streamed, "The capital of");
  EXPECT_EQ(s.finish_reason.to_json(),
            nlohmann::json::parse(R"({"type":"abort","message":"client disconnected"})"));
  // An id outside the vocabulary aborts instead of crashing.
  StopChecker sc2(tok(), GenerateParams());
  auto s2 = sc2.push(tok().vocab_size() + 5);
  EXPECT_TRUE(s2.finished);
  EXPECT_EQ(s2.finish_reason.kind, FinishReason::kAbort);
}

TEST_F(StopCheckerTest, MultiByteCharactersAreNeverEmittedBroken) {
  const std::string text = "I like 🍕 and 日本語 and 🤖!";
  auto ids = enc(text);
  ASSERT_EQ(dec(ids), text);
  // The tokenizer really splits some character over tokens.
  bool split = false;
  for (int32_t id : ids) split |= !utf8::is_valid(tok().token_to_piece(id));
  ASSERT_TRUE(split);
  GenerateParams p;
  auto o = run(ids, p);  // run() checks every delta is valid UTF-8
  EXPECT_EQ(o.text, text);
  p.stop = {"🍕"};
  o = run(ids, p);
  EXPECT_EQ(o.text, "I like ");
  EXPECT_EQ(matched_string(o.reason), "🍕");
  p.stop = {"本語"};
  EXPECT_EQ(run(ids, p).text, "I like 🍕 and 日");
  p.stop = {"日本X"};  // a prefix is held back, then released
  o = run(ids, p);
  EXPECT_EQ(o.text, text);
  EXPECT_EQ(o.reason.kind, FinishReason::kLength);
}

// A character boundary at or after `i` in valid UTF-8 `s`.
size_t char_boundary(const std::string& s, size_t i) {
  while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  return i;
}

TEST_F(StopCheckerTest, RandomSequencesMatchANaiveReference) {
  const std::string corpus =
      "The quick brown fox jumps over the lazy dog. 日本語のテキスト 🍕🤖 café "
      "naïve, "
      "capital of France; Paris is nice!\n\nNew paragraph: 1234 + 5678 = 6912.";
  auto pool = enc(corpus);
  std::mt19937 rng(7);
  int stopped_by_string = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<int32_t> ids(1 + rng() % 30);
    for (auto& id : ids) id = pool[rng() % pool.size()];
    const std::string full = dec(ids);
    GenerateParams p;
    p.max_new_tokens = 1000;
    int n_stop = rng() % 4;
    for (int k = 0; k < n_stop && !full.empty(); ++k) {
      size_t a = char_boundary(full, rng() % full.size());
      size_t b = char_boundary(full, a + 1 + rng() % 6);
      std::string s = full.substr(a, b - a);
      if (rng() % 3 == 0) s += "#";  // sometimes a string that never completes
      if (!s.empty() && s.find("\xEF\xBF\xBD") == std::string::npos) p.stop.push_back(s);
    }
    ASSERT_TRUE(p.validate(tok().vocab_size(), 0).is_ok());
    auto o = run(ids, p);
    if (o.reason.kind == FinishReason::kLength) {
      EXPECT_EQ(o.text, full);
      for (const auto& s : p.stop) EXPECT_EQ(full.find(s), std::string::npos) << s;
      continue;
    }
    ASSERT_EQ(o.reason.kind, FinishReason::kStop);
    ++stopped_by_string;
    // The first prefix of the token sequence whose text contains a stop string...
    const std::string upto = dec(std::span(ids).first(o.steps));
    const std::string before = dec(std::span(ids).first(o.steps - 1));
    size_t best = std::string::npos;
    for (const auto& s : p.stop) {
      EXPECT_EQ(before.find(s), std::string::npos) << "missed an earlier match of " << s;
      best = std::min(best, upto.find(s));
    }
    // ...cut at the earliest match.
    ASSERT_NE(best, std::string::npos);
    EXPECT_EQ(o.text, upto.substr(0, best));
    EXPECT_EQ(upto.compare(best, matched_string(o.reason).size(), matched_string(o.reason)), 0);
  }
  EXPECT_GT(stopped_by_string, 50);
}

TEST_F(StopCheckerTest, RandomFlagsKeepTheStreamingInvariants) {
  auto pool = enc("Hi! 日本 🍕 capital of x\n\n");
  pool.push_back(tok().eos_id());
  std::mt19937 rng(11);
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<int32_t> ids(1 + rng() % 20);
    for (auto& id : ids) id = pool[rng() % pool.size()];
    GenerateParams p;
    p.max_new_tokens = 1 + rng() % 25;
    p.min_new_tokens = rng() % (p.max_new_tokens + 1);
    p.ignore_eos = rng() % 2;
    p.no_stop_trim = rng() % 2;
    p.skip_special_tokens = rng() % 2;
    if (rng() % 2) p.stop = {"本 ", "al o", "\n"};
    if (rng() % 2) p.stop_token_ids = {pool[rng() % pool.size()]};
    auto o = run(ids, p);  // run() checks the invariants
    EXPECT_LE(o.steps, p.max_new_tokens);
  }
}

}  // namespace
}  // namespace sgl::runtime
