// sgl-bench: micro-benchmarks of the library's parts, one subcommand each, printing one JSON object
// to stdout (errors to stderr, non-zero exit status).
//
//   sgl-bench tokenize -m MODEL -f FILE [--repeat N] [--special]
//       encodes FILE's bytes N times with MODEL's tokenizer (a GGUF file or a Hugging Face
//       directory) and prints {"bytes", "tokens", "repeat", "seconds", "seconds_min", "mb_per_s",
//       "tokens_per_s", "warm_..."}: bytes and tokens per pass, seconds the mean per pass, rates
//       from the mean; plain fields for cold passes (fresh thread, empty word cache), warm_*
//       for passes on a thread that already encoded the text.
//
// Subcommands are rows of kCommands; add one by writing a run function and a row.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/gguf.h"
#include "support/status.h"
#include "tokenizer/tokenizer.h"

namespace {

using sgl::Result;
using sgl::tokenizer::Tokenizer;

int fail(const std::string& msg) {
  std::fprintf(stderr, "sgl-bench: %s\n", msg.c_str());
  return 1;
}

// "--key value" options and "--flag" switches after the subcommand.
struct Args {
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::string> flags;

  const std::string* get(std::string_view key) const {
    for (const auto& [k, v] : options) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  bool has(std::string_view flag) const {
    return std::find(flags.begin(), flags.end(), flag) != flags.end();
  }
};

// Parses argv; `valued` lists the options that take a value.
Result<Args> parse_args(int argc, char** argv, const std::vector<std::string>& valued) {
  Args args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (std::find(valued.begin(), valued.end(), a) != valued.end()) {
      if (i + 1 >= argc) return sgl::invalid_argument(a + " needs a value");
      args.options.emplace_back(a, argv[++i]);
    } else if (a.rfind("-", 0) == 0) {
      args.flags.push_back(a);
    } else {
      return sgl::invalid_argument("unexpected argument '" + a + "'");
    }
  }
  return args;
}

Result<Tokenizer> load_tokenizer(const std::string& path) {
  if (std::filesystem::is_directory(path)) return Tokenizer::from_hf_files(path);
  SGL_ASSIGN_OR_RETURN(sgl::model::GgufFile gguf, sgl::model::GgufFile::open(path));
  return Tokenizer::from_gguf(gguf);
}

int run_tokenize(int argc, char** argv) {
  auto args = parse_args(argc, argv, {"-m", "--model", "-f", "--file", "--repeat"});
  if (!args.is_ok()) return fail(args.status().message());
  const std::string* model = args->get("-m") ? args->get("-m") : args->get("--model");
  const std::string* file = args->get("-f") ? args->get("-f") : args->get("--file");
  if (model == nullptr || file == nullptr) return fail("tokenize needs -m MODEL and -f FILE");
  long repeat = 10;
  if (const std::string* r = args->get("--repeat")) {
    char* end = nullptr;
    repeat = std::strtol(r->c_str(), &end, 10);
    if (end == r->c_str() || *end != '\0' || repeat < 1 || repeat > 1000000) {
      return fail("--repeat must be a positive integer");
    }
  }
  const bool special = args->has("--special");

  std::ifstream in(*file, std::ios::binary);
  if (!in) return fail("cannot open " + *file);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  auto tok = load_tokenizer(*model);
  if (!tok.is_ok()) return fail(tok.status().to_string());

  // The encoder keeps a per-thread cache of recent words, so two measurements: "cold" passes each
  // run on a fresh thread (empty cache, what one long prompt costs), "warm" passes run on a thread
  // that has already encoded the text (steady state of a long-lived worker thread).
  using Clock = std::chrono::steady_clock;
  const size_t n_tokens = tok->encode(text, false, special).size();
  struct Stats {
    double total = 0.0;
    double best = 1e300;
    bool deterministic = true;
  };
  auto timed_pass = [&](Stats& st) {
    std::vector<int32_t> ids;
    ids.reserve(n_tokens);
    const auto t0 = Clock::now();
    tok->encode(text, false, special, ids);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    st.total += s;
    st.best = std::min(st.best, s);
    st.deterministic = st.deterministic && ids.size() == n_tokens;
  };
  Stats cold, warm;
  for (long i = 0; i < repeat; ++i) std::thread([&] { timed_pass(cold); }).join();
  std::vector<int32_t> warmup;
  tok->encode(text, false, special, warmup);
  for (long i = 0; i < repeat; ++i) timed_pass(warm);
  if (!cold.deterministic || !warm.deterministic) return fail("tokenization is not deterministic");
  const double n = static_cast<double>(repeat);
  const double mean = cold.total / n;
  const double warm_mean = warm.total / n;
  const double mb = static_cast<double>(text.size()) / 1e6;
  nlohmann::json out = {
      {"bytes", text.size()},
      {"tokens", n_tokens},
      {"repeat", repeat},
      {"seconds", mean},
      {"seconds_min", cold.best},
      {"mb_per_s", mb / mean},
      {"tokens_per_s", static_cast<double>(n_tokens) / mean},
      {"warm_seconds", warm_mean},
      {"warm_seconds_min", warm.best},
      {"warm_mb_per_s", mb / warm_mean},
      {"warm_tokens_per_s", static_cast<double>(n_tokens) / warm_mean},
  };
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

struct Command {
  const char* name;
  const char* usage;
  int (*run)(int argc, char** argv);  // receives the arguments after the subcommand
};

const Command kCommands[] = {
    {"tokenize", "tokenize -m MODEL -f FILE [--repeat N] [--special]", run_tokenize},
};

int usage(FILE* out) {
  std::fprintf(out, "usage: sgl-bench COMMAND [options]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %s\n", c.usage);
  return out == stderr ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(stderr);
  const std::string_view cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") return usage(stdout);
  for (const Command& c : kCommands) {
    if (cmd == c.name) return c.run(argc - 2, argv + 2);
  }
  std::fprintf(stderr, "sgl-bench: unknown command '%s'\n", argv[1]);
  return usage(stderr);
}
