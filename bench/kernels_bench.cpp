// CPU kernel micro-benchmarks: quantized matmul bandwidth/throughput and attention.
//
// Build (after building the library into build-kernels/):
//   cmake -S . -B build-kernels -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build-kernels sgl
//   g++ -O3 -march=native -std=c++20 -I src -I include bench/kernels_bench.cpp \
//       build-kernels/libsgl.a -lpthread -o build-kernels/kernels_bench
// Run:
//   build-kernels/kernels_bench [--isa avx512|avx2vnni|avx2|scalar] [--reps N]
//   [--quick|--attention|--hot|--layouts|--peak] [--rows]
//
// Weights are repacked into panels (PackedWeights) as the CPU backend does, where the ISA has
// panel kernels; --rows keeps the file's row layout instead. --layouts prints the model rows for
// both layouts side by side (the same run, the same machine state).
//
// Matmul rows report the best of several repetitions. "cold" cycles through enough copies of
// the weights (>= 512 MB) that they stream from DRAM, as in decoding a model larger than the
// caches; "hot" reuses one copy (L2/L3 resident). GB/s counts weight bytes only; GFLOP/s counts
// 2 * n_out * n_in * n_tokens. The "model" rows time every linear layer of SmolLM2-135M (30
// layers of Q4_1 + the Q8_0 49152 x 576 output) per step, cold, and convert to tokens/s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#if defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

#include "backend/cpu/attention.h"
#include "backend/cpu/isa.h"
#include "backend/cpu/matmul.h"
#include "model/quant.h"
#include "support/fp16.h"
#include "support/thread_pool.h"

namespace {

using sgl::ThreadPool;
using sgl::backend::cpu::AttentionParams;
using sgl::backend::cpu::MatmulWorkspace;
using sgl::backend::cpu::PackedWeights;
using sgl::backend::cpu::WeightView;
using sgl::model::GgmlType;
using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }
// CPU time of the whole process (all threads): under contention from other processes, the
// single-thread rows' "cpu" figure is the time the kernel actually ran.
double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// `copies` copies of one random quantized matrix, back to back.
struct Matrix {
  GgmlType type;
  int64_t n_out, n_in;
  size_t bytes;  // one copy
  std::vector<uint8_t> data;
  WeightView view(int copy) const {
    return {type, n_out, n_in, data.data() + bytes * static_cast<size_t>(copy), 0};
  }
};

Matrix make_matrix(GgmlType type, int64_t n_out, int64_t n_in, int copies) {
  Matrix m{type, n_out, n_in, 0, {}};
  const size_t row = *sgl::model::ggml_row_size(type, n_in);
  m.bytes = row * n_out;
  m.data.resize(m.bytes * copies);
  const auto x = random_floats(static_cast<size_t>(n_in), 1);
  for (int64_t r = 0; r < n_out; ++r)
    sgl::model::quantize_row(type, x.data(), m.data.data() + r * row, n_in);
  for (int c = 1; c < copies; ++c) std::memcpy(m.data.data() + c * m.bytes, m.data.data(), m.bytes);
  return m;
}

int reps = 5;
bool use_panels = true;

// The views a benchmark multiplies by: packed copies of m's copies, or m's rows.
struct Views {
  std::vector<PackedWeights> packed;
  std::vector<WeightView> views;
};
Views views_of(const Matrix& m, int copies, bool panels) {
  Views v;
  for (int c = 0; c < copies; ++c) {
    if (panels) {
      v.packed.emplace_back(m.view(c));
      v.views.push_back(v.packed.back().view());
    } else {
      v.views.push_back(m.view(c));
    }
  }
  return v;
}

void bench_matmul(GgmlType type, int64_t n_out, int64_t n_in, bool cold) {
  const size_t one = *sgl::model::ggml_row_size(type, n_in) * n_out;
  const int copies = cold ? static_cast<int>(std::max<size_t>(1, (512u << 20) / one)) : 1;
  const Matrix m = make_matrix(type, n_out, n_in, copies);
  const Views mv = views_of(m, copies, use_panels);
  for (int n_tokens : {1, 16, 64, 512}) {
    const auto x = random_floats(static_cast<size_t>(n_in) * n_tokens, 2);
    std::vector<float> y(static_cast<size_t>(n_out) * n_tokens);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      MatmulWorkspace ws;
      // Calls per repetition: enough work to time (~50 ms), cycling through the copies.
      const double flop = 2.0 * n_out * n_in * n_tokens;
      const int calls = std::max(4, static_cast<int>(std::min(2e9 / flop * threads, 4.0 * copies)));
      int copy = 0;
      sgl::backend::cpu::matmul(mv.views[0], x.data(), y.data(), n_tokens, &pool, &ws);
      double best = 1e30, best_cpu = 1e30;
      for (int r = 0; r < reps; ++r) {
        const double t0 = now_s(), c0 = cpu_s();
        for (int c = 0; c < calls; ++c) {
          sgl::backend::cpu::matmul(mv.views[copy], x.data(), y.data(), n_tokens, &pool, &ws);
          if (++copy == copies) copy = 0;
        }
        best = std::min(best, (now_s() - t0) / calls);
        best_cpu = std::min(best_cpu, (cpu_s() - c0) / calls);
      }
      std::printf(
          "%-5s %6lld x %-5lld %-4s tok %4d thr %d: %9.1f us (cpu %9.1f)  %7.2f GB/s  %8.1f "
          "GFLOP/s\n",
          std::string(sgl::model::ggml_type_name(type)).c_str(), (long long)n_out, (long long)n_in,
          cold ? "cold" : "hot", n_tokens, threads, best * 1e6, best_cpu * 1e6, one / best / 1e9,
          flop / best / 1e9);
    }
  }
}

