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
//   sgl-bench model -m MODEL [--threads N] [--prefill 512] [--decode 128] [--input 32]
//                   [--batches 1,16,64] [--kv-dtype f16]
//       the bench_one_batch method on the CPU backend: one prefill of a --prefill-token prompt,
//       then for each batch size B, B sequences of --input tokens prefilled together and
//       --decode decode steps with all B in one batch; prints prefill tokens/s, decode tokens/s
//       per batch size (aggregate), the median step time, the measured DRAM read bandwidth and
//       the batch-1 decode limit it implies (weight bytes per step / bandwidth).
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

#include "backend/cpu/isa.h"
#include "backend/cpu_backend.h"
#include "model/gguf.h"
#include "models/loader.h"
#include "runtime/sampler.h"
#include "support/thread_pool.h"
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

// ---- model benchmarks (bench_one_batch method) -------------------------------------------------

struct ModelBenchResult {
  std::string name;
  int batch = 0, input_len = 0, steps = 0;
  double seconds = 0, tokens_per_s = 0, median_step_ms = 0;
};

// Deterministic pseudo-random prompt tokens (bench_serving's "(offset + i) % vocab" style with a
// hash so different sequences differ).
std::vector<int32_t> bench_tokens(int n, int seq, int32_t vocab) {
  std::vector<int32_t> t(n);
  uint64_t x = 0x9E3779B97F4A7C15ull * (seq + 1);
  for (int i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t[i] = static_cast<int32_t>(100 + x % static_cast<uint64_t>(vocab - 200));
  }
  return t;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Prefill of `batch` sequences of `input_len` tokens in one forward pass; then `steps` decode
// steps with all sequences in one batch. Returns {prefill, decode}.
sgl::Result<std::pair<ModelBenchResult, ModelBenchResult>> bench_one_batch(
    sgl::backend::Backend& be, int batch, int input_len, int steps, int32_t vocab) {
  std::vector<std::vector<int32_t>> slots(batch), toks(batch);
  int32_t next_slot = 0;
  for (int b = 0; b < batch; ++b) {
    toks[b] = bench_tokens(input_len, b, vocab);
    for (int i = 0; i < input_len + steps; ++i) slots[b].push_back(next_slot++);
  }
  if (next_slot > be.kv_capacity())
    return sgl::invalid_argument("KV pool too small for this benchmark: need " +
                                 std::to_string(next_slot) + " slots");
  sgl::backend::Logits logits;
  sgl::backend::ForwardBatch fb;
  for (int b = 0; b < batch; ++b)
    fb.add_sequence(toks[b].data(), input_len, 0, slots[b].data(), true);
  double t0 = now_s();
  SGL_RETURN_IF_ERROR(be.forward(fb, &logits));
  double t1 = now_s();
  ModelBenchResult pre{"prefill", batch, input_len, 1, t1 - t0, batch * input_len / (t1 - t0),
                       (t1 - t0) * 1e3};
  std::vector<double> step_s;
  std::vector<int32_t> cur(batch);
  for (int b = 0; b < batch; ++b) cur[b] = sgl::runtime::Sampler::argmax({logits.row(b), static_cast<size_t>(logits.n_vocab)});
  double d0 = now_s();
  for (int s = 0; s < steps; ++s) {
    fb.clear();
    for (int b = 0; b < batch; ++b)
      fb.add_sequence(&cur[b], 1, input_len + s, slots[b].data(), true);
    double a = now_s();
    SGL_RETURN_IF_ERROR(be.forward(fb, &logits));
    step_s.push_back(now_s() - a);
    for (int b = 0; b < batch; ++b)
      cur[b] = sgl::runtime::Sampler::argmax({logits.row(b), static_cast<size_t>(logits.n_vocab)});
  }
  double d1 = now_s();
  std::vector<double> sorted = step_s;
  std::sort(sorted.begin(), sorted.end());
  ModelBenchResult dec{"decode", batch, input_len, steps, d1 - d0, batch * steps / (d1 - d0),
                       sorted.empty() ? 0 : sorted[sorted.size() / 2] * 1e3};
  return std::make_pair(pre, dec);
}

// Measured DRAM read bandwidth (GB/s) with `threads` threads summing a buffer far larger than
// the caches; best of several passes.
double measure_read_bandwidth(sgl::ThreadPool& pool) {
  const size_t n = size_t{1} << 27;  // 512 MiB of floats
  std::vector<float> buf(n, 1.0f);
  std::vector<double> partial(pool.n_threads(), 0.0);
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const int tasks = pool.n_threads() * 8;
    double t0 = now_s();
    pool.parallel_for(tasks, [&](int task, int thread) {
      const size_t b = n / tasks * task, e = task + 1 == tasks ? n : n / tasks * (task + 1);
      float acc[16] = {};
      for (size_t i = b; i + 16 <= e; i += 16)
        for (int j = 0; j < 16; ++j) acc[j] += buf[i + j];
      double s = 0;
      for (float a : acc) s += a;
      partial[thread] += s;
    });
    double dt = now_s() - t0;
    best = std::max(best, n * sizeof(float) / dt / 1e9);
  }
  return best;
}

