// Token masks on the default model's real vocabulary (skipped when the model file is absent):
// the mask equals a brute-force per-token check, and sampling uniformly from the masked logits
// always yields a complete, valid output.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "model/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace sgl::grammar {
namespace {

using testing::model_vocab;

bool bit(const std::vector<uint32_t>& mask, int32_t id) { return (mask[id >> 5] >> (id & 31)) & 1; }

struct GrammarCase {
  GrammarKind kind;
  std::string text;
  bool is_json;
};

std::vector<GrammarCase> grammar_cases() {
  return {
      {GrammarKind::kJsonSchema,
       R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},
           "age":{"type":"integer","minimum":0,"maximum":150},
           "tags":{"type":"array","items":{"enum":["a","b","c d"]},"maxItems":3},
           "ok":{"type":"boolean"}},"required":["name","age"]})",
       true},
      {GrammarKind::kJsonSchema,
       R"({"type":"object","properties":{"when":{"type":"string","format":"date"},
           "score":{"type":"number","minimum":-1,"maximum":1},
           "id":{"type":"string","format":"uuid"}},"required":["when","score","id"]})",
       true},
      {GrammarKind::kJsonSchema,
       R"({"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer","maximum":9},
           "kids":{"type":"array","items":{"$ref":"#/$defs/n"},"maxItems":2}},
           "required":["v"]}},"$ref":"#/$defs/n"})",
       true},
      {GrammarKind::kRegex, R"((yes|no|maybe), because [a-z ]{1,20}\.)", false},
      {GrammarKind::kGbnf,
       "root ::= \"[\" item (\", \" item){0,3} \"]\"\nitem ::= [0-9]{1,3} | \"(\" root \")\"",
       false},
  };
}

TEST(Masks, MaskEqualsBruteForceOnRandomWalks) {
  auto vocab = model_vocab();
  if (!vocab) GTEST_SKIP() << "default model not present";
  ASSERT_GT(vocab->vocab_size(), 40000);
  std::mt19937 rng(1);
  for (const GrammarCase& gc : grammar_cases()) {
    auto g = compile_grammar(gc.kind, gc.text, vocab);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    Matcher m(*g);
    std::vector<uint32_t> mask(m.mask_words());
    int states_checked = 0;
    for (int step = 0; step < 40 && !m.is_terminated(); ++step) {
      m.fill_mask(mask);
      // Brute force: every token for the DFA back end, a sample plus all allowed for the PDA.
      bool dfa = (*g)->is_dfa();
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->vocab_size(); ++id) {
        bool in_mask = bit(mask, id);
        if (in_mask) allowed.push_back(id);
        if (!dfa && !in_mask && rng() % 16 != 0) continue;
        bool ok = m.accept(id);
        if (ok) m.rollback(1);
        ASSERT_EQ(in_mask, ok) << "grammar " << gc.text << " step " << step << " token " << id
                               << " '" << vocab->token_bytes(id) << "'";
      }
      for (int32_t eos : vocab->eog_ids()) EXPECT_EQ(bit(mask, eos), m.can_end());
      ASSERT_FALSE(allowed.empty());
      ++states_checked;
      int32_t pick = allowed[rng() % allowed.size()];
      ASSERT_TRUE(m.accept(pick));
    }
    EXPECT_GT(states_checked, 0);
  }
}

TEST(Masks, SamplingFromMaskedLogitsGivesValidOutput) {
  auto vocab = model_vocab();
  if (!vocab) GTEST_SKIP() << "default model not present";
  std::mt19937 rng(2);
  for (const GrammarCase& gc : grammar_cases()) {
    auto g = compile_grammar(gc.kind, gc.text, vocab);
    ASSERT_TRUE(g.is_ok());
    int completed = 0;
    for (int run = 0; run < 20; ++run) {
      Matcher m(*g);
      std::vector<uint32_t> mask(m.mask_words());
      std::vector<float> logits(vocab->vocab_size() + 7);  // padded like a model's output
      std::string out;
      for (int step = 0; step < 600 && !m.is_terminated(); ++step) {
        m.fill_mask(mask);
        std::fill(logits.begin(), logits.end(), 0.0f);
        apply_mask(logits, mask);
        std::vector<int32_t> finite;
        for (size_t i = 0; i < logits.size(); ++i)
          if (std::isfinite(logits[i])) finite.push_back(static_cast<int32_t>(i));
        ASSERT_FALSE(finite.empty()) << out;
        int32_t pick;
        // Finish as soon as allowed half of the time, so outputs stay short.
        if (m.can_end() && rng() % 2 == 0) {
          pick = vocab->eog_ids()[0];
        } else {
          pick = finite[rng() % finite.size()];
        }
        ASSERT_TRUE(bit(mask, pick));
        ASSERT_TRUE(m.accept(pick));
        if (!vocab->is_eog(pick)) out += vocab->token_bytes(pick);
      }
      if (!m.is_terminated()) continue;
      ++completed;
      EXPECT_TRUE(testing::full_match(*g, std::string(out))) << out;
      if (gc.is_json) {
        EXPECT_TRUE(nlohmann::json::accept(out)) << out;
      }
    }
    EXPECT_GT(completed, 10) << gc.text;
  }
}

TEST(Masks, RejectedTokenChangesNothingAndEosOnlyAtTheEnd) {
  auto vocab = model_vocab();
  if (!vocab) GTEST_SKIP() << "default model not present";
  auto g = *compile_grammar(GrammarKind::kRegex, "ab", vocab);
  Matcher m(g);
  std::vector<uint32_t> before(m.mask_words()), after(m.mask_words());
  m.fill_mask(before);
  int32_t eos = vocab->eog_ids()[0];
  EXPECT_FALSE(bit(before, eos));
  EXPECT_FALSE(m.accept(eos));
  for (int32_t id = 0; id < vocab->vocab_size(); ++id) {
    if (!bit(before, id)) {
      EXPECT_FALSE(m.accept(id));
      break;
    }
  }
  m.fill_mask(after);
  EXPECT_EQ(before, after);
  ASSERT_TRUE(m.accept_bytes("ab"));
  m.fill_mask(after);
  // Complete and cannot continue: only end-of-generation tokens.
  for (int32_t id = 0; id < vocab->vocab_size(); ++id) EXPECT_EQ(bit(after, id), vocab->is_eog(id));
  ASSERT_TRUE(m.accept(eos));
  EXPECT_TRUE(m.is_terminated());
  m.fill_mask(after);
  for (uint32_t w : after) EXPECT_EQ(w, 0u);
}

}  // namespace
}  // namespace sgl::grammar