// All linear layers of SmolLM2-135M (Q4_1) plus the tied Q8_0 output projection.
void bench_model(int n_tokens, int threads, bool with_output, bool panels) {
  const int n_layers = 30;
  std::vector<Matrix> layers;
  struct Shape {
    int64_t o, i;
  };
  const Shape shapes[] = {{576, 576},  {192, 576},  {192, 576}, {576, 576},
                          {1536, 576}, {1536, 576}, {576, 1536}};
  for (int l = 0; l < n_layers; ++l)
    for (const Shape& s : shapes) layers.push_back(make_matrix(GgmlType::kQ4_1, s.o, s.i, 1));
  const Matrix out = make_matrix(GgmlType::kQ8_0, 49152, 576, 1);
  std::vector<Views> lv;
  for (const auto& m : layers) lv.push_back(views_of(m, 1, panels));
  const Views ov = views_of(out, 1, panels);
  size_t bytes = out.bytes;
  for (const auto& m : layers) bytes += m.bytes;
  const auto x = random_floats(1536 * static_cast<size_t>(n_tokens), 3);
  std::vector<float> y(49152 * static_cast<size_t>(n_tokens));
  ThreadPool pool(threads);
  MatmulWorkspace ws;
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < reps + 2; ++r) {
    const double t0 = now_s(), c0 = cpu_s();
    for (const auto& v : lv)
      sgl::backend::cpu::matmul(v.views[0], x.data(), y.data(), n_tokens, &pool, &ws);
    if (with_output)
      sgl::backend::cpu::matmul(ov.views[0], x.data(), y.data(), n_tokens, &pool, &ws);
    best = std::min(best, now_s() - t0);
    best_cpu = std::min(best_cpu, cpu_s() - c0);
  }
  const double b = with_output ? bytes : bytes - out.bytes;
  std::printf(
      "model linear layers%s %-6s tok %3d thr %d: %8.3f ms/step (cpu %8.3f)  %8.1f tok/s  %6.2f "
      "GB/s\n",
      with_output ? " + output" : "         ", panels ? "panels" : "rows", n_tokens, threads,
      best * 1e3, best_cpu * 1e3, n_tokens / best, b / best / 1e9);
}

void bench_attention(int n_ctx, int n_query, int threads) {
  const int n_head = 9, n_head_kv = 3, hd = 64;
  const int64_t row = n_head_kv * hd;
  std::vector<uint16_t> k(static_cast<size_t>(n_ctx) * row), v(k.size());
  const auto kf = random_floats(k.size(), 4), vf = random_floats(v.size(), 5);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = sgl::fp32_to_fp16(kf[i]);
    v[i] = sgl::fp32_to_fp16(vf[i]);
  }
  std::vector<int32_t> slots(static_cast<size_t>(n_ctx)), pos(static_cast<size_t>(n_query));
  for (int i = 0; i < n_ctx; ++i) slots[i] = i;
  for (int i = 0; i < n_query; ++i) pos[i] = n_ctx - n_query + i;
  const auto q = random_floats(static_cast<size_t>(n_query) * n_head * hd, 6);
  std::vector<float> out(q.size());
  AttentionParams p;
  p.q = q.data();
  p.positions = pos.data();
  p.n_tokens = n_query;
  p.n_head = n_head;
  p.n_head_kv = n_head_kv;
  p.head_dim = hd;
  p.k_cache = k.data();
  p.v_cache = v.data();
  p.kv_type = GgmlType::kF16;
  p.slots = slots.data();
  p.n_kv = n_ctx;
  p.out = out.data();
  ThreadPool pool(threads);
  sgl::backend::cpu::AttentionWorkspace ws;
  sgl::backend::cpu::attention(p, &pool, &ws);
  double pairs = 0;
  for (int i = 0; i < n_query; ++i) pairs += pos[i] + 1;
  const int calls = std::max(3, static_cast<int>(2e7 / (pairs * n_head)));
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s(), c0 = cpu_s();
    for (int c = 0; c < calls; ++c) sgl::backend::cpu::attention(p, &pool, &ws);
    best = std::min(best, (now_s() - t0) / calls);
    best_cpu = std::min(best_cpu, (cpu_s() - c0) / calls);
  }
  const double flop = 4.0 * pairs * n_head * hd;
  std::printf(
      "attention ctx %5d queries %4d thr %d: %9.1f us/layer (cpu %9.1f)  %7.1f GFLOP/s  (x30 "
      "layers: %.2f ms)\n",
      n_ctx, n_query, threads, best * 1e6, best_cpu * 1e6, flop / best / 1e9, best * 30 * 1e3);
}

