// Matcher and compiler contracts on a byte-level vocabulary: rollback, accept_bytes atomicity,
// the compile cache, and concurrent use of one CompiledGrammar from several threads.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "grammar/grammar.h"
#include "test_util.h"

namespace sgl::grammar {
namespace {

using testing::byte_vocab;

bool bit(const std::vector<uint32_t>& mask, int32_t id) { return (mask[id >> 5] >> (id & 31)) & 1; }

TEST(Matcher, AcceptBytesIsAllOrNothingAndRollbackRestores) {
  for (int32_t cap : {20000, 1}) {  // DFA, then pushdown
    GrammarOptions opts;
    opts.max_dfa_states = cap;
    auto g = *compile_grammar(GrammarKind::kRegex, "(ab|ac)+d", byte_vocab(), opts);
    EXPECT_EQ(g->is_dfa(), cap > 1);
    Matcher m(g);
    std::vector<uint32_t> m0(m.mask_words()), m1(m.mask_words());
    m.fill_mask(m0);
    EXPECT_FALSE(m.accept_bytes("abx"));  // 'x' fails: nothing consumed
    EXPECT_EQ(m.num_steps(), 0u);
    m.fill_mask(m1);
    EXPECT_EQ(m0, m1);
    ASSERT_TRUE(m.accept_bytes("ab"));
    ASSERT_TRUE(m.accept_bytes("a"));
    ASSERT_TRUE(m.accept_bytes("c"));
    EXPECT_EQ(m.num_steps(), 3u);
    m.fill_mask(m1);
    EXPECT_TRUE(bit(m1, 'a'));
    EXPECT_TRUE(bit(m1, 'd'));
    EXPECT_FALSE(bit(m1, 'b'));
    EXPECT_FALSE(bit(m1, 256));  // EOS: not complete yet
    ASSERT_TRUE(m.accept_bytes("d"));
    EXPECT_TRUE(m.can_end());
    ASSERT_TRUE(m.accept(256));
    EXPECT_TRUE(m.is_terminated());
    EXPECT_FALSE(m.accept('a'));
    m.rollback(2);  // undo EOS and "d"
    EXPECT_FALSE(m.is_terminated());
    EXPECT_FALSE(m.can_end());
    m.fill_mask(m0);
    EXPECT_EQ(m0, m1);
    m.rollback(3);
    m.fill_mask(m1);
    EXPECT_TRUE(bit(m1, 'a'));
    EXPECT_FALSE(bit(m1, 'd'));
    m.reset();
    EXPECT_EQ(m.num_steps(), 0u);
  }
}

TEST(Matcher, CompilerCachesByKindOptionsAndText) {
  GrammarCompiler compiler(byte_vocab());
  auto a = compiler.compile(GrammarKind::kRegex, "a+");
  auto b = compiler.compile(GrammarKind::kRegex, "a+");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->get(), b->get());
  auto c = compiler.compile(GrammarKind::kGbnf, "root ::= \"a\"+");
  ASSERT_TRUE(c.is_ok());
  EXPECT_NE(a->get(), c->get());
  GrammarOptions compact;
  compact.whitespace = WhitespacePolicy::kCompact;
  auto d = compiler.compile(GrammarKind::kJsonSchema, "{\"type\":\"integer\"}");
  auto e = compiler.compile(GrammarKind::kJsonSchema, "{\"type\":\"integer\"}", compact);
  ASSERT_TRUE(d.is_ok() && e.is_ok());
  EXPECT_NE(d->get(), e->get());
  auto bad = compiler.compile(GrammarKind::kRegex, "(");
  EXPECT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(compiler.cache_size(), 4u);  // errors are not cached
}

TEST(Matcher, ApplyMaskSetsMinusInfinity) {
  std::vector<uint32_t> mask = {0x5u, 0x80000000u};
  std::vector<float> logits(70, 1.0f);
  apply_mask(logits, mask);
  for (size_t i = 0; i < logits.size(); ++i) {
    bool allowed = i == 0 || i == 2 || i == 63;
    EXPECT_EQ(std::isfinite(logits[i]), allowed) << i;
  }
}

TEST(Matcher, OneGrammarManyThreads) {
  // Concurrent matchers over one CompiledGrammar fill the lazily built mask caches at the same
  // time; every thread's masks must equal those of a fresh single-threaded run.
  for (int32_t cap : {20000, 1}) {
    GrammarOptions opts;
    opts.max_dfa_states = cap;
    const char* schema =
        R"({"type":"object","properties":{"a":{"type":"string","maxLength":5},"b":{"enum":[1,22,333]}},"required":["a","b"]})";
    auto shared = *compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab(), opts);
    std::vector<std::thread> threads;
    std::vector<int> failures(4, 0);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(100 + t);
        auto fresh = *compile_grammar(GrammarKind::kJsonSchema, schema, byte_vocab(), opts);
        for (int run = 0; run < 30; ++run) {
          Matcher m(shared), ref(fresh);
          std::vector<uint32_t> mask(m.mask_words()), want(m.mask_words());
          while (!m.is_terminated()) {
            m.fill_mask(mask);
            ref.fill_mask(want);
            if (mask != want) ++failures[t];
            std::vector<int32_t> allowed;
            for (int32_t id = 0; id <= 256; ++id)
              if (bit(mask, id)) allowed.push_back(id);
            if (allowed.empty()) {
              ++failures[t];
              break;
            }
            int32_t pick = allowed[rng() % allowed.size()];
            if (!m.accept(pick) || !ref.accept(pick)) ++failures[t];
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int f : failures) EXPECT_EQ(f, 0);
  }
}

}  // namespace
}  // namespace sgl::grammar
