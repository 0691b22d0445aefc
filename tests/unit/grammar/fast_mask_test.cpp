// The production mask paths (DFA walk with subtree shortcuts; pushdown walk with memoised
// configuration transitions and subtree shortcuts) give exactly the plain trie walk's masks, on
// many states of every grammar of the corpora (schemas, regexes, the JSON GBNF), on a synthetic
// vocabulary built from the corpus text and on the default model's vocabulary when present.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "model/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace sgl::grammar {
namespace {

struct CorpusGrammar {
  GrammarKind kind;
  std::string text;
  GrammarOptions opts;
};

std::vector<CorpusGrammar> corpus_grammars() {
  std::vector<CorpusGrammar> out;
  auto schemas = nlohmann::json::parse(testing::read_file(testing::data_path("schema_cases.json")));
  const WhitespacePolicy policies[] = {WhitespacePolicy::kDefault, WhitespacePolicy::kCompact,
                                       WhitespacePolicy::kFlexible};
  size_t i = 0;
  for (const auto& c : schemas["cases"]) {
    GrammarOptions o;
    o.whitespace = policies[i++ % 3];
    out.push_back({GrammarKind::kJsonSchema, c["schema"].get<std::string>(), o});
  }
  auto regexes = nlohmann::json::parse(testing::read_file(testing::data_path("regex_cases.json")));
  for (const auto& c : regexes["cases"])
    out.push_back({GrammarKind::kRegex, c["pattern"].get<std::string>(), {}});
  out.push_back({GrammarKind::kGbnf, testing::read_file(testing::data_path("json.gbnf")), {}});
  // A regular grammar forced onto the pushdown back end.
  GrammarOptions tiny;
  tiny.max_dfa_states = 4;
  out.push_back({GrammarKind::kJsonSchema,
                 R"({"type":"object","properties":{"s":{"type":"string","maxLength":6},
                     "n":{"type":"number","minimum":-2.5,"maximum":3}},"required":["s"]})",
                 tiny});
  return out;
}

// Byte-level-BPE-like tokens drawn from the corpus instances: every byte, substrings of 2..12
// bytes of the instance texts (with and without a leading space; about 24k in all), digit groups,
// punctuation runs and multi-byte UTF-8 pieces (some cut inside a character). Plus one EOS.
std::shared_ptr<const TokenVocab> corpus_vocab() {
  static std::shared_ptr<const TokenVocab> v = [] {
    std::set<std::string> seen;
    std::vector<std::string> toks;
    auto add = [&](const std::string& t) {
      if (!t.empty() && seen.insert(t).second) toks.push_back(t);
    };
    for (int b = 0; b < 256; ++b) add(std::string(1, static_cast<char>(b)));
    std::mt19937 rng(7);
    auto data = nlohmann::json::parse(testing::read_file(testing::data_path("schema_cases.json")));
    for (const auto& c : data["cases"]) {
      for (const auto& inst : c["instances"]) {
        for (const char* form : {"compact", "default"}) {
          const std::string text = inst[form];
          for (size_t p = 0; p < text.size() && toks.size() < 24000; ++p) {
            if (rng() % 3 != 0) continue;
            size_t len = 2 + rng() % 11;
            if (p + len <= text.size()) add(text.substr(p, len));
            if (rng() % 4 == 0 && p + len <= text.size()) add(std::string(" ").append(text, p, len));
          }
        }
      }
    }
    for (int n = 0; n < 1000; ++n) add(std::to_string(n));
    for (const char* p : {"\":", "\", \"", "},", "}}", "]}", "[{\"", "{\"", "\\n", "\\\"", "  ",
                          "    ", "\n  ", "\n    ", ",\n", "...", "---", "==", "\":\"", "\"}"})
      add(p);
    for (const char* u : {"é", "è", "ü", "ß", "の", "日本", "語", "中文", "привет", " мир", "😀",
                          "\xC3", "\xE6\x97", "\xF0\x9F\x98", "ña", " café"})
      add(u);
    // Random multilingual pieces: 1-3 characters of CJK, Cyrillic, accented Latin or emoji,
    // sometimes with a leading space, sometimes cut inside the last character.
    auto utf8 = [](uint32_t cp) {
      std::string o;
      if (cp < 0x800) {
        o += static_cast<char>(0xC0 | (cp >> 6));
      } else if (cp < 0x10000) {
        o += static_cast<char>(0xE0 | (cp >> 12));
        o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      } else {
        o += static_cast<char>(0xF0 | (cp >> 18));
        o += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        o += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      }
      o += static_cast<char>(0x80 | (cp & 0x3F));
      return o;
    };
    const uint32_t ranges[][2] = {{0x4E00, 0x4E3F}, {0x0430, 0x044F}, {0x00E0, 0x00FF},
                                  {0x1F600, 0x1F60F}};
    for (int k = 0; k < 1500; ++k) {
      const auto& r = ranges[rng() % 4];
      std::string t = rng() % 3 == 0 ? " " : "";
      for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n)
        t += utf8(r[0] + rng() % (r[1] - r[0] + 1));
      if (rng() % 5 == 0) t.pop_back();
      add(t);
    }
    toks.push_back("");  // EOS
    const int32_t eos = static_cast<int32_t>(toks.size() - 1);
    return TokenVocab::from_tokens(std::move(toks), {eos});
  }();
  return v;
}

