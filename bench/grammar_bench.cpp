// Grammar engine benchmark: compile time and per-token mask time, on the default model's
// vocabulary (SmolLM2-135M, 49 152 tokens) and on a synthetic 128 256-token vocabulary (Llama-3's
// size) grown from it (see make_vocab_128k).
//
// Build and run (CMake target, not part of `all`):
//   cmake -S . -B build-gram -G Ninja -DCMAKE_BUILD_TYPE=Release
//   ninja -C build-gram grammar_bench
//   build-gram/bin/grammar_bench [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--runs N]
//       [--vocab FILE | --dump-vocab FILE] (token bytes + EOS ids, to run without the model)
//       [--corpus tests/data/grammar/schema_cases.json | --no-corpus] [--only-49k] [--plain]
//       [--diag] (the slowest DFA states of each named grammar)
//
// Every fill_mask call is timed twice: thread CPU time (CLOCK_THREAD_CPUTIME_ID: the time the
// code ran, little inflated when other processes share the cores) and wall time (steady_clock:
// includes preemption, so its p99 grows with machine load).
//
// For each named grammar: compile p50/p99 (compile_grammar, no cache); then N decoding runs that
// sample uniformly from the masked vocabulary (finishing as soon as the grammar allows, half of
// the time). "cold" = the first run on a fresh CompiledGrammar (DFA states and pushdown
// configurations seen for the first time are computed: first visits included), "warm" = later
// runs. "visit" = the mask computation of every DFA state of a fresh grammar (the first-visit
// cost of each state); with --plain also by the plain trie walk (the reference, no shortcuts).
// "corpus": the same over every schema of the corpus (default whitespace policy): compile p50/p99,
// and all cold-run mask times pooled.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "model/gguf.h"
#include "support/utf8.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace sgl::grammar;
using Clock = std::chrono::steady_clock;

double wall_us() {
  return std::chrono::duration<double, std::micro>(Clock::now().time_since_epoch()).count();
}

// CPU time of this thread.
double cpu_us() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

struct Times {
  std::vector<double> cpu, wall;
  void add(double c, double w) {
    cpu.push_back(c);
    wall.push_back(w);
  }
  void append(const Times& o) {
    cpu.insert(cpu.end(), o.cpu.begin(), o.cpu.end());
    wall.insert(wall.end(), o.wall.begin(), o.wall.end());
  }
};

void print_times(const char* label, const Times& t) {
  std::printf("    %-7s n=%-6zu cpu p50 %7.1f  p99 %7.1f  max %8.1f us | wall p50 %7.1f  p99 %7.1f  "
              "max %8.1f us\n",
              label, t.cpu.size(), pct(t.cpu, 0.5), pct(t.cpu, 0.99), pct(t.cpu, 1.0),
              pct(t.wall, 0.5), pct(t.wall, 0.99), pct(t.wall, 1.0));
}

struct Case {
  const char* name;
  GrammarKind kind;
  std::string text;
};

std::vector<Case> cases() {
  return {
      {"schema: person (flat object)", GrammarKind::kJsonSchema,
       R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150},"email":{"type":"string","format":"email"},"tags":{"type":"array","items":{"type":"string"},"maxItems":5},"active":{"type":"boolean"}},"required":["name","age"]})"},
      {"schema: order (nested, enums, numbers)", GrammarKind::kJsonSchema,
       R"({"type":"object","properties":{"id":{"type":"string","format":"uuid"},"date":{"type":"string","format":"date-time"},"status":{"enum":["new","paid","shipped","cancelled"]},"items":{"type":"array","minItems":1,"items":{"type":"object","properties":{"sku":{"type":"string","pattern":"^[A-Z]{3}-\\d{4}$"},"qty":{"type":"integer","minimum":1,"maximum":999},"price":{"type":"number","minimum":0}},"required":["sku","qty","price"]}},"note":{"anyOf":[{"type":"string","maxLength":40},{"type":"null"}]}},"required":["id","date","status","items"]})"},
      {"schema: recursive tree ($ref)", GrammarKind::kJsonSchema,
       R"({"$defs":{"node":{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["name"]}},"$ref":"#/$defs/node"})"},
      {"regex: phone/email line", GrammarKind::kRegex,
       R"(\(\d{3}\) \d{3}-\d{4}|[a-z0-9._]+@[a-z0-9-]+\.(com|org|net))"},
      {"gbnf: JSON", GrammarKind::kGbnf,
       "root ::= value\nvalue ::= object | array | string | number | \"true\" | \"false\" | "
       "\"null\"\n"
       "object ::= \"{\" ws ( string ws \":\" ws value ( ws \",\" ws string ws \":\" ws value )* "
       ")? ws \"}\"\n"
       "array ::= \"[\" ws ( value ( ws \",\" ws value )* )? ws \"]\"\n"
       "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" "
       "[0-9a-fA-F]{4} ) )* \"\\\"\"\n"
       "number ::= \"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"
       "ws ::= [ \\t\\n]*\n"},
  };
}

