// sgl-bench: benchmarks of the library's parts and of the runtime's workloads, one subcommand each,
// printing one JSON object to stdout (the runtime workloads print text unless --json; errors to
// stderr, non-zero exit status).
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
//       --device cuda runs it on the GPU (CUDA builds); --load-format dummy takes -m as a Hugging
//       Face config.json (or its directory) and random weights of that shape; the CUDA output
//       adds the card, its measured copy bandwidth and GEMM rate, and the batch-1 floor
//       (weight bytes / bandwidth). --mem-fraction-static sizes the GPU KV pool. --tp-size N
//       (cuda) splits the model over N GPUs (tensor parallelism through NCCL). --dtype
//       auto|bfloat16|float16 (cuda) picks the weights' type on the GPU (SGLang's --dtype).
//
//   sgl-bench logits -m MODEL --ids IDS --out FILE [--device D] [--split N] [--decode-from N]
//                    [--dtype auto]
//       logits of every position of IDS (prefill chunks, then one token per pass) as raw f32.
//
//   sgl-bench cuda-kernels [--prefill-lens 4096,8192,16384] [--decode-batch 64]
//       [--decode-len 4096] [--decode-shapes 1x1024,64x4096,...]: copy bandwidth, GEMM rate and
//       attention kernels on the GPU; decode attention also at each batch x context of
//       --decode-shapes ("" for none), with the planner's and the CUDA-graph path's split counts,
//       by the default and the CUDA-core kernel (and with an fp8_e4m3 pool by the default), and
//       at each split count of --decode-splits.
//
//   sgl-bench shared-prefix [-m MODEL] [--groups 8] [--per-group 16] [--system-len 1024]
//                           [--question-len 64] [--output-len 32] [RUNTIME OPTIONS]
//       SGLang's generated-shared-prefix workload through the in-process engine: G groups x P
//       requests, each group sharing one S-token system prompt, each request adding its own
//       Q-token question; all submitted at once (group by group), greedy, ignore_eos, O output
//       tokens each. Prints requests, prompt / output / cached tokens, wall time, request and
//       token throughput, cache hit rate (sum cached_tokens / sum prompt_tokens), latency and the
//       scheduler's step time outside the forward pass.
//
//   sgl-bench multi-turn [-m MODEL] [--clients 16] [--turns 4] [--system-len 256]
//                        [--question-len 256] [--output-len 32] [RUNTIME OPTIONS]
//       C concurrent conversations of T turns: turn t resends the whole history (the first
//       S-token context, earlier questions and the model's answers) plus a new Q-token question,
//       after turn t-1 finished. Prints the same figures as shared-prefix.
//
//   sgl-bench offline [--num-prompts 1000] [--input-len 1024] [--output-len 32] [RUNTIME OPTIONS]
//       SGLang's bench_offline_throughput (random dataset): N prompts of I random token ids, all
//       submitted at once, O output tokens each; the KV pool is the backend's default size.
//       E.g. the Llama-3.1-8B shape on a GPU: -m tests/data/configs/llama-3.1-8b.json
//       --load-format dummy --tokenizer-path tests/data/tokenizer/hf_llama3 --device cuda
//       --output-len 1024 --max-running-requests 512 --chunked-prefill-size 8192.
//
//   RUNTIME OPTIONS: [--threads 2] [--max-running-requests 64] [--max-total-tokens N (default:
//       max running requests x the longest sequence)] [--disable-radix-cache]
//       [--disable-overlap-schedule] [--seed 1]
//       [--json] [--dump-prompts FILE (the prompts' token ids as JSON)] [--prompts-only (dump
//       and exit without running)] [--device cpu|cuda (the engine's backend)] [--load-format
//       auto|dummy] [--tokenizer-path PATH (dummy)] [--mem-fraction-static 0.85]
//       [--chunked-prefill-size 512] [--kv-dtype f16|bf16|fp8_e4m3|fp8_e5m2 (fp8: cuda)]
//       [--dtype auto|bfloat16|float16 (cuda)] [--tp-size 1]. MODEL defaults to
//       models/SmolLM2-135M-Instruct.Q4_1.gguf. Prompts are deterministic random English-word text
//       tokenized with MODEL's tokenizer.
//
// Subcommands are rows of kCommands; add one by writing a run function and a row.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backend/cpu/isa.h"
#include "backend/cpu_backend.h"
#include "backend/factory.h"
#ifdef SGL_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/microbench.h"
#include "backend/cuda/tp_backend.h"
#endif
#include "model/gguf.h"
#include "models/loader.h"
#include "runtime/sampler.h"
#include "sgl/engine.h"
#include "support/status.h"
#include "support/thread_pool.h"
#include "tokenizer/tokenizer.h"