using testing::model_vocab;

struct Counts {
  size_t grammars = 0, dfa_states = 0, pda_steps = 0;
};

// Compares the fast and the plain masks: on up to `dfa_states` DFA states (all of them when
// fewer), and along a random decoding walk of up to `pda_steps` steps on the pushdown back end.
void compare_all(const std::shared_ptr<const TokenVocab>& vocab, int dfa_states, int pda_steps,
                 Counts* counts) {
  std::mt19937 rng(11);
  std::vector<uint32_t> fast(vocab->mask_words()), plain(vocab->mask_words());
  for (const CorpusGrammar& cg : corpus_grammars()) {
    auto r = compile_grammar(cg.kind, cg.text, vocab, cg.opts);
    ASSERT_TRUE(r.is_ok()) << cg.text << ": " << r.status().to_string();
    const CompiledGrammarPtr& g = *r;
    ++counts->grammars;
    if (g->is_dfa()) {
      std::vector<int32_t> states(g->num_dfa_states());
      for (int32_t s = 0; s < g->num_dfa_states(); ++s) states[s] = s;
      std::shuffle(states.begin(), states.end(), rng);
      states.resize(std::min<size_t>(states.size(), dfa_states));
      for (int32_t s : states) {
        g->compute_dfa_mask(s, fast.data(), true);
        g->compute_dfa_mask(s, plain.data(), false);
        ASSERT_EQ(fast, plain) << cg.text << " state " << s;
        // The cached path returns the same bits.
        ASSERT_TRUE(std::equal(plain.begin(), plain.end(), g->dfa_state_mask(s)));
        ++counts->dfa_states;
      }
      continue;
    }
    Matcher m(g);
    for (int step = 0; step < pda_steps && !m.is_terminated(); ++step) {
      m.compute_mask_uncached(fast, true);
      m.compute_mask_uncached(plain, false);
      ASSERT_EQ(fast, plain) << cg.text << " step " << step;
      ++counts->pda_steps;
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->vocab_size(); ++id)
        if ((fast[id >> 5] >> (id & 31)) & 1) allowed.push_back(id);
      ASSERT_FALSE(allowed.empty());
      // Prefer continuing (longer walks reach deeper stacks); end now and then.
      int32_t pick = allowed[rng() % allowed.size()];
      if (vocab->is_eog(pick) && allowed.size() > 1 && rng() % 4 != 0)
        pick = allowed[(std::find(allowed.begin(), allowed.end(), pick) - allowed.begin() + 1) %
                       allowed.size()];
      ASSERT_TRUE(m.accept(pick));
    }
  }
}