int run_model(int argc, char** argv) {
  auto args = parse_args(argc, argv, {"-m", "--threads", "--prefill", "--decode", "--batches",
                                      "--kv-dtype", "--input"});
  if (!args.is_ok()) return fail(args.status().message());
  const std::string* model = args->get("-m");
  if (!model) return fail("model: missing -m MODEL");
  auto int_opt = [&](const char* key, int def) {
    const std::string* v = args->get(key);
    return v ? std::atoi(v->c_str()) : def;
  };
  const int threads = int_opt("--threads", 0);
  const int prefill = int_opt("--prefill", 512);
  const int decode = int_opt("--decode", 128);
  const int input = int_opt("--input", 32);
  std::vector<int> batches;
  {
    std::string s = args->get("--batches") ? *args->get("--batches") : "1,16,64";
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) batches.push_back(std::atoi(item.c_str()));
  }
  if (prefill < 1 || decode < 1 || input < 1 || threads < 0) return fail("model: bad sizes");
  for (int b : batches)
    if (b < 1 || b > 4096) return fail("model: bad batch size");
  auto kv = sgl::backend::parse_kv_dtype(args->get("--kv-dtype") ? *args->get("--kv-dtype") : "f16");
  if (!kv.is_ok()) return fail(kv.status().message());
  auto loaded = sgl::models::load_model(*model);
  if (!loaded.is_ok()) return fail(loaded.status().to_string());
  const auto& m = **loaded;
  int max_b = *std::max_element(batches.begin(), batches.end());
  sgl::backend::CpuBackendOptions bo;
  bo.n_threads = threads;
  bo.kv_dtype = *kv;
  bo.kv_capacity = std::max<int64_t>(prefill, static_cast<int64_t>(max_b) * (input + decode)) + 16;
  auto be = sgl::backend::CpuBackend::create(m, bo);
  if (!be.is_ok()) return fail(be.status().to_string());
  const int32_t vocab = static_cast<int32_t>(m.config.n_vocab);

  nlohmann::json out;
  out["model"] = *model;
  out["threads"] = (*be)->n_threads();
  out["kv_dtype"] = std::string(sgl::backend::kv_dtype_name(*kv));
  out["isa"] = std::string(sgl::backend::cpu::isa_name(sgl::backend::cpu::current_isa()));
  // Warm-up (page in the weights, size the scratch buffers).
  {
    auto w = bench_one_batch(**be, 1, 64, 4, vocab);
    if (!w.is_ok()) return fail(w.status().to_string());
  }
  auto p = bench_one_batch(**be, 1, prefill, 1, vocab);
  if (!p.is_ok()) return fail(p.status().to_string());
  out["prefill"] = {{"tokens", prefill}, {"seconds", p->first.seconds},
                    {"tokens_per_s", p->first.tokens_per_s}};
  nlohmann::json dec = nlohmann::json::array();
  for (int b : batches) {
    auto r = bench_one_batch(**be, b, input, decode, vocab);
    if (!r.is_ok()) return fail(r.status().to_string());
    dec.push_back({{"batch", b}, {"input_len", input}, {"steps", decode},
                   {"seconds", r->second.seconds}, {"tokens_per_s", r->second.tokens_per_s},
                   {"median_step_ms", r->second.median_step_ms}});
  }
  out["decode"] = dec;
  // Bytes of weights read per decode step: every matrix once (the tied embedding is read as the
  // LM head; a single embedding row is negligible).
  uint64_t bytes = m.weights->total_bytes();
  if (!m.config.tied_embeddings) {
    auto e = m.weights->find("token_embd.weight");
    if (e.is_ok() && e->has_value()) bytes -= (*e)->n_bytes;
  }
  sgl::ThreadPool pool(threads);
  const double bw = measure_read_bandwidth(pool);
  out["weight_bytes_per_token"] = bytes;
  out["dram_read_gb_per_s"] = bw;
  out["decode_batch1_limit_tokens_per_s"] = bw * 1e9 / static_cast<double>(bytes);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

struct Command {
  const char* name;
  const char* usage;
  int (*run)(int argc, char** argv);  // receives the arguments after the subcommand
};

const Command kCommands[] = {
    {"tokenize", "tokenize -m MODEL -f FILE [--repeat N] [--special]", run_tokenize},
    {"model",
     "model -m MODEL [--threads N] [--prefill 512] [--decode 128] [--input 32] "
     "[--batches 1,16,64] [--kv-dtype f16]",
     run_model},
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