namespace {

using sgl::Result;
using sgl::Status;
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

// One forward pass returning the greedy token of every logit row. The CUDA backend computes the
// argmax on the GPU (no logits copied); other backends copy logits and take it on the host.
sgl::Status greedy_forward(sgl::backend::Backend& be, const sgl::backend::ForwardBatch& fb,
                           sgl::backend::Logits* logits, std::vector<int32_t>* next) {
#ifdef SGL_WITH_CUDA
  if (auto* cb = dynamic_cast<sgl::backend::CudaBackend*>(&be)) return cb->forward_greedy(fb, next);
  if (auto* tp = dynamic_cast<sgl::backend::TpCudaBackend*>(&be))
    return tp->forward_greedy(fb, next);
#endif
  SGL_RETURN_IF_ERROR(be.forward(fb, logits));
  next->resize(logits->n_rows);
  for (int r = 0; r < logits->n_rows; ++r)
    (*next)[r] =
        sgl::runtime::Sampler::argmax({logits->row(r), static_cast<size_t>(logits->n_vocab)});
  return sgl::Status::ok();
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
  std::vector<int32_t> cur(batch);
  double t0 = now_s();
  SGL_RETURN_IF_ERROR(greedy_forward(be, fb, &logits, &cur));
  double t1 = now_s();
  ModelBenchResult pre{"prefill",      batch, input_len, 1, t1 - t0, batch * input_len / (t1 - t0),
                       (t1 - t0) * 1e3};
  std::vector<double> step_s;
  double d0 = now_s();
  for (int s = 0; s < steps; ++s) {
    fb.clear();
    for (int b = 0; b < batch; ++b)
      fb.add_sequence(&cur[b], 1, input_len + s, slots[b].data(), true);
    double a = now_s();
    SGL_RETURN_IF_ERROR(greedy_forward(be, fb, &logits, &cur));
    step_s.push_back(now_s() - a);
  }
  double d1 = now_s();
  std::vector<double> sorted = step_s;
  std::sort(sorted.begin(), sorted.end());
  ModelBenchResult dec{"decode",
                       batch,
                       input_len,
                       steps,
                       d1 - d0,
                       batch * steps / (d1 - d0),
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
  auto args =
      parse_args(argc, argv,
                 {"-m", "--threads", "--prefill", "--decode", "--batches", "--kv-dtype", "--input",
                  "--device", "--load-format", "--mem-fraction-static", "--tp-size", "--dtype"});
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
  const int tp_size = int_opt("--tp-size", 1);
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
  auto kv =
      sgl::backend::parse_kv_dtype(args->get("--kv-dtype") ? *args->get("--kv-dtype") : "f16");
  if (!kv.is_ok()) return fail(kv.status().message());
  auto dtype =
      sgl::backend::parse_weight_dtype(args->get("--dtype") ? *args->get("--dtype") : "auto");
  if (!dtype.is_ok()) return fail(dtype.status().message());
  const std::string device = args->get("--device") ? *args->get("--device") : "cpu";
  const std::string format = args->get("--load-format") ? *args->get("--load-format") : "auto";
  if (format != "auto" && format != "dummy") return fail("--load-format must be auto or dummy");
  const bool dummy = format == "dummy";
  const double mem_fraction =
      args->get("--mem-fraction-static") ? std::atof(args->get("--mem-fraction-static")->c_str())
                                         : 0.85;
  // A real model, or (dummy) only its Hugging Face config.json: a file, or a directory holding it.
  std::unique_ptr<sgl::models::LoadedModel> loaded;
  sgl::model::ModelConfig config;
  if (dummy) {
    std::string cfg = *model;
    if (std::filesystem::is_directory(cfg)) cfg += "/config.json";
    auto c = sgl::model::ModelConfig::from_hf_config_file(cfg);
    if (!c.is_ok()) return fail(c.status().to_string());
    config = *c;
  } else {
    auto l = sgl::models::load_model(*model);
    if (!l.is_ok()) return fail(l.status().to_string());
    loaded = std::move(*l);
    config = loaded->config;
  }
  int max_b = *std::max_element(batches.begin(), batches.end());
  sgl::backend::BackendOptions bo;
  bo.device = device;
  bo.n_threads = threads;
  bo.kv_dtype = *kv;
  bo.dtype = *dtype;
  bo.mem_fraction_static = mem_fraction;
  bo.tp_size = tp_size;
  // The CPU pool is sized for the benchmark (the warm-up below needs 64 + 4 slots); the CUDA pool
  // by --mem-fraction-static.
  if (device == "cpu")
    bo.kv_capacity =
        std::max<int64_t>({prefill, static_cast<int64_t>(max_b) * (input + decode), 68}) + 16;
  auto be = dummy ? sgl::backend::create_dummy_backend(config, bo)
                  : sgl::backend::create_backend(*loaded, bo);
  if (!be.is_ok()) return fail(be.status().to_string());
  const int32_t vocab = static_cast<int32_t>(config.n_vocab);

  nlohmann::json out;
  out["model"] = *model;
  out["device"] = device;
  out["load_format"] = format;
  out["kv_dtype"] = std::string(sgl::backend::kv_dtype_name(*kv));
  out["kv_capacity"] = (*be)->kv_capacity();
  out["dtype"] = std::string(sgl::backend::weight_dtype_name(*dtype));
  out["tp_size"] = tp_size;
  if (auto* cpu = dynamic_cast<sgl::backend::CpuBackend*>(be->get())) {
    out["threads"] = cpu->n_threads();
    out["isa"] = std::string(sgl::backend::cpu::isa_name(sgl::backend::cpu::current_isa()));
  }
  // Warm-up (page in the weights, size the scratch buffers).
  {
    auto w = bench_one_batch(**be, 1, 64, 4, vocab);
    if (!w.is_ok()) return fail(w.status().to_string());
  }
  auto p = bench_one_batch(**be, 1, prefill, 1, vocab);
  if (!p.is_ok()) return fail(p.status().to_string());
  out["prefill"] = {
      {"tokens", prefill}, {"seconds", p->first.seconds}, {"tokens_per_s", p->first.tokens_per_s}};
  nlohmann::json dec = nlohmann::json::array();
  for (int b : batches) {
    auto r = bench_one_batch(**be, b, input, decode, vocab);
    if (!r.is_ok()) return fail(r.status().to_string());
    dec.push_back({{"batch", b},
                   {"input_len", input},
                   {"steps", decode},
                   {"seconds", r->second.seconds},
                   {"tokens_per_s", r->second.tokens_per_s},
                   {"median_step_ms", r->second.median_step_ms}});
  }
  out["decode"] = dec;
#ifdef SGL_WITH_CUDA
  const sgl::backend::CudaBackend* cb = dynamic_cast<sgl::backend::CudaBackend*>(be->get());
  if (auto* tp = dynamic_cast<sgl::backend::TpCudaBackend*>(be->get())) cb = &tp->rank(0);
  if (cb != nullptr) {
    // Bytes read per decode step: every (bf16 or f16) matrix once, less the embedding table (one
    // row is read) unless it is also the LM head. Beside it, the card's measured copy bandwidth and
    // GEMM rate (docs/cuda.md asks for both beside every figure). With --tp-size: rank 0's
    // (each GPU reads its shard and the replicated embedding, norms and LM head).
    const auto& c = cb->config();
    uint64_t bytes = cb->weight_bytes();
    if (!c.tied_embeddings) bytes -= uint64_t{c.n_vocab} * c.n_embd * 2;
    out["gpu"] = cb->device_name();
    out["dtype"] = std::string(sgl::backend::weight_dtype_name(cb->weight_dtype()));
    out["kv_bytes"] = cb->kv_bytes();
    out["weight_bytes_per_token"] = bytes;
    auto copy = sgl::backend::cuda::bench_copy(0, size_t{2} << 30);
    auto gemm = sgl::backend::cuda::bench_gemm(0, 8192, 8192, 8192);
    if (copy.is_ok()) {
      const double bw = (*copy)["gb_per_s"].get<double>();
      out["hbm_copy_gb_per_s"] = bw;
      out["decode_batch1_floor_ms"] = static_cast<double>(bytes) / (bw * 1e9) * 1e3;
    }
    if (gemm.is_ok()) out["gemm_bf16_8192_tflop_per_s"] = (*gemm)["tflop_per_s"];
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
#endif
  uint64_t bytes = 0;
  if (loaded) {
    // Bytes of weights read per decode step: every matrix once (the tied embedding is read as
    // the LM head; a single embedding row is negligible).
    const auto& m = *loaded;
    bytes = m.weights->total_bytes();
    if (!m.config.tied_embeddings) {
      auto e = m.weights->find("token_embd.weight");
      if (e.is_ok() && e->has_value()) bytes -= (*e)->n_bytes;
    }
  }
  sgl::ThreadPool pool(threads);
  const double bw = measure_read_bandwidth(pool);
  out["weight_bytes_per_token"] = bytes;
  out["dram_read_gb_per_s"] = bw;
  out["decode_batch1_limit_tokens_per_s"] = bw * 1e9 / static_cast<double>(bytes);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

// ---- runtime workloads (the in-process engine, end to end) -------------------------------------
//
// Prompts are deterministic random text of common English words, tokenized with the model's
// tokenizer and cut to an exact token count; the token ids are what the engine receives, and
// --dump-prompts writes them so a peer (bench/runtime_bench.py drives llama-server) gets the very
// same prompts. Requests are greedy with ignore_eos, so each outputs exactly --output-len tokens.

constexpr const char* kWords[] = {
    "the",        "of",        "and",       "to",        "in",          "a",         "is",
    "that",       "for",       "it",        "as",        "was",         "with",      "be",
    "by",         "on",        "not",       "he",        "this",        "are",       "or",
    "his",        "from",      "at",        "which",     "but",         "have",      "an",
    "had",        "they",      "you",       "were",      "their",       "one",       "all",
    "we",         "can",       "her",       "has",       "there",       "been",      "if",
    "more",       "when",      "will",      "would",     "who",         "so",        "no",
    "time",       "people",    "year",      "way",       "day",         "man",       "thing",
    "woman",      "life",      "child",     "world",     "school",      "state",     "family",
    "student",    "group",     "country",   "problem",   "hand",        "part",      "place",
    "case",       "week",      "company",   "system",    "program",     "question",  "work",
    "government", "number",    "night",     "point",     "home",        "water",     "room",
    "mother",     "area",      "money",     "story",     "fact",        "month",     "lot",
    "right",      "study",     "book",      "eye",       "job",         "word",      "business",
    "issue",      "side",      "kind",      "head",      "house",       "service",   "friend",
    "father",     "power",     "hour",      "game",      "line",        "end",       "member",
    "law",        "car",       "city",      "community", "name",        "president", "team",
    "minute",     "idea",      "kid",       "body",      "information", "back",      "parent",
    "face",       "others",    "level",     "office",    "door",        "health",    "person",
    "art",        "war",       "history",   "party",     "result",      "change",    "morning",
    "reason",     "research",  "girl",      "guy",       "moment",      "air",       "teacher",
    "force",      "education", "good",      "new",       "first",       "last",      "long",
    "great",      "little",    "own",       "other",     "old",         "big",       "high",
    "different",  "small",     "large",     "next",      "early",       "young",     "important",
    "few",        "public",    "bad",       "same",      "able",        "say",       "make",
    "go",         "know",      "take",      "see",       "come",        "think",     "look",
    "want",       "give",      "use",       "find",      "tell",        "ask",       "seem",
    "feel",       "try",       "leave",     "call",      "river",       "mountain",  "garden",
    "engine",     "signal",    "bridge",    "winter",    "summer",      "letter",    "market",
    "theory",     "window",    "machine",   "language",  "music",       "picture",   "season",
    "quickly",    "slowly",    "carefully", "always",    "never",       "often",     "together",
};

struct Rng {
  uint64_t x;
  explicit Rng(uint64_t seed) : x(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
    if (x == 0) x = 1;
  }
  uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

// Exactly n token ids of random word text ("Word word word. Word ..."): more words than needed
// are tokenized, then the ids are cut to n.
std::vector<int32_t> random_text_tokens(const Tokenizer& tok, int n, Rng& rng) {
  constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  std::vector<int32_t> ids;
  std::string text;
  int words = n + 8;
  while (static_cast<int>(ids.size()) < n) {
    text.clear();
    bool cap = true;
    for (int i = 0; i < words; ++i) {
      std::string w = kWords[rng.next() % kNumWords];
      if (cap) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
      if (i > 0) text += ' ';
      text += w;
      cap = rng.next() % 10 == 0;
      if (cap) text += '.';
    }
    ids = tok.encode(text, false, false);
    words *= 2;
  }
  ids.resize(static_cast<size_t>(n));
  return ids;
}

struct RuntimeBenchOptions {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int threads = 2;
  int max_running_requests = 64;
  int64_t max_total_tokens = 0;  // 0: max_running_requests x the longest sequence
  bool disable_radix_cache = false;
  bool disable_overlap_schedule = false;
  uint64_t seed = 1;
  int output_len = 32;
  bool json = false;
  std::string dump_prompts;   // write the workload's token ids here
  bool prompts_only = false;  // ... and stop there (no engine)
  std::string device = "cpu";  // the engine's backend (cpu, cuda, cuda:N)
  std::string load_format = "auto";  // or "dummy": -m is a config.json, random weights (cuda)
  std::string tokenizer_path;        // dummy: the tokenizer (GGUF file or HF directory)
  double mem_fraction_static = 0.85;  // cuda: weights + KV pool share of GPU memory
  int tp_size = 1;                    // cuda: tensor parallelism over this many GPUs
  int chunked_prefill_size = 512;
  std::string kv_dtype = "f16";
  std::string dtype = "auto";  // weights (cuda): auto, bfloat16 or float16
};

// Parses the options every runtime workload shares, plus the workload's own integer options
// (`ints`: name -> default, overwritten in place).
Result<RuntimeBenchOptions> parse_runtime_options(
    int argc, char** argv, std::vector<std::pair<std::string, int64_t>>& ints) {
  std::vector<std::string> valued = {
      "-m",     "--model",      "--threads",     "--max-running-requests", "--max-total-tokens",
      "--seed", "--output-len", "--dump-prompts", "--device", "--load-format",
      "--tokenizer-path", "--mem-fraction-static", "--chunked-prefill-size", "--kv-dtype",
      "--tp-size", "--dtype"};
  for (const auto& [k, v] : ints) valued.push_back(k);
  SGL_ASSIGN_OR_RETURN(Args args, parse_args(argc, argv, valued));
  RuntimeBenchOptions o;
  for (const std::string& f : args.flags) {
    if (f == "--disable-radix-cache") {
      o.disable_radix_cache = true;
    } else if (f == "--disable-overlap-schedule") {
      o.disable_overlap_schedule = true;
    } else if (f == "--json") {
      o.json = true;
    } else if (f == "--prompts-only") {
      o.prompts_only = true;
    } else {
      return sgl::invalid_argument("unknown flag " + f);
    }
  }
  auto parse_int = [&](const std::string& key, int64_t lo, int64_t hi,
                       int64_t def) -> Result<int64_t> {
    const std::string* v = args.get(key);
    if (v == nullptr) return def;
    char* end = nullptr;
    const long long x = std::strtoll(v->c_str(), &end, 10);
    if (end == v->c_str() || *end != '\0' || x < lo || x > hi)
      return sgl::invalid_argument(key + " must be an integer in [" + std::to_string(lo) + ", " +
                                   std::to_string(hi) + "], got '" + *v + "'");
    return static_cast<int64_t>(x);
  };
  if (const std::string* m = args.get("-m")) o.model = *m;
  if (const std::string* m = args.get("--model")) o.model = *m;
  if (const std::string* d = args.get("--dump-prompts")) o.dump_prompts = *d;
  if (const std::string* d = args.get("--device")) o.device = *d;
  if (const std::string* f = args.get("--load-format")) o.load_format = *f;
  if (const std::string* t = args.get("--tokenizer-path")) o.tokenizer_path = *t;
  if (const std::string* k = args.get("--kv-dtype")) o.kv_dtype = *k;
  if (const std::string* d = args.get("--dtype")) o.dtype = *d;
  if (const std::string* f = args.get("--mem-fraction-static")) {
    char* end = nullptr;
    o.mem_fraction_static = std::strtod(f->c_str(), &end);
    if (end == f->c_str() || *end != '\0' || !(o.mem_fraction_static > 0.0) ||
        o.mem_fraction_static > 1.0)
      return sgl::invalid_argument("--mem-fraction-static must be in (0, 1], got '" + *f + "'");
  }
  SGL_ASSIGN_OR_RETURN(int64_t chunk, parse_int("--chunked-prefill-size", 1, 1 << 20,
                                                o.chunked_prefill_size));
  o.chunked_prefill_size = static_cast<int>(chunk);
  SGL_ASSIGN_OR_RETURN(int64_t tp, parse_int("--tp-size", 1, 64, o.tp_size));
  o.tp_size = static_cast<int>(tp);
  SGL_ASSIGN_OR_RETURN(int64_t threads, parse_int("--threads", 0, 1024, o.threads));
  SGL_ASSIGN_OR_RETURN(int64_t mrr,
                       parse_int("--max-running-requests", 1, 1 << 16, o.max_running_requests));
  SGL_ASSIGN_OR_RETURN(o.max_total_tokens, parse_int("--max-total-tokens", 0, int64_t{1} << 32, 0));
  SGL_ASSIGN_OR_RETURN(int64_t seed, parse_int("--seed", 0, int64_t{1} << 62, 1));
  SGL_ASSIGN_OR_RETURN(int64_t out_len, parse_int("--output-len", 1, 1 << 20, o.output_len));
  o.threads = static_cast<int>(threads);
  o.max_running_requests = static_cast<int>(mrr);
  o.seed = static_cast<uint64_t>(seed);
  o.output_len = static_cast<int>(out_len);
  for (auto& [k, v] : ints) {
    SGL_ASSIGN_OR_RETURN(v, parse_int(k, 1, 1 << 20, v));
  }
  return o;
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) return sgl::invalid_argument("cannot write " + path);
  out << text;
  return out ? Status::ok() : sgl::invalid_argument("cannot write " + path);
}

Result<std::unique_ptr<sgl::runtime::Engine>> make_bench_engine(const RuntimeBenchOptions& o,
                                                                int64_t max_seq_len) {
  sgl::runtime::EngineOptions eo;
  eo.threads = o.threads;
  eo.max_running_requests = o.max_running_requests;
  // max_seq_len < 0: the backend's own default (the GPU pool sized by --mem-fraction-static).
  eo.max_total_tokens = o.max_total_tokens > 0 ? o.max_total_tokens
                        : max_seq_len < 0      ? 0
                                               : o.max_running_requests * max_seq_len;
  eo.disable_radix_cache = o.disable_radix_cache;
  eo.disable_overlap_schedule = o.disable_overlap_schedule;
  eo.random_seed = o.seed;
  eo.device = o.device;
  eo.load_format = o.load_format;
  eo.tokenizer_path = o.tokenizer_path;
  eo.mem_fraction_static = o.mem_fraction_static;
  eo.tp_size = o.tp_size;
  eo.chunked_prefill_size = o.chunked_prefill_size;
  eo.max_prefill_tokens = std::max(eo.max_prefill_tokens, o.chunked_prefill_size);
  SGL_ASSIGN_OR_RETURN(eo.kv_dtype, sgl::backend::parse_kv_dtype(o.kv_dtype));
  SGL_ASSIGN_OR_RETURN(eo.dtype, sgl::backend::parse_weight_dtype(o.dtype));
  SGL_ASSIGN_OR_RETURN(auto engine, sgl::runtime::Engine::create(o.model, eo));
  // Warm-up outside the clock (page in the weights, size the scratch buffers), then an empty cache.
  sgl::runtime::GenerateRequest w;
  w.rid = "warmup";
  w.input_ids = bench_tokens(64, 12345, static_cast<int32_t>(engine->model().config.n_vocab));
  w.params.max_new_tokens = 8;
  w.params.temperature = 0.0f;
  w.params.ignore_eos = true;
  SGL_ASSIGN_OR_RETURN(auto h, engine->submit(std::move(w)));
  SGL_RETURN_IF_ERROR(h->wait().status());
  // The scheduler publishes the warm-up's last step after its finish event; flush_cache fails
  // while anything is in flight, so retry briefly.
  Status flushed = Status::ok();
  for (int i = 0; i < 100; ++i) {
    flushed = engine->flush_cache();
    if (flushed.is_ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  SGL_RETURN_IF_ERROR(flushed);
  return engine;
}

// What one timed run measured.
struct RunTotals {
  int64_t requests = 0, prompt_tokens = 0, output_tokens = 0, cached_tokens = 0;
  double wall_s = 0;
  std::vector<double> e2e_s, ttft_s;
  std::vector<double> tpot_s;  // per request with 2+ output tokens: (e2e - TTFT) / (tokens - 1)

  // Adds another run's requests (wall_s stays this run's).
  void merge(const RunTotals& p) {
    requests += p.requests;
    prompt_tokens += p.prompt_tokens;
    output_tokens += p.output_tokens;
    cached_tokens += p.cached_tokens;
    e2e_s.insert(e2e_s.end(), p.e2e_s.begin(), p.e2e_s.end());
    ttft_s.insert(ttft_s.end(), p.ttft_s.begin(), p.ttft_s.end());
    tpot_s.insert(tpot_s.end(), p.tpot_s.begin(), p.tpot_s.end());
  }
};

void add_output(RunTotals& t, const sgl::runtime::GenerateOutput& out) {
  ++t.requests;
  t.prompt_tokens += out.prompt_tokens;
  t.output_tokens += out.completion_tokens;
  t.cached_tokens += out.cached_tokens;
  t.e2e_s.push_back(out.timings.e2e_s);
  t.ttft_s.push_back(out.timings.first_token_s);
  if (out.completion_tokens > 1)
    t.tpot_s.push_back((out.timings.e2e_s - out.timings.first_token_s) /
                       (out.completion_tokens - 1));
}

// Waits for every handle and adds its output to `t`; an error or an aborted request fails the run.
Status wait_all(const std::vector<std::shared_ptr<sgl::runtime::RequestHandle>>& handles,
                RunTotals& t) {
  for (const auto& h : handles) {
    auto out = h->wait();
    if (!out.is_ok()) return out.status();
    if (out->finish_reason.kind == sgl::runtime::FinishReason::kAbort)
      return sgl::internal_error("request " + h->rid() + " aborted: " +
                                 out->finish_reason.message);
    add_output(t, *out);
  }
  return Status::ok();
}

// Engine stats once the scheduler is idle (its last step's counters are published after the last
// finish event).
sgl::runtime::EngineStats settled_stats(const sgl::runtime::Engine& e) {
  sgl::runtime::EngineStats s = e.stats();
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    sgl::runtime::EngineStats t = e.stats();
    if (t.running == 0 && t.waiting == 0 && t.steps == s.steps && t.step_seconds == s.step_seconds)
      return t;
    s = t;
  }
  return s;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// Prints the run as JSON (--json) or as aligned text.
void report_run(const RuntimeBenchOptions& o, const std::string& workload, nlohmann::json sizes,
                const RunTotals& t, const sgl::runtime::EngineStats& s0,
                const sgl::runtime::EngineStats& s1, int64_t max_total_tokens, bool overlap) {
  const double wall = t.wall_s;
  const int64_t steps = s1.steps - s0.steps;
  const double step_s = s1.step_seconds - s0.step_seconds;
  const double fwd_s = s1.forward_seconds - s0.forward_seconds;
  nlohmann::json out;
  out["workload"] = workload;
  out["model"] = o.model;
  out["threads"] = o.threads;
  out["radix_cache"] = !o.disable_radix_cache;
  out["max_running_requests"] = o.max_running_requests;
  out["max_total_tokens"] = max_total_tokens;
  out["seed"] = o.seed;
  out["sizes"] = std::move(sizes);
  out["requests"] = t.requests;
  out["prompt_tokens"] = t.prompt_tokens;
  out["output_tokens"] = t.output_tokens;
  out["cached_tokens"] = t.cached_tokens;
  out["computed_prompt_tokens"] = t.prompt_tokens - t.cached_tokens;
  out["wall_s"] = wall;
  out["request_throughput"] = t.requests / wall;
  out["output_tok_per_s"] = t.output_tokens / wall;
  out["total_tok_per_s"] = (t.prompt_tokens + t.output_tokens) / wall;
  out["cache_hit_rate"] =
      t.prompt_tokens > 0 ? static_cast<double>(t.cached_tokens) / t.prompt_tokens : 0.0;
  out["mean_e2e_s"] = mean_of(t.e2e_s);
  out["p99_e2e_s"] = percentile(t.e2e_s, 0.99);
  out["mean_ttft_s"] = mean_of(t.ttft_s);
  out["mean_tpot_ms"] = mean_of(t.tpot_s) * 1e3;
  out["engine"] = {
      {"steps", steps},
      {"overlap_schedule", overlap},
      {"overlapped_steps", s1.overlapped_steps - s0.overlapped_steps},
      {"cache_hit_rate", s1.prompt_tokens > s0.prompt_tokens
                             ? static_cast<double>(s1.cache_hit_tokens - s0.cache_hit_tokens) /
                                   static_cast<double>(s1.prompt_tokens - s0.prompt_tokens)
                             : 0.0},
      {"evicted_tokens", s1.evicted_tokens - s0.evicted_tokens},
      {"retractions", s1.retractions - s0.retractions},
      {"aborted_for_memory", s1.aborted_for_memory - s0.aborted_for_memory},
      {"step_seconds", step_s},
      {"forward_seconds", fwd_s},
  };
  // The scheduler's own cost: step time outside the backend's forward pass.
  if (steps > 0 && step_s > 0) {
    out["engine"]["mean_step_ms"] = step_s / steps * 1e3;
    out["engine"]["mean_outside_forward_ms"] = (step_s - fwd_s) / steps * 1e3;
    out["engine"]["outside_forward_fraction"] = (step_s - fwd_s) / step_s;
  } else {
    out["engine"]["outside_forward_fraction"] = nullptr;  // the engine does not time its steps
  }
  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("%s, radix cache %s, %d threads, max running %d, KV pool %lld tokens\n",
              workload.c_str(), o.disable_radix_cache ? "off" : "on", o.threads,
              o.max_running_requests, static_cast<long long>(max_total_tokens));
  std::printf("  sizes                 %s\n", out["sizes"].dump().c_str());
  std::printf("  requests              %lld\n", static_cast<long long>(t.requests));
  std::printf("  prompt tokens         %lld (cached %lld, computed %lld)\n",
              static_cast<long long>(t.prompt_tokens), static_cast<long long>(t.cached_tokens),
              static_cast<long long>(t.prompt_tokens - t.cached_tokens));
  std::printf("  output tokens         %lld\n", static_cast<long long>(t.output_tokens));
  std::printf("  wall time             %.2f s\n", wall);
  std::printf("  request throughput    %.3f req/s\n", t.requests / wall);
  std::printf("  output throughput     %.1f tok/s\n", t.output_tokens / wall);
  std::printf("  total throughput      %.1f tok/s (prompt + output)\n",
              (t.prompt_tokens + t.output_tokens) / wall);
  std::printf("  cache hit rate        %.1f%%\n", 100.0 * out["cache_hit_rate"].get<double>());
  std::printf("  latency               mean %.2f s, p99 %.2f s, mean TTFT %.2f s, TPOT %.3f ms\n",
              mean_of(t.e2e_s), percentile(t.e2e_s, 0.99), mean_of(t.ttft_s),
              mean_of(t.tpot_s) * 1e3);
  std::printf("  scheduler steps       %lld (overlap schedule %s, %lld overlapped)\n",
              static_cast<long long>(steps), overlap ? "on" : "off",
              static_cast<long long>(s1.overlapped_steps - s0.overlapped_steps));
  if (steps > 0 && step_s > 0) {
    std::printf("  outside forward       %.3f ms of %.2f ms per step (%.2f%%)\n",
                (step_s - fwd_s) / steps * 1e3, step_s / steps * 1e3,
                100.0 * (step_s - fwd_s) / step_s);
  } else {
    std::printf("  outside forward       n/a (the engine reports no step timing)\n");
  }
}

sgl::runtime::GenerateRequest bench_request(std::string rid, std::vector<int32_t> ids,
                                            int output_len) {
  sgl::runtime::GenerateRequest r;
  r.rid = std::move(rid);
  r.input_ids = std::move(ids);
  r.params.max_new_tokens = output_len;
  r.params.temperature = 0.0f;
  r.params.ignore_eos = true;
  return r;
}

// G groups x P requests; each group's requests share one S-token system prompt and differ in a
// Q-token question. All submitted at once, group by group (SGLang's generated-shared-prefix).
int run_shared_prefix(int argc, char** argv) {
  std::vector<std::pair<std::string, int64_t>> ints = {
      {"--groups", 8}, {"--per-group", 16}, {"--system-len", 1024}, {"--question-len", 64}};
  auto o = parse_runtime_options(argc, argv, ints);
  if (!o.is_ok()) return fail("shared-prefix: " + o.status().message());
  const int groups = static_cast<int>(ints[0].second), per_group = static_cast<int>(ints[1].second);
  const int system_len = static_cast<int>(ints[2].second);
  const int question_len = static_cast<int>(ints[3].second);

  auto tok = load_tokenizer(o->model);
  if (!tok.is_ok()) return fail(tok.status().to_string());
  Rng rng(o->seed);
  std::vector<std::vector<int32_t>> prompts;
  for (int g = 0; g < groups; ++g) {
    const std::vector<int32_t> system = random_text_tokens(*tok, system_len, rng);
    for (int i = 0; i < per_group; ++i) {
      std::vector<int32_t> p = system;
      const std::vector<int32_t> q = random_text_tokens(*tok, question_len, rng);
      p.insert(p.end(), q.begin(), q.end());
      prompts.push_back(std::move(p));
    }
  }
  nlohmann::json sizes = {{"groups", groups},
                          {"per_group", per_group},
                          {"system_len", system_len},
                          {"question_len", question_len},
                          {"output_len", o->output_len}};
  if (!o->dump_prompts.empty()) {
    nlohmann::json w = {{"workload", "shared-prefix"}, {"sizes", sizes}, {"requests", prompts}};
    Status s = write_file(o->dump_prompts, w.dump());
    if (!s.is_ok()) return fail(s.to_string());
  }
  if (o->prompts_only) return 0;

  const int64_t max_seq = system_len + question_len + o->output_len;
  auto engine = make_bench_engine(*o, max_seq);
  if (!engine.is_ok()) return fail(engine.status().to_string());
  sgl::runtime::Engine& e = **engine;
  const sgl::runtime::EngineStats s0 = settled_stats(e);
  RunTotals t;
  const double t0 = now_s();
  std::vector<std::shared_ptr<sgl::runtime::RequestHandle>> handles;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto h = e.submit(bench_request("sp-" + std::to_string(i), prompts[i], o->output_len));
    if (!h.is_ok()) return fail(h.status().to_string());
    handles.push_back(*h);
  }
  if (Status st = wait_all(handles, t); !st.is_ok()) return fail(st.to_string());
  t.wall_s = now_s() - t0;
  const sgl::runtime::EngineStats s1 = settled_stats(e);
  report_run(*o, "shared-prefix", sizes, t, s0, s1, e.max_total_tokens(), e.overlap_schedule());
  return 0;
}

// C concurrent conversations of T turns. Turn t sends the conversation so far (its first S-token
// context, then every earlier question and the model's answer to it) plus a new Q-token question,
// as a new request once the previous turn has finished: the history is what the cache can reuse.
int run_multi_turn(int argc, char** argv) {
  std::vector<std::pair<std::string, int64_t>> ints = {
      {"--clients", 16}, {"--turns", 4}, {"--system-len", 256}, {"--question-len", 256}};
  auto o = parse_runtime_options(argc, argv, ints);
  if (!o.is_ok()) return fail("multi-turn: " + o.status().message());
  const int clients = static_cast<int>(ints[0].second), turns = static_cast<int>(ints[1].second);
  const int system_len = static_cast<int>(ints[2].second);
  const int question_len = static_cast<int>(ints[3].second);

  auto tok = load_tokenizer(o->model);
  if (!tok.is_ok()) return fail(tok.status().to_string());
  Rng rng(o->seed);
  struct Conversation {
    std::vector<int32_t> system;
    std::vector<std::vector<int32_t>> questions;
  };
  std::vector<Conversation> convs(clients);
  for (Conversation& c : convs) {
    c.system = random_text_tokens(*tok, system_len, rng);
    for (int t = 0; t < turns; ++t)
      c.questions.push_back(random_text_tokens(*tok, question_len, rng));
  }
  nlohmann::json sizes = {{"clients", clients},
                          {"turns", turns},
                          {"system_len", system_len},
                          {"question_len", question_len},
                          {"output_len", o->output_len}};
  if (!o->dump_prompts.empty()) {
    nlohmann::json cj = nlohmann::json::array();
    for (const Conversation& c : convs)
      cj.push_back({{"system", c.system}, {"questions", c.questions}});
    nlohmann::json w = {{"workload", "multi-turn"}, {"sizes", sizes}, {"conversations", cj}};
    Status s = write_file(o->dump_prompts, w.dump());
    if (!s.is_ok()) return fail(s.to_string());
  }
  if (o->prompts_only) return 0;

  const int64_t max_seq = system_len + static_cast<int64_t>(turns) * (question_len + o->output_len);
  auto engine = make_bench_engine(*o, max_seq);
  if (!engine.is_ok()) return fail(engine.status().to_string());
  sgl::runtime::Engine& e = **engine;
  const sgl::runtime::EngineStats s0 = settled_stats(e);
  std::vector<RunTotals> per_client(clients);
  std::vector<std::string> errors(clients);
  const double t0 = now_s();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::vector<int32_t> history = convs[c].system;
      for (int t = 0; t < turns; ++t) {
        const auto& q = convs[c].questions[t];
        history.insert(history.end(), q.begin(), q.end());
        auto h = e.submit(bench_request("mt-" + std::to_string(c) + "-" + std::to_string(t),
                                        history, o->output_len));
        if (!h.is_ok()) {
          errors[c] = h.status().to_string();
          return;
        }
        auto out = (*h)->wait();
        if (!out.is_ok()) {
          errors[c] = out.status().to_string();
          return;
        }
        if (out->finish_reason.kind == sgl::runtime::FinishReason::kAbort) {
          errors[c] = "request aborted: " + out->finish_reason.message;
          return;
        }
        add_output(per_client[c], *out);
        history.insert(history.end(), out->output_ids.begin(), out->output_ids.end());
      }
    });
  }
  for (auto& th : threads) th.join();
  RunTotals t;
  t.wall_s = now_s() - t0;
  for (int c = 0; c < clients; ++c) {
    if (!errors[c].empty()) return fail("client " + std::to_string(c) + ": " + errors[c]);
    t.merge(per_client[c]);
  }
  const sgl::runtime::EngineStats s1 = settled_stats(e);
  report_run(*o, "multi-turn", sizes, t, s0, s1, e.max_total_tokens(), e.overlap_schedule());
  return 0;
}

// SGLang's bench_offline_throughput with its random dataset: N prompts of I random token ids,
// all submitted at once, each generating exactly O tokens (greedy, ignore_eos). The figure is
// output tokens / wall time from the first submit to the last finish. Unlike the workloads
// above, the KV pool defaults to the backend's own size (on the GPU: --mem-fraction-static), and
// --max-running-requests bounds the decode batch.
int run_offline(int argc, char** argv) {
  std::vector<std::pair<std::string, int64_t>> ints = {
      {"--num-prompts", 1000}, {"--input-len", 1024}};
  auto o = parse_runtime_options(argc, argv, ints);
  if (!o.is_ok()) return fail("offline: " + o.status().message());
  const int n_prompts = static_cast<int>(ints[0].second);
  const int input_len = static_cast<int>(ints[1].second);

  auto engine = make_bench_engine(*o, -1);
  if (!engine.is_ok()) return fail(engine.status().to_string());
  sgl::runtime::Engine& e = **engine;
  // Random ids the tokenizer knows (a dummy model's test tokenizer may know fewer than the
  // config's vocabulary), away from the low ids where special tokens usually sit.
  const int32_t vocab = std::max<int32_t>(e.model().tok().vocab_size(), 400);
  std::vector<std::vector<int32_t>> prompts;
  prompts.reserve(static_cast<size_t>(n_prompts));
  for (int i = 0; i < n_prompts; ++i)
    prompts.push_back(bench_tokens(input_len, 1000 + i, vocab));
  nlohmann::json sizes = {
      {"num_prompts", n_prompts}, {"input_len", input_len}, {"output_len", o->output_len}};
  const sgl::runtime::EngineStats s0 = settled_stats(e);
  RunTotals t;
  const double t0 = now_s();
  std::vector<sgl::runtime::GenerateRequest> reqs;
  for (int i = 0; i < n_prompts; ++i)
    reqs.push_back(bench_request("off-" + std::to_string(i), std::move(prompts[i]), o->output_len));
  auto handles = e.submit_batch(std::move(reqs));
  if (!handles.is_ok()) return fail(handles.status().to_string());
  if (Status st = wait_all(*handles, t); !st.is_ok()) return fail(st.to_string());
  t.wall_s = now_s() - t0;
  const sgl::runtime::EngineStats s1 = settled_stats(e);
  report_run(*o, "offline", sizes, t, s0, s1, e.max_total_tokens(), e.overlap_schedule());
  return 0;
}

// ---- backend checks and kernel benchmarks ------------------------------------------------------

// Parses "1,2,3" into integers; false on anything else.
bool parse_int_list(const std::string& s, std::vector<int32_t>* out) {
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || v > INT32_MAX) return false;
    out->push_back(static_cast<int32_t>(v));
  }
  return !out->empty();
}