// A 128 256-token byte-level BPE-like vocabulary: the 49k tokens (same ids, same EOS) plus, in
// order until the size is reached: 3-digit groups "000".."999"; whitespace runs (spaces, tabs,
// newline + indentation); punctuation runs of 2-4 characters; capitalised / space-prefixed
// variants of the existing alphabetic tokens; multilingual pieces (Cyrillic, Greek, accented
// Latin and Arabic words from random syllables, CJK characters and pairs, Hangul syllables,
// Devanagari; with and without a leading space); and merges of a space-prefixed word token with a
// lowercase continuation token (longer words). Deterministic (fixed seed).
std::vector<std::string> make_vocab_128k(const std::vector<std::string>& base) {
  const size_t target = 128256;
  std::vector<std::string> out = base;
  std::set<std::string> seen(base.begin(), base.end());
  auto add = [&](const std::string& t) {
    if (out.size() < target && !t.empty() && seen.insert(t).second) out.push_back(t);
  };
  std::mt19937 rng(128);
  char buf[8];
  for (int n = 0; n < 1000; ++n) {
    std::snprintf(buf, sizeof buf, "%03d", n);
    add(buf);
  }
  for (int n = 1; n <= 32; ++n) {
    add(std::string(n, ' '));
    add("\n" + std::string(n, ' '));
    add(std::string(1 + n / 4, '\t'));
    add("\n" + std::string(1 + n / 4, '\t'));
  }
  const std::string punct = "{}[]()\":,.;!?-_=*#/\\<>|'`~+&%$@^";
  for (int k = 0; k < 6000; ++k) {
    std::string p;
    for (int len = 2 + rng() % 3; len > 0; --len) p += punct[rng() % punct.size()];
    add(p);
  }
  std::vector<std::string> words, spaced, lower;
  for (const std::string& t : base) {
    bool alpha = t.size() >= 2;
    size_t start = (!t.empty() && t[0] == ' ') ? 1 : 0;
    for (size_t i = start; i < t.size() && alpha; ++i) alpha = std::isalpha(static_cast<uint8_t>(t[i]));
    if (!alpha || t.size() - start < 2) continue;
    words.push_back(t.substr(start));
    if (start) spaced.push_back(t);
    bool low = true;
    for (size_t i = start; i < t.size(); ++i) low = low && std::islower(static_cast<uint8_t>(t[i]));
    if (!start && low && t.size() <= 6) lower.push_back(t);
  }
  if (lower.empty()) lower.push_back("ing");
  if (spaced.empty()) spaced.push_back(" the");
  for (const std::string& w : words) {
    std::string cap = w;
    cap[0] = static_cast<char>(std::toupper(static_cast<uint8_t>(cap[0])));
    add(" " + w);
    add(" " + cap);
    if (out.size() >= 49152 + 24000) break;
  }
  // Multilingual pieces: syllables per script.
  struct Script {
    uint32_t lo, hi;  // code-point range to draw letters from
    int min_len, max_len;
  };
  const Script scripts[] = {
      {0x0430, 0x044F, 2, 8},  // Cyrillic lowercase
      {0x03B1, 0x03C9, 2, 7},  // Greek lowercase
      {0x00E0, 0x00FF, 1, 1},  // accented Latin, mixed into ASCII words below
      {0x0627, 0x064A, 2, 6},  // Arabic
      {0x4E00, 0x9FFF, 1, 2},  // CJK
      {0xAC00, 0xD7A3, 1, 2},  // Hangul syllables
      {0x0905, 0x0939, 2, 5},  // Devanagari
      {0x3041, 0x3096, 1, 3},  // Hiragana
  };
  const size_t multilingual_end = out.size() + 32000;
  while (out.size() < multilingual_end && out.size() < target) {
    const Script& sc = scripts[rng() % (sizeof scripts / sizeof scripts[0])];
    std::string t = rng() % 2 ? " " : "";
    if (sc.lo == 0x00E0) {
      const std::string& w = lower[rng() % lower.size()];
      size_t cut = rng() % (w.size() + 1);
      t += w.substr(0, cut);
      sgl::utf8::append(t, sc.lo + rng() % (sc.hi - sc.lo + 1));
      t += w.substr(cut);
    } else {
      int len = sc.min_len + static_cast<int>(rng() % (sc.max_len - sc.min_len + 1));
      for (int i = 0; i < len; ++i) sgl::utf8::append(t, sc.lo + rng() % (sc.hi - sc.lo + 1));
    }
    add(t);
  }
  // Longer words: a space-prefixed word + a lowercase continuation.
  while (out.size() < target) add(spaced[rng() % spaced.size()] + lower[rng() % lower.size()]);
  return out;
}