// The machine's int8 dot-product peak: 12 independent vpdpbusd (zmm) accumulator chains in a tight
// loop per thread, so neither latency nor memory limits it. One vpdpbusd = 64 multiply-adds =
// 128 integer ops. This is the ceiling for any int8 (VNNI) matmul kernel on this machine.
void bench_peak() {
#if defined(__AVX512VNNI__)
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    const int64_t iters = 20'000'000;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      std::vector<int> sink(static_cast<size_t>(threads) * 16);
      const double t0 = now_s();
      pool.parallel_for(threads, [&](int t, int) {
        {
          const __m512i a = _mm512_set1_epi8(static_cast<char>(1 + t));
          const __m512i b = _mm512_set1_epi8(3);
          // Distinct starting values keep the compiler from merging identical chains.
          __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2),
                  a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5),
                  a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8),
                  a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10),
                  a11 = _mm512_set1_epi32(11);
          for (int64_t i = 0; i < iters / 12; ++i) {
            a0 = _mm512_dpbusd_epi32(a0, a, b);
            a1 = _mm512_dpbusd_epi32(a1, a, b);
            a2 = _mm512_dpbusd_epi32(a2, a, b);
            a3 = _mm512_dpbusd_epi32(a3, a, b);
            a4 = _mm512_dpbusd_epi32(a4, a, b);
            a5 = _mm512_dpbusd_epi32(a5, a, b);
            a6 = _mm512_dpbusd_epi32(a6, a, b);
            a7 = _mm512_dpbusd_epi32(a7, a, b);
            a8 = _mm512_dpbusd_epi32(a8, a, b);
            a9 = _mm512_dpbusd_epi32(a9, a, b);
            a10 = _mm512_dpbusd_epi32(a10, a, b);
            a11 = _mm512_dpbusd_epi32(a11, a, b);
          }
          const __m512i acc[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};
          for (int j = 0; j < 12; ++j) sink[t * 16 + j] = _mm512_reduce_add_epi32(acc[j]);
        }
      });
      best = std::min(best, now_s() - t0);
      if (sink[0] == 42) std::printf(" ");
    }
    const double ops = 128.0 * static_cast<double>(iters / 12 * 12) * threads;
    std::printf("vpdpbusd zmm peak, %d thread%s: %7.1f GOP/s (int8 ops, %.2f G instr/s/thread)\n",
                threads, threads > 1 ? "s" : "", ops / best / 1e9, iters / best / 1e9);
  }
#else
  std::printf("--peak needs a build with AVX-512 VNNI (-march=native on such a CPU)\n");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, attention_only = false, hot_only = false, layouts = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--isa" && i + 1 < argc) {
      const auto isa = sgl::backend::cpu::parse_isa(argv[++i]);
      if (!isa || !sgl::backend::cpu::set_isa(*isa)) {
        std::fprintf(stderr, "unsupported --isa %s\n", argv[i]);
        return 1;
      }
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--hot") {
      hot_only = true;
    } else if (a == "--rows") {
      use_panels = false;
    } else if (a == "--layouts") {
      layouts = true;
    } else if (a == "--attention") {
      attention_only = true;
    } else if (a == "--peak") {
      bench_peak();
      return 0;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--isa NAME] [--reps N] [--quick|--attention|--hot|--layouts|--peak] "
                   "[--rows]\n",
                   argv[0]);
      return 1;
    }
  }
  std::printf("isa: %s\n",
              std::string(sgl::backend::cpu::isa_name(sgl::backend::cpu::current_isa())).c_str());
  if (layouts) {
    for (int n_tokens : {1, 16, 64, 512})
      for (bool panels : {false, true}) bench_model(n_tokens, 2, n_tokens != 512, panels);
    return 0;
  }
  if (hot_only) {
    bench_matmul(GgmlType::kQ4_1, 576, 576, false);
    bench_matmul(GgmlType::kQ4_1, 1536, 576, false);
    bench_matmul(GgmlType::kQ8_0, 4096, 576, false);
    return 0;
  }
  for (int threads : {1, 2}) {
    if (attention_only) break;
    for (int n_tokens : {1, 16, 64}) bench_model(n_tokens, threads, true, use_panels);
    bench_model(512, threads, false, use_panels);
  }
  for (int threads : {1, 2}) {
    bench_attention(512, 512, threads);
    bench_attention(512, 1, threads);
    bench_attention(2048, 1, threads);
  }
  if (quick || attention_only) return 0;
  bench_matmul(GgmlType::kQ4_1, 576, 576, true);
  bench_matmul(GgmlType::kQ4_1, 1536, 576, true);
  bench_matmul(GgmlType::kQ4_1, 576, 1536, true);
  bench_matmul(GgmlType::kQ8_0, 49152, 576, true);
  bench_matmul(GgmlType::kQ4_1, 576, 576, false);
  return 0;
}
