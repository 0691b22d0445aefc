// Grammar engine benchmark: compile time and per-token mask time on the default model's
// vocabulary (SmolLM2-135M, 49152 tokens).
//
// Build (after building the library into build-gram/):
//   cmake -S . -B build-gram -DCMAKE_BUILD_TYPE=Release && cmake --build build-gram --target sgl
//   g++ -O2 -march=native -std=c++20 -I src -I include bench/grammar_bench.cpp \
//       build-gram/libsgl.a -lpthread -o build-gram/grammar_bench
// Run:
//   build-gram/grammar_bench [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--runs N]
//   [--dump-vocab FILE] [--vocab FILE]   (token bytes + EOS ids, to run without the model file)
//
// For each grammar: compile p50/p99 (compile_grammar, no cache), then N decoding runs that sample
// uniformly from the masked vocabulary (finishing as soon as the grammar allows, half of the
// time) and time every fill_mask call. "cold" is the first run on a fresh CompiledGrammar (DFA
// states visited for the first time pay a trie walk), "warm" the later runs (per-state masks
// cached); the pushdown back end caches masks by configuration, so warm runs hit it too. "walk"
// times the trie walk of every DFA state of a fresh grammar (the cost of a first visit). Times are
// thread CPU time, so other processes on the machine inflate them little.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace sgl::grammar;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// CPU time of this thread: under contention from other processes it is the time the code ran.
double thread_cpu_us() {
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

}  // namespace

int main(int argc, char** argv) {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf", dump, vocab_file;
  int runs = 6;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--model") && i + 1 < argc)
      model = argv[++i];
    else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--dump-vocab") && i + 1 < argc)
      dump = argv[++i];
    else if (!std::strcmp(argv[i], "--vocab") && i + 1 < argc)
      vocab_file = argv[++i];
  }
  std::vector<std::string> tokens;
  std::vector<int32_t> eog;
  if (!vocab_file.empty()) {
    FILE* f = std::fopen(vocab_file.c_str(), "rb");
    if (!f) return 1;
    uint32_t n = 0, len = 0;
    if (std::fread(&n, 4, 1, f) != 1) return 1;
    for (uint32_t i = 0; i < n; ++i) {
      if (std::fread(&len, 4, 1, f) != 1) return 1;
      std::string t(len, '\0');
      if (len && std::fread(t.data(), 1, len, f) != len) return 1;
      tokens.push_back(std::move(t));
    }
    if (std::fread(&n, 4, 1, f) != 1) return 1;
    eog.resize(n);
    if (n && std::fread(eog.data(), 4, n, f) != n) return 1;
    std::fclose(f);
  } else {
    auto gguf = sgl::model::GgufFile::open(model);
    if (!gguf.is_ok()) {
      std::fprintf(stderr, "cannot open %s: %s\n", model.c_str(),
                   gguf.status().to_string().c_str());
      return 1;
    }
    auto tok = sgl::tokenizer::Tokenizer::from_gguf(*gguf);
    if (!tok.is_ok()) return 1;
    for (int32_t i = 0; i < tok->vocab_size(); ++i)
      tokens.emplace_back(tok->token_to_piece(i, false));
    eog = tok->eog_ids();
  }
  if (!dump.empty()) {
    FILE* f = std::fopen(dump.c_str(), "wb");
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
  auto t0 = Clock::now();
  auto vocab = TokenVocab::from_tokens(tokens, eog);
  std::printf("vocabulary: %d tokens, trie %d nodes, built in %.1f ms\n", vocab->vocab_size(),
              vocab->trie().size(), us_since(t0) / 1000);
  std::printf("%-40s %-4s %7s %9s %9s | %-5s %6s %9s %9s %9s\n", "grammar", "back", "states",
              "compile50", "compile99", "run", "masks", "mask p50", "mask p99", "mask max");
  for (const Case& c : cases()) {
    std::vector<double> compile_us;
    CompiledGrammarPtr g;
    for (int i = 0; i < 21; ++i) {
      double t = thread_cpu_us();
      auto r = compile_grammar(c.kind, c.text, vocab);
      compile_us.push_back(thread_cpu_us() - t);
      if (!r.is_ok()) {
        std::printf("%s: %s\n", c.name, r.status().to_string().c_str());
        return 1;
      }
      g = *r;
    }
    std::mt19937 rng(42);
    std::vector<double> cold, warm;
    std::vector<uint32_t> mask(vocab->mask_words());
    size_t tokens = 0;
    for (int run = 0; run < runs; ++run) {
      Matcher m(g);
      for (int step = 0; step < 300 && !m.is_terminated(); ++step) {
        double t = thread_cpu_us();
        m.fill_mask(mask);
        (run == 0 ? cold : warm).push_back(thread_cpu_us() - t);
        std::vector<int32_t> allowed;
        for (int32_t id = 0; id < vocab->vocab_size(); ++id)
          if ((mask[id >> 5] >> (id & 31)) & 1) allowed.push_back(id);
        int32_t pick =
            (m.can_end() && rng() % 2 == 0) ? vocab->eog_ids()[0] : allowed[rng() % allowed.size()];
        m.accept(pick);
        ++tokens;
      }
    }
    const char* back = g->is_dfa() ? "dfa" : "pda";
    std::printf("%-40s %-4s %7d %8.2fms %8.2fms | cold  %6zu %7.1fus %7.1fus %7.1fus\n", c.name,
                back, g->is_dfa() ? g->num_dfa_states() : 0, pct(compile_us, 0.5) / 1000,
                pct(compile_us, 0.99) / 1000, cold.size(), pct(cold, 0.5), pct(cold, 0.99),
                pct(cold, 1.0));
    std::printf("%-40s %-4s %7s %9s %9s | warm  %6zu %7.1fus %7.1fus %7.1fus\n", "", "", "", "", "",
                warm.size(), pct(warm, 0.5), pct(warm, 0.99), pct(warm, 1.0));
    if (g->is_dfa()) {
      // Cost of a first visit: the trie walk of every state of a fresh CompiledGrammar.
      auto fresh = *compile_grammar(c.kind, c.text, vocab);
      std::vector<double> walk;
      for (int32_t st = 0; st < fresh->num_dfa_states(); ++st) {
        double t = thread_cpu_us();
        fresh->dfa_state_mask(st);
        walk.push_back(thread_cpu_us() - t);
      }
      std::printf(
          "%-40s %-4s %7s %9s %9s | walk  %6zu %7.1fus %7.1fus %7.1fus  (per-state trie walk)\n",
          "", "", "", "", "", walk.size(), pct(walk, 0.5), pct(walk, 0.99), pct(walk, 1.0));
    }
  }
  return 0;
}