// Times fill_mask over `runs` sampled decoding runs on `g`; the first run goes to `cold`.
void decode_runs(const CompiledGrammarPtr& g, int runs, std::mt19937& rng, Times* cold,
                 Times* warm) {
  const TokenVocab& vocab = g->vocab();
  std::vector<uint32_t> mask(vocab.mask_words());
  std::vector<int32_t> allowed;
  for (int run = 0; run < runs; ++run) {
    Matcher m(g);
    for (int step = 0; step < 300 && !m.is_terminated(); ++step) {
      double w0 = wall_us(), c0 = cpu_us();
      m.fill_mask(mask);
      double c1 = cpu_us(), w1 = wall_us();
      (run == 0 ? cold : warm)->add(c1 - c0, w1 - w0);
      allowed.clear();
      for (int32_t id = 0; id < vocab.vocab_size(); ++id)
        if ((mask[id >> 5] >> (id & 31)) & 1) allowed.push_back(id);
      int32_t pick =
          (m.can_end() && rng() % 2 == 0) ? vocab.eog_ids()[0] : allowed[rng() % allowed.size()];
      m.accept(pick);
    }
  }
}

// The mask computation of every DFA state of a fresh grammar (fast path; plain walk if asked).
void visit_all_states(GrammarKind kind, const std::string& text,
                      const std::shared_ptr<const TokenVocab>& vocab, bool plain, Times* fast_t,
                      Times* plain_t, bool diag = false) {
  auto g = *compile_grammar(kind, text, vocab);
  if (!g->is_dfa()) return;
  std::vector<uint32_t> mask(vocab->mask_words());
  std::vector<std::pair<double, int32_t>> worst;
  for (int32_t s = 0; s < g->num_dfa_states(); ++s) {
    double w0 = wall_us(), c0 = cpu_us();
    g->compute_dfa_mask(s, mask.data(), true);
    fast_t->add(cpu_us() - c0, wall_us() - w0);
    worst.push_back({fast_t->cpu.back(), s});
    if (plain) {
      w0 = wall_us(), c0 = cpu_us();
      g->compute_dfa_mask(s, mask.data(), false);
      plain_t->add(cpu_us() - c0, wall_us() - w0);
    }
  }
  if (!diag) return;
  // The slowest states: allowed tokens, whether the dominant successor loops, whether non-ASCII
  // characters follow it, how many bytes lead there.
  std::sort(worst.rbegin(), worst.rend());
  for (size_t i = 0; i < worst.size() && i < 4; ++i) {
    const int32_t s = worst[i].second;
    g->compute_dfa_mask(s, mask.data(), true);
    int allowed = 0;
    for (uint32_t w : mask) allowed += __builtin_popcount(w);
    const double c0 = cpu_us();
    g->compute_dfa_mask(s, mask.data(), false);
    const double plain_us = cpu_us() - c0;
    std::printf("      slow state %d: %.1f us (plain walk %.1f us), %d tokens allowed, dom %s, "
                "chars->dom %d, %d dom bytes, run %d\n",
                s, worst[i].first, plain_us, allowed, g->dfa_dom_next()[s] == s ? "self" : "other",
                g->dfa_char_to_dom()[s], g->dfa_dom_bytes()[s].count(), g->dfa_run_len()[s]);
  }
}