TEST(FastMasks, EqualPlainWalkOnCorpusVocabulary) {
  auto vocab = corpus_vocab();
  ASSERT_GT(vocab->vocab_size(), 5000);
  Counts c;
  compare_all(vocab, 32, 12, &c);
  EXPECT_GT(c.grammars, 350u);
  EXPECT_GT(c.dfa_states, 5000u);
  EXPECT_GT(c.pda_steps, 100u);
}

TEST(FastMasks, EqualPlainWalkOnModelVocabulary) {
  auto vocab = model_vocab();
  if (!vocab) GTEST_SKIP() << "default model not present";
  Counts c;
  compare_all(vocab, 12, 3, &c);
  EXPECT_GT(c.dfa_states, 2000u);
  EXPECT_GT(c.pda_steps, 30u);
}

TEST(FastMasks, TrieSummariesDescribeTheSubtrees) {
  auto vocab = corpus_vocab();
  const TokenVocab::Trie& t = vocab->trie();
  ASSERT_EQ(t.below.size(), static_cast<size_t>(t.size()));
  // Decoder state after each node's path from the root (-1: invalid), in one preorder pass.
  std::vector<int> path_state(t.size(), 0), at_depth(t.max_depth + 1, 0);
  for (int32_t i = 1; i < t.size(); ++i) {
    const int ps = at_depth[t.depth[i] - 1];
    path_state[i] = at_depth[t.depth[i]] = ps < 0 ? -1 : utf8_step(ps, t.byte[i]);
  }
  std::mt19937 rng(3);
  for (int k = 0; k < 2000; ++k) {
    const int32_t i = static_cast<int32_t>(rng() % t.size());
    ByteSet below;
    int32_t height = 0;
    // UTF-8 decoder state along the path from i (index = depth below i); -1 once invalid.
    std::vector<int> dec(t.max_depth + 2, 0), mid(t.max_depth + 2, path_state[i]);
    bool utf8_ok = true, mid_ok = path_state[i] > 0;
    for (int32_t j = i + 1; j < t.subtree_end[i]; ++j) {
      below.set(t.byte[j]);
      const int32_t k = t.depth[j] - t.depth[i];
      height = std::max<int32_t>(height, k);
      dec[k] = dec[k - 1] < 0 ? -1 : utf8_step(dec[k - 1], t.byte[j]);
      if (dec[k] < 0) utf8_ok = false;
      mid[k] = mid[k - 1] < 0 ? -1 : utf8_step(mid[k - 1], t.byte[j]);
      if (mid[k] < 0) mid_ok = false;
    }
    ASSERT_EQ(t.utf8_mid[i], mid_ok ? path_state[i] : 0) << i;
    ASSERT_TRUE(below == t.below[i]) << i;
    ASSERT_EQ(height, t.height[i]) << i;
    ASSERT_EQ(utf8_ok, t.utf8_below[i] != 0) << i;
    std::vector<uint32_t> a(vocab->mask_words(), 0), b(vocab->mask_words(), 0);
    set_subtree_tokens(*vocab, i, a.data());
    for (int32_t j = t.tok_begin[i]; j < t.tok_begin[t.subtree_end[i]]; ++j)
      b[t.token_ids[j] >> 5] |= uint32_t{1} << (t.token_ids[j] & 31);
    ASSERT_EQ(a, b) << i;
  }
  // Some node holds a dense mask, and it agrees with the token list (checked above for node 0).
  EXPECT_GE(t.dense[0], 0);
  std::vector<uint32_t> a(vocab->mask_words(), 0), b(vocab->mask_words(), 0);
  set_subtree_tokens(*vocab, 0, a.data());
  for (int32_t id = 0; id < vocab->vocab_size(); ++id)
    if (!vocab->token_bytes(id).empty() && !vocab->is_eog(id)) b[id >> 5] |= 1u << (id & 31);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace sgl::grammar