// Logits of every position of a token sequence, computed the way a server would: tokens
// [0, split) in one pass, [split, decode_from) in a second pass over the cached prefix, then one
// token per pass. Writes the rows as raw little-endian f32 [n, n_vocab] to --out (for
// tests/cuda/check_hf.py, which compares them with Hugging Face transformers).
int run_logits(int argc, char** argv) {
  auto args = parse_args(argc, argv,
                         {"-m", "--device", "--ids", "--split", "--decode-from", "--kv-dtype",
                          "--out", "--threads", "--tp-size", "--dtype"});
  if (!args.is_ok()) return fail(args.status().message());
  const std::string* model = args->get("-m");
  const std::string* ids_s = args->get("--ids");
  const std::string* out_path = args->get("--out");
  if (!model || !ids_s || !out_path) return fail("logits needs -m MODEL --ids 1,2,.. --out FILE");
  std::vector<int32_t> ids;
  if (!parse_int_list(*ids_s, &ids)) return fail("--ids must be a comma-separated list of ids");
  const int n = static_cast<int>(ids.size());
  const int split = args->get("--split") ? std::atoi(args->get("--split")->c_str()) : n;
  const int decode_from =
      args->get("--decode-from") ? std::atoi(args->get("--decode-from")->c_str()) : n;
  if (split < 1 || split > decode_from || decode_from > n)
    return fail("need 1 <= --split <= --decode-from <= number of ids");
  auto kv = sgl::backend::parse_kv_dtype(args->get("--kv-dtype") ? *args->get("--kv-dtype")
                                                                 : "f16");
  if (!kv.is_ok()) return fail(kv.status().message());
  auto dtype =
      sgl::backend::parse_weight_dtype(args->get("--dtype") ? *args->get("--dtype") : "auto");
  if (!dtype.is_ok()) return fail(dtype.status().message());
  auto loaded = sgl::models::load_model(*model);
  if (!loaded.is_ok()) return fail(loaded.status().to_string());
  sgl::backend::BackendOptions bo;
  bo.device = args->get("--device") ? *args->get("--device") : "cpu";
  bo.kv_dtype = *kv;
  bo.dtype = *dtype;
  bo.kv_capacity = n + 8;
  bo.n_threads = args->get("--threads") ? std::atoi(args->get("--threads")->c_str()) : 0;
  bo.tp_size = args->get("--tp-size") ? std::atoi(args->get("--tp-size")->c_str()) : 1;
  bo.progress = false;
  auto be = sgl::backend::create_backend(**loaded, bo);
  if (!be.is_ok()) return fail(be.status().to_string());
  const int32_t vocab = static_cast<int32_t>((*loaded)->config.n_vocab);
  std::vector<int32_t> slots(n);
  for (int i = 0; i < n; ++i) slots[i] = n - 1 - i;  // reversed: slot order must not matter
  std::vector<float> all;
  sgl::backend::ForwardBatch fb;
  sgl::backend::Logits lg;
  auto pass = [&](int begin, int end) -> sgl::Status {
    fb.clear();
    fb.add_sequence(ids.data() + begin, end - begin, begin, slots.data(), false);
    for (int i = 0; i < end - begin; ++i) fb.logit_rows.push_back(i);
    SGL_RETURN_IF_ERROR((*be)->forward(fb, &lg));
    all.insert(all.end(), lg.data.begin(), lg.data.end());
    return sgl::Status::ok();
  };
  sgl::Status st = pass(0, split);
  if (st.is_ok() && decode_from > split) st = pass(split, decode_from);
  for (int i = decode_from; st.is_ok() && i < n; ++i) st = pass(i, i + 1);
  if (!st.is_ok()) return fail(st.to_string());
  std::ofstream f(*out_path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(all.data()), static_cast<std::streamsize>(all.size() * 4));
  if (!f) return fail("cannot write " + *out_path);
  nlohmann::json out = {{"n", n}, {"n_vocab", vocab}, {"device", bo.device},
                        {"backend", std::string((*be)->name())}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// The CUDA kernels alone on the Llama-3.1-8B attention shape (32 query heads, 8 KV heads, head
// dim 128): copy bandwidth, GEMM rate, decode attention bandwidth, prefill attention TFLOP/s.
int run_cuda_kernels(int argc, char** argv) {
  auto args = parse_args(
      argc, argv,
      {"--prefill-lens", "--decode-batch", "--decode-len", "--decode-shapes", "--decode-splits"});
  if (!args.is_ok()) return fail(args.status().message());
#ifdef SGL_WITH_CUDA
  namespace cu = sgl::backend::cuda;
  std::vector<int32_t> lens;
  if (!parse_int_list(args->get("--prefill-lens") ? *args->get("--prefill-lens")
                                                  : "4096,8192,16384",
                      &lens))
    return fail("--prefill-lens must be a list of lengths");
  const int db = args->get("--decode-batch") ? std::atoi(args->get("--decode-batch")->c_str()) : 64;
  const int dl = args->get("--decode-len") ? std::atoi(args->get("--decode-len")->c_str()) : 4096;
  if (db < 1 || dl < 1) return fail("bad decode sizes");
  // Decode shapes: batch-1 steps, the 64 x 4k, offline-throughput batches at 1-2k.
  std::vector<std::pair<int, int>> shapes;
  {
    std::stringstream ss(args->get("--decode-shapes")
                             ? *args->get("--decode-shapes")
                             : "1x1024,64x4096,256x2048,384x1536,32x8192,1x32768");
    std::string item;
    while (std::getline(ss, item, ',')) {
      int b = 0, l = 0;
      if (std::sscanf(item.c_str(), "%dx%d", &b, &l) != 2 || b < 1 || l < 1)
        return fail("--decode-shapes must be a list of BATCHxCONTEXT");
      shapes.emplace_back(b, l);
    }
  }
  // Optional split counts to time each decode shape at (tuning the planner).
  std::vector<int32_t> sweep;
  if (args->get("--decode-splits") && !parse_int_list(*args->get("--decode-splits"), &sweep))
    return fail("--decode-splits must be a list of split counts");
  nlohmann::json out;
  auto put = [&](const char* key, sgl::Result<nlohmann::json> r) {
    if (!r.is_ok()) {
      out[key] = r.status().to_string();
      return;
    }
    out[key] = *r;
  };
  put("copy", cu::bench_copy(0, size_t{2} << 30));
  put("gemm_8192", cu::bench_gemm(0, 8192, 8192, 8192));
  put("gemm_decode_qkv_1x6144x4096", cu::bench_gemm(0, 1, 6144, 4096));
  put("gemm_decode_gate_up_1x28672x4096", cu::bench_gemm(0, 1, 28672, 4096));
  put("decode_attention", cu::bench_decode_attention(0, db, dl, 32, 8, 128));
  put("decode_attention_fp8_e4m3", cu::bench_decode_attention(0, db, dl, 32, 8, 128, 0, false,
                                                              cu::KvElem::kFp8E4M3));
  put("decode_attention_fp8_e5m2", cu::bench_decode_attention(0, db, dl, 32, 8, 128, 0, false,
                                                              cu::KvElem::kFp8E5M2));
  put("decode_attention_fp8_e4m3_cuda_cores",
      cu::bench_decode_attention(0, db, dl, 32, 8, 128, 0, true, cu::KvElem::kFp8E4M3));
  nlohmann::json dec = nlohmann::json::array();
  for (auto [b, l] : shapes) {
    for (const bool cuda_cores : {false, true}) {
      for (const int fixed : {0, -1}) {
        auto r = cu::bench_decode_attention(0, b, l, 32, 8, 128, fixed, cuda_cores);
        dec.push_back(r.is_ok() ? *r : nlohmann::json(r.status().to_string()));
      }
    }
    for (const int fixed : {0, -1}) {  // fp8 KV, tensor-core kernel
      auto r = cu::bench_decode_attention(0, b, l, 32, 8, 128, fixed, false, cu::KvElem::kFp8E4M3);
      dec.push_back(r.is_ok() ? *r : nlohmann::json(r.status().to_string()));
    }
    for (const int splits : sweep) {
      auto r = cu::bench_decode_attention(0, b, l, 32, 8, 128, splits, false);
      dec.push_back(r.is_ok() ? *r : nlohmann::json(r.status().to_string()));
    }
  }
  out["decode_attention_shapes"] = dec;
  nlohmann::json pre = nlohmann::json::array();
  for (int len : lens) {
    auto r = cu::bench_prefill_attention(0, len, 32, 8, 128);
    pre.push_back(r.is_ok() ? *r : nlohmann::json(r.status().to_string()));
  }
  out["prefill_attention"] = pre;
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
#else
  return fail("cuda-kernels: built without CUDA (configure with -DSGL_CUDA=ON)");
#endif
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
     "[--batches 1,16,64] [--kv-dtype f16] [--device cpu|cuda] [--load-format auto|dummy] "
     "[--mem-fraction-static 0.85] [--tp-size 1] [--dtype auto|bfloat16|float16]",
     run_model},
    {"logits",
     "logits -m MODEL --ids 1,2,3 --out FILE [--device cpu|cuda] [--split N] [--decode-from N] "
     "[--kv-dtype f16] [--tp-size 1] [--dtype auto]",
     run_logits},
    {"cuda-kernels",
     "cuda-kernels [--prefill-lens 4096,8192,16384] [--decode-batch 64] "
     "[--decode-len 4096] [--decode-shapes 1x1024,64x4096] [--decode-splits 1,2]",
     run_cuda_kernels},
    {"shared-prefix",
     "shared-prefix [-m MODEL] [--groups 8] [--per-group 16] [--system-len 1024] "
     "[--question-len 64] [--output-len 32] [RUNTIME OPTIONS]",
     run_shared_prefix},
    {"multi-turn",
     "multi-turn [-m MODEL] [--clients 16] [--turns 4] [--system-len 256] [--question-len 256] "
     "[--output-len 32] [RUNTIME OPTIONS]",
     run_multi_turn},
    {"offline",
     "offline [--num-prompts 1000] [--input-len 1024] [--output-len 32] [RUNTIME OPTIONS]",
     run_offline},
};

int usage(FILE* out) {
  std::fprintf(out, "usage: sgl-bench COMMAND [options]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %s\n", c.usage);
  std::fprintf(out,
               "\nruntime options: [--threads 2] [--max-running-requests 64] "
               "[--max-total-tokens N] [--disable-radix-cache] [--disable-overlap-schedule] "
               "[--seed 1] [--json] "
               "[--dump-prompts FILE] [--prompts-only] [--device cpu|cuda] "
               "[--load-format auto|dummy] [--tokenizer-path PATH] [--mem-fraction-static F] "
               "[--chunked-prefill-size 512] [--kv-dtype f16|bf16|fp8_e4m3|fp8_e5m2] "
               "[--dtype auto|bfloat16|float16] [--tp-size 1]\n");
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