void bench_vocab(const char* label, const std::vector<std::string>& tokens,
                 const std::vector<int32_t>& eog, int runs, bool plain, bool diag,
                 const std::vector<std::string>& corpus) {
  double c0 = cpu_us();
  auto vocab = TokenVocab::from_tokens(tokens, eog);
  std::printf("\n=== %s: %d tokens, trie %d nodes, %zu dense subtree masks, built in %.1f ms CPU\n",
              label, vocab->vocab_size(), vocab->trie().size(),
              vocab->trie().dense_masks.size() / vocab->mask_words(), (cpu_us() - c0) / 1000);
  for (const Case& c : cases()) {
    std::vector<double> compile_us;
    CompiledGrammarPtr g;
    for (int i = 0; i < 21; ++i) {
      double t = cpu_us();
      auto r = compile_grammar(c.kind, c.text, vocab);
      compile_us.push_back(cpu_us() - t);
      if (!r.is_ok()) {
        std::printf("%s: %s\n", c.name, r.status().to_string().c_str());
        return;
      }
      g = *r;
    }
    std::printf("%s [%s, %d DFA states]: compile cpu p50 %.2f ms p99 %.2f ms\n", c.name,
                g->is_dfa() ? "dfa" : "pda", g->is_dfa() ? g->num_dfa_states() : 0,
                pct(compile_us, 0.5) / 1000, pct(compile_us, 0.99) / 1000);
    std::mt19937 rng(42);
    Times cold, warm;
    decode_runs(g, runs, rng, &cold, &warm);
    print_times("cold", cold);
    print_times("warm", warm);
    if (g->is_dfa()) {
      Times fast_t, plain_t;
      visit_all_states(c.kind, c.text, vocab, plain, &fast_t, &plain_t, diag);
      print_times("visit", fast_t);
      if (plain) print_times("plain", plain_t);
    }
  }
  if (corpus.empty()) return;
  std::vector<double> compile_us;
  std::vector<std::pair<double, std::string>> slowest;
  Times cold, warm, visit, visit_plain;
  size_t n_pda = 0;
  std::mt19937 rng(43);
  for (const std::string& schema : corpus) {
    double t = cpu_us();
    auto r = compile_grammar(GrammarKind::kJsonSchema, schema, vocab);
    compile_us.push_back(cpu_us() - t);
    slowest.push_back({compile_us.back(), schema});
    if (!r.is_ok()) {
      std::printf("corpus schema failed: %s\n", r.status().to_string().c_str());
      continue;
    }
    if (!(*r)->is_dfa()) ++n_pda;
    decode_runs(*r, 2, rng, &cold, &warm);
    visit_all_states(GrammarKind::kJsonSchema, schema, vocab, plain, &visit, &visit_plain);
  }
  std::printf("corpus: %zu schemas (%zu pushdown): compile cpu p50 %.2f ms p99 %.2f ms max %.2f ms\n",
              corpus.size(), n_pda, pct(compile_us, 0.5) / 1000, pct(compile_us, 0.99) / 1000,
              pct(compile_us, 1.0) / 1000);
  std::sort(slowest.rbegin(), slowest.rend());
  for (size_t i = 0; i < slowest.size() && i < 3; ++i)
    std::printf("    slowest compile %.2f ms: %.150s\n", slowest[i].first / 1000,
                slowest[i].second.c_str());
  print_times("cold", cold);
  print_times("warm", warm);
  print_times("visit", visit);
  if (plain) print_times("plain", visit_plain);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::string(SGL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string corpus_path = std::string(SGL_SOURCE_DIR) + "/tests/data/grammar/schema_cases.json";
  std::string dump, vocab_file;
  int runs = 6;
  bool only_49k = false, plain = false, diag = false, no_corpus = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--model") && i + 1 < argc)
      model = argv[++i];
    else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--dump-vocab") && i + 1 < argc)
      dump = argv[++i];
    else if (!std::strcmp(argv[i], "--vocab") && i + 1 < argc)
      vocab_file = argv[++i];
    else if (!std::strcmp(argv[i], "--corpus") && i + 1 < argc)
      corpus_path = argv[++i];
    else if (!std::strcmp(argv[i], "--only-49k"))
      only_49k = true;
    else if (!std::strcmp(argv[i], "--plain"))
      plain = true;
    else if (!std::strcmp(argv[i], "--diag"))
      diag = true;
    else if (!std::strcmp(argv[i], "--no-corpus"))
      no_corpus = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  std::vector<std::string> tokens;
  std::vector<int32_t> eog;
  if (!vocab_file.empty()) {
    FILE* f = std::fopen(vocab_file.c_str(), "rb");
    if (!f) {
      std::fprintf(stderr, "cannot open %s\n", vocab_file.c_str());
      return 1;
    }
    uint32_t n = 0, len = 0;
    bool ok = std::fread(&n, 4, 1, f) == 1;
    for (uint32_t i = 0; ok && i < n; ++i) {
      ok = std::fread(&len, 4, 1, f) == 1 && len < (1u << 20);
      std::string t(ok ? len : 0, '\0');
      ok = ok && (len == 0 || std::fread(t.data(), 1, len, f) == len);
      tokens.push_back(std::move(t));
    }
    ok = ok && std::fread(&n, 4, 1, f) == 1 && n < (1u << 20);
    if (ok) {
      eog.resize(n);
      ok = n == 0 || std::fread(eog.data(), 4, n, f) == n;
    }
    std::fclose(f);
    if (!ok) {
      std::fprintf(stderr, "%s: truncated or malformed vocabulary file\n", vocab_file.c_str());
      return 1;
    }
  } else {
    auto gguf = sgl::model::GgufFile::open(model);
    if (!gguf.is_ok()) {
      std::fprintf(stderr, "cannot open %s: %s\n", model.c_str(),
                   gguf.status().to_string().c_str());
      return 1;
    }
    auto tok = sgl::tokenizer::Tokenizer::from_gguf(*gguf);
    if (!tok.is_ok()) {
      std::fprintf(stderr, "tokenizer: %s\n", tok.status().to_string().c_str());
      return 1;
    }
    for (int32_t i = 0; i < tok->vocab_size(); ++i)
      tokens.emplace_back(tok->token_to_piece(i, false));
    eog = tok->eog_ids();
  }
  if (eog.empty()) {
    std::fprintf(stderr, "the vocabulary has no end-of-generation token\n");
    return 1;
  }
  if (!dump.empty()) {
    FILE* f = std::fopen(dump.c_str(), "wb");
    if (!f) return 1;
    uint32_t n = static_cast<uint32_t>(tokens.size());
    std::fwrite(&n, 4, 1, f);
    for (const std::string& t : tokens) {
      uint32_t len = static_cast<uint32_t>(t.size());
      std::fwrite(&len, 4, 1, f);
      std::fwrite(t.data(), 1, len, f);
    }
    n = static_cast<uint32_t>(eog.size());
    std::fwrite(&n, 4, 1, f);
    std::fwrite(eog.data(), 4, n, f);
    std::fclose(f);
  }
  std::vector<std::string> corpus;
  if (no_corpus) {
  } else if (FILE* f = std::fopen(corpus_path.c_str(), "rb")) {
    std::string text;
    char buf[65536];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
    std::fclose(f);
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_discarded() && j.contains("cases"))
      for (const auto& c : j["cases"]) corpus.push_back(c["schema"].get<std::string>());
  } else {
    std::fprintf(stderr, "no corpus at %s: corpus rows skipped\n", corpus_path.c_str());
  }
  std::printf("runs per grammar: %d; times: thread CPU (CLOCK_THREAD_CPUTIME_ID) and wall\n", runs);
  bench_vocab("default model vocabulary", tokens, eog, runs, plain, diag, corpus);
  if (!only_49k)
    bench_vocab("synthetic 128k vocabulary", make_vocab_128k(tokens), eog, runs, plain, diag,
                corpus);
  return 0;
}
