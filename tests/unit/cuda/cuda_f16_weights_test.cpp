// The f16 weight path of the CUDA backend (--dtype float16: WeightElem::kF16): every kernel that
// reads a weight matrix or writes a GEMM input, in its f16 form, against a CPU reference on fresh
// random inputs; then tiny models end to end against the CPU backend, and the load-time checks
// (a weight beyond f16's range, --dtype float32). The fused decode against the unfused path with
// f16 weights is in cuda_model_test.cpp.
//
// Thresholds: f16 has 11 significant bits (relative rounding 2^-12, about 2.8e-4 in the L2 norm
// for uniform data, a quarter of bf16's), so f16 outputs pass at 1e-3; f32-output GEMMs on f16
// inputs (compared with double sums of the same f16 values) at 1e-4 as the bf16 ones. The model
// tests use the bf16 path's bounds (cuda_model_test.cpp): Q, the KV pool and the attention output
// stay bf16, so f16 weights do not make the logits much closer to the CPU's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA

#include "backend/cpu/ops.h"
#include "backend/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "runtime/sampler.h"

namespace sgl::cuda_test {
namespace {

namespace cu = backend::cuda;
namespace cpu = backend::cpu;

constexpr double kF16OutTol = 1e-3;
constexpr cu::WeightElem kF16 = cu::WeightElem::kF16;

std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = fp32_to_fp16(v[i]);
  return o;
}
std::vector<float> from_f16(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = fp16_to_fp32(v[i]);
  return o;
}
std::vector<float> f16_round(const std::vector<float>& v) { return from_f16(to_f16(v)); }

// y[n, m] = x[n, k] w[m, k]^T in double.
std::vector<float> ref_gemm(const std::vector<float>& x, const std::vector<float>& w, int n, int m,
                            int k) {
  std::vector<float> y(size_t(n) * m);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      double acc = 0;
      for (int kk = 0; kk < k; ++kk) acc += double(x[size_t(i) * k + kk]) * w[size_t(j) * k + kk];
      y[size_t(i) * m + j] = float(acc);
    }
  return y;
}

// silu(gate) * up of each [n, 2F] row.
std::vector<float> ref_silu(const std::vector<float>& gu, int n, int F) {
  std::vector<float> out(size_t(n) * F);
  for (int i = 0; i < n; ++i)
    cpu::silu_mul(gu.data() + size_t(i) * 2 * F, gu.data() + size_t(i) * 2 * F + F,
                  out.data() + size_t(i) * F, F);
  return out;
}

TEST(CudaF16Ops, EmbeddingNormsSiluAndConversions) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(101);
  // Embedding rows: exact (every f16 value is an f32 value), aligned and unaligned widths.
  for (int dim : {60, 576}) {
    const int vocab = 300, n = 9;
    const auto table = to_f16(random_floats(size_t(vocab) * dim, rng, -40, 40));
    std::vector<int32_t> toks(n);
    for (auto& t : toks) t = int32_t(rng() % vocab);
    DevBuf<uint16_t> dt(table);
    DevBuf<int32_t> dtok(toks);
    DevBuf<float> dx(size_t(n) * dim);
    cu::launch_embedding(dt.get(), dtok.get(), n, dim, dx.get(), nullptr, kF16);
    SGL_CUDA_ASSERT(cudaGetLastError());
    const auto x = dx.host();
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < dim; ++i)
        ASSERT_EQ(x[size_t(t) * dim + i], fp16_to_fp32(table[size_t(toks[t]) * dim + i]));
  }
  // RMS norms with f16 outputs: plain, with the residual add, and gathered rows.
  for (int dim : {64, 4096}) {
    const int n = 5;
    const auto x = random_floats(size_t(n) * dim, rng, -3, 3);
    const auto delta = random_floats(size_t(n) * dim, rng);
    const auto w = random_floats(dim, rng, 0.5f, 1.5f);
    const float eps = 1e-5f;
    std::vector<float> ref(x.size());
    cpu::rms_norm(x.data(), w.data(), ref.data(), n, dim, eps);
    DevBuf<float> dx(x), dw(w), dd(delta);
    DevBuf<uint16_t> dy(size_t(n) * dim);
    cu::launch_rms_norm(dx.get(), dw.get(), dy.get(), n, dim, eps, nullptr, kF16);
    SGL_CUDA_ASSERT(cudaGetLastError());
    EXPECT_LT(norm_err(from_f16(dy.host()), ref), kF16OutTol) << "norm " << dim;

    const std::vector<int32_t> rows = {4, 0, 2};
    std::vector<float> gref(size_t(3) * dim);
    for (int r = 0; r < 3; ++r)
      cpu::rms_norm(x.data() + size_t(rows[r]) * dim, w.data(), gref.data() + size_t(r) * dim, 1,
                    dim, eps);
    DevBuf<int32_t> drows(rows);
    DevBuf<uint16_t> dg(size_t(3) * dim);
    cu::launch_gather_rms_norm(dx.get(), drows.get(), 3, dim, dw.get(), eps, dg.get(), nullptr,
                               kF16);
    SGL_CUDA_ASSERT(cudaGetLastError());
    EXPECT_LT(norm_err(from_f16(dg.host()), gref), kF16OutTol) << "gather " << dim;

    std::vector<float> sum(x.size());
    for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + delta[i];
    cpu::rms_norm(sum.data(), w.data(), ref.data(), n, dim, eps);
    cu::launch_add_rms_norm(dx.get(), dd.get(), dw.get(), dy.get(), n, dim, eps, nullptr, kF16);
    SGL_CUDA_ASSERT(cudaGetLastError());
    EXPECT_LT(norm_err(dx.host(), sum), 1e-7) << "add " << dim;
    EXPECT_LT(norm_err(from_f16(dy.host()), ref), kF16OutTol) << "add norm " << dim;
  }
  // SiLU * up into f16.
  {
    const int n = 3, F = 1536;
    const auto gu = random_floats(size_t(n) * 2 * F, rng, -6, 6);
    DevBuf<float> dgu(gu);
    DevBuf<uint16_t> dout(size_t(n) * F);
    cu::launch_silu_mul(dgu.get(), n, F, dout.get(), nullptr, kF16);
    SGL_CUDA_ASSERT(cudaGetLastError());
    EXPECT_LT(norm_err(from_f16(dout.host()), ref_silu(gu, n, F)), kF16OutTol);
  }
  // bf16 -> f16 (the attention output before the O projection): exact for these values, in
  // place and not, vector and scalar widths.
  for (size_t n : {size_t{4096}, size_t{1001}}) {
    const auto b = to_bf16(random_floats(n, rng, -100, 100));
    DevBuf<uint16_t> src(b), dst(n), inplace(b);
    cu::launch_bf16_to_f16(src.get(), dst.get(), n, nullptr);
    cu::launch_bf16_to_f16(inplace.get(), inplace.get(), n, nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    const auto got = dst.host(), got2 = inplace.host();
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(fp16_to_fp32(got[i]), bf16_to_fp32(b[i])) << i;
      ASSERT_EQ(got2[i], got[i]) << i;
    }
  }
  // Dummy weights: the bf16 fill's draws, rounded to f16 instead (so each f16 value is within
  // bf16 rounding of the bf16 one, and the two differ somewhere).
  {
    const size_t n = 100000;
    DevBuf<uint16_t> h(n), b(n);
    cu::launch_fill_uniform_weight(h.get(), n, kF16, 0.5f, 77, nullptr);
    cu::launch_fill_uniform_weight(b.get(), n, cu::WeightElem::kBF16, 0.5f, 77, nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    const auto hv = from_f16(h.host()), bv = from_bf16(b.host());
    int differ = 0;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_LE(std::fabs(hv[i]), 0.5f);
      ASSERT_LE(std::fabs(hv[i] - bv[i]), std::fabs(hv[i]) * (1.0f / 256) + 1e-7f) << i;
      differ += hv[i] != bv[i];
    }
    EXPECT_GT(differ, int(n / 2));
  }
}

// cuBLASLt with f16 A and B (and, at n <= 8, the f16 GEMV among the timed candidates) against
// double sums of the same f16 values.
TEST(CudaF16Ops, GemmMatchesDoubleReference) {
  SGL_REQUIRE_GPU();
  auto gemm = cu::Gemm::create(size_t{32} << 20, kF16);
  ASSERT_TRUE(gemm.is_ok()) << gemm.status().to_string();
  EXPECT_EQ((*gemm)->elem(), kF16);
  std::mt19937 rng(102);
  struct Shape {
    int n, m, k;
  };
  for (const Shape s : {Shape{1, 4096, 4096}, Shape{3, 6144, 4096}, Shape{8, 1000, 64},
                        Shape{64, 384, 576}, Shape{200, 1536, 896}}) {
    // Inputs of a few units: f16's range matters, its precision is what is tested.
    const auto x = f16_round(random_floats(size_t(s.n) * s.k, rng, -4, 4));
    const auto w = f16_round(random_floats(size_t(s.m) * s.k, rng, -0.1f, 0.1f));
    DevBuf<uint16_t> dx(to_f16(x)), dw(to_f16(w));
    DevBuf<float> dy(size_t(s.n) * s.m);
    const Status st =
        (*gemm)->run(dx.get(), dw.get(), dy.get(), cu::GemmOut::kF32, s.n, s.m, s.k, nullptr);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    EXPECT_LT(norm_err(dy.host(), ref_gemm(x, w, s.n, s.m, s.k)), 1e-4)
        << s.n << "x" << s.m << "x" << s.k;
  }
  // cuBLASLt writes bf16 only from bf16 inputs: a clear error, not a wrong result.
  DevBuf<uint16_t> a(64 * 64), b(64 * 64), y(64 * 64);
  const Status bad =
      (*gemm)->run(a.get(), b.get(), y.get(), cu::GemmOut::kBF16, 64, 64, 64, nullptr);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("f16"), std::string::npos) << bad.to_string();
}

// The plain decode GEMV and its gated form on f16, every row count, odd shapes.
TEST(CudaF16Ops, GemvMatchesDoubleReference) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(103);
  struct Shape {
    int N, K;
  };
  for (const Shape s : {Shape{1, 8}, Shape{38, 264}, Shape{130, 4096}, Shape{1002, 776}}) {
    for (int n = 1; n <= cu::kGemvMaxRows; ++n) {
      const auto x = f16_round(random_floats(size_t(n) * s.K, rng, -4, 4));
      const auto w = f16_round(random_floats(size_t(s.N) * s.K, rng));
      const auto ref = ref_gemm(x, w, n, s.N, s.K);
      DevBuf<uint16_t> dx(to_f16(x)), dw(to_f16(w));
      DevBuf<float> dy(size_t(n) * s.N);  // poisoned: unwritten outputs stay NaN
      cu::launch_gemv(dx.get(), dw.get(), dy.get(), n, s.N, s.K, nullptr, 0, kF16);
      SGL_CUDA_ASSERT(cudaGetLastError());
      const std::string what =
          std::to_string(n) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K);
      EXPECT_LT(norm_err(dy.host(), ref), 1e-5) << what;
      // The variants are bf16 only; asked for one, f16 runs the default.
      DevBuf<float> dv(size_t(n) * s.N);
      cu::launch_gemv(dx.get(), dw.get(), dv.get(), n, s.N, s.K, nullptr, 3, kF16);
      SGL_CUDA_ASSERT(cudaGetLastError());
      EXPECT_EQ(dv.host(), dy.host()) << what;
      if (s.N % 2 != 0) continue;
      const int F = s.N / 2;
      DevBuf<uint16_t> dact(size_t(n) * F);
      cu::launch_gemv_gate_up_silu(dx.get(), dw.get(), dact.get(), n, F, s.K, nullptr, 0, kF16);
      SGL_CUDA_ASSERT(cudaGetLastError());
      EXPECT_LT(norm_err(from_f16(dact.host()), ref_silu(ref, n, F)), kF16OutTol)
          << "gated " << what;
    }
  }
}

// The fused decode GEMVs on f16: the norm prologue (f16 activations) with the f32, gated and
// QKV + RoPE epilogues, and the residual add, K split over warps (few rows) and not (40000 rows).
TEST(CudaF16Ops, FusedGemvsMatchReference) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(104);
  const float eps = 1e-5f;
  struct Shape {
    int N, K;
  };
  for (const Shape s : {Shape{6, 264}, Shape{130, 4096}, Shape{40000, 512}}) {
    for (int n : {1, 3, 8}) {
      const int n_src = n + 2;
      const auto x = random_floats(size_t(n_src) * s.K, rng, -3, 3);
      const auto g = random_floats(s.K, rng, 0.5f, 1.5f);
      const auto w = f16_round(random_floats(size_t(s.N) * s.K, rng));
      std::vector<int32_t> rows(n);
      for (int i = 0; i < n; ++i) rows[i] = n_src - 1 - i;  // gathered, reversed
      std::vector<float> act(size_t(n) * s.K);
      for (int i = 0; i < n; ++i)
        cpu::rms_norm(x.data() + size_t(rows[i]) * s.K, g.data(), act.data() + size_t(i) * s.K, 1,
                      s.K, eps);
      act = f16_round(act);
      const auto ref = ref_gemm(act, w, n, s.N, s.K);
      DevBuf<float> dx(x), dg(g);
      DevBuf<int32_t> drows(rows);
      DevBuf<uint16_t> dw(to_f16(w));
      cu::GemvNormIn in;
      in.x = dx.get();
      in.rows = drows.get();
      in.weight = dg.get();
      in.eps = eps;
      const std::string what =
          std::to_string(n) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K);
      DevBuf<float> dy(size_t(n) * s.N);
      cu::launch_gemv_norm(in, dw.get(), dy.get(), n, s.N, s.K, nullptr, kF16);
      SGL_CUDA_ASSERT(cudaGetLastError());
      EXPECT_LT(norm_err(dy.host(), ref), 1e-3) << what;  // an activation may round the other way
      const int F = s.N / 2;
      DevBuf<uint16_t> dact(size_t(n) * F);
      cu::launch_gemv_norm_gate_up_silu(in, dw.get(), dact.get(), n, F, s.K, nullptr, kF16);
      SGL_CUDA_ASSERT(cudaGetLastError());
      EXPECT_LT(norm_err(from_f16(dact.host()), ref_silu(ref, n, F)), kF16OutTol)
          << "gated " << what;
      const auto resid = random_floats(size_t(n) * s.N, rng, -2, 2);
      DevBuf<float> dr(resid);
      DevBuf<uint16_t> da(to_f16(act));
      cu::launch_gemv_add(da.get(), dw.get(), dr.get(), n, s.N, s.K, nullptr, kF16);
      SGL_CUDA_ASSERT(cudaGetLastError());
      std::vector<float> want(resid.size());
      for (size_t i = 0; i < want.size(); ++i) want[i] = float(double(resid[i]) + ref[i]);
      EXPECT_LT(norm_err(dr.host(), want), 1e-5) << "add " << what;
    }
  }
  // QKV with bias + NEOX RoPE + the Q write and the K/V store (bf16 pool), f16 weights.
  const int n_head = 8, n_head_kv = 4, D = 64, rope_dim = 64, K = 1024, n = 3, capacity = 16;
  const int width = (n_head + 2 * n_head_kv) * D;
  const auto w = f16_round(random_floats(size_t(width) * K, rng));
  const auto x = random_floats(size_t(n) * K, rng, -3, 3);
  const auto g = random_floats(K, rng, 0.5f, 1.5f);
  const auto bias = random_floats(width, rng);
  std::vector<int32_t> pos = {5, 700, 31000}, slots = {9, 2, 14};
  cpu::RopeParams rp;
  rp.layout = cpu::RopeLayout::kNeox;
  rp.head_dim = D;
  rp.rope_dim = rope_dim;
  rp.freq_base = 1e6f;
  std::vector<float> cs(size_t(n) * rope_dim);
  cpu::rope_table(rp, pos.data(), n, cs.data());
  std::vector<float> act(size_t(n) * K);
  cpu::rms_norm(x.data(), g.data(), act.data(), n, K, eps);
  auto ref = ref_gemm(f16_round(act), w, n, width, K);
  for (int t = 0; t < n; ++t)
    cpu::add(ref.data() + size_t(t) * width, bias.data(), ref.data() + size_t(t) * width, width);
  cpu::rope_apply(rp, cs.data(), ref.data(), n, n_head, width);
  cpu::rope_apply(rp, cs.data(), ref.data() + n_head * D, n, n_head_kv, width);
  DevBuf<float> dx(x), dg(g), dbias(bias), dcs(cs);
  DevBuf<uint16_t> dw(to_f16(w));
  DevBuf<int32_t> dslots(slots);
  DevBuf<uint16_t> dq(size_t(n) * n_head * D), dk(size_t(capacity) * n_head_kv * D),
      dv(size_t(capacity) * n_head_kv * D);
  cu::QkvRopeArgs a;
  a.bias = dbias.get();
  a.cos_sin = dcs.get();
  a.out_slots = dslots.get();
  a.n = n;
  a.n_head = n_head;
  a.n_head_kv = n_head_kv;
  a.head_dim = D;
  a.rope_dim = rope_dim;
  a.neox = true;
  a.q_out = dq.get();
  a.k_cache = dk.get();
  a.v_cache = dv.get();
  a.kv_elem = cu::KvElem::kBF16;
  ASSERT_TRUE(cu::gemv_norm_qkv_rope_supported(a, K));
  cu::GemvNormIn in;
  in.x = dx.get();
  in.weight = dg.get();
  in.eps = eps;
  cu::launch_gemv_norm_qkv_rope(in, dw.get(), a, K, nullptr, kF16);
  SGL_CUDA_ASSERT(cudaGetLastError());
  const auto q = from_bf16(dq.host());
  const auto kr = dk.host(), vr = dv.host();
  std::vector<float> q_ref, k_got, k_ref, v_got, v_ref;
  for (int t = 0; t < n; ++t) {
    const float* r = ref.data() + size_t(t) * width;
    q_ref.insert(q_ref.end(), r, r + n_head * D);
    k_ref.insert(k_ref.end(), r + n_head * D, r + (n_head + n_head_kv) * D);
    v_ref.insert(v_ref.end(), r + (n_head + n_head_kv) * D, r + width);
    for (int i = 0; i < n_head_kv * D; ++i) {
      k_got.push_back(bf16_to_fp32(kr[size_t(slots[t]) * n_head_kv * D + i]));
      v_got.push_back(bf16_to_fp32(vr[size_t(slots[t]) * n_head_kv * D + i]));
    }
  }
  // Q and K/V are bf16 whatever the weights are.
  EXPECT_LT(norm_err(q, q_ref), 4e-3);
  EXPECT_LT(norm_err(k_got, k_ref), 4e-3);
  EXPECT_LT(norm_err(v_got, v_ref), 4e-3);
}

// ---- Tiny models end to end ----

class CudaF16ModelTest : public TinyModelTest {
 protected:
  void SetUp() override {
    SGL_REQUIRE_GPU();
    load_tiny("cuda_f16");
  }
  Result<std::unique_ptr<backend::CudaBackend>> gpu(backend::WeightDtype dtype) {
    backend::CudaBackendOptions go;
    go.kv_capacity = 512;
    go.progress = false;
    go.dtype = dtype;
    return backend::CudaBackend::create(*model_, go);
  }
};

// A prompt prefilled in two chunks (the second over the cached prefix; 64+ tokens take the
// tensor-core prefill kernel), then decode steps through the graphs and the fused GEMVs, with f16
// weights, against the CPU backend (f32 KV) and beside the bf16 run; the GPU's greedy token of
// every decode step is the argmax of its own logits.
TEST_P(CudaF16ModelTest, LogitsMatchCpuAndBf16) {
  backend::CpuBackendOptions co;
  co.kv_dtype = backend::KvDtype::kF32;
  co.kv_capacity = 512;
  co.n_threads = 2;
  auto cpu = backend::CpuBackend::create(*model_, co);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto f16 = gpu(backend::WeightDtype::kF16);
  ASSERT_TRUE(f16.is_ok()) << f16.status().to_string();
  EXPECT_EQ((*f16)->weight_dtype(), backend::WeightDtype::kF16);
  auto bf16 = gpu(backend::WeightDtype::kBF16);
  ASSERT_TRUE(bf16.is_ok()) << bf16.status().to_string();
  EXPECT_EQ((*bf16)->weight_dtype(), backend::WeightDtype::kBF16);
  EXPECT_EQ((*f16)->weight_bytes(), (*bf16)->weight_bytes());
  // auto: f16 for the checkpoint whose matrices are all f16, bf16 for the f32 files.
  {
    auto a = gpu(backend::WeightDtype::kAuto);
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    EXPECT_EQ((*a)->weight_dtype(), GetParam().f16_matrices ? backend::WeightDtype::kF16
                                                            : backend::WeightDtype::kBF16);
  }

  std::mt19937 rng(31);
  const int prompt = 100, split = 70, steps = 8;
  const auto toks = random_tokens(prompt + steps, rng);
  std::vector<int32_t> slots;
  for (int i = 0; i < prompt + steps; ++i) slots.push_back(400 - 3 * i);

  // Each backend: chunk [0, split), chunk [split, prompt), then one token per step; all rows.
  auto run = [&](backend::Backend& be, bool greedy) {
    std::vector<std::vector<float>> rows;
    backend::ForwardBatch fb;
    backend::Logits lg;
    for (auto [b, e] : {std::pair{0, split}, std::pair{split, prompt}}) {
      fb.clear();
      fb.add_sequence(toks.data() + b, e - b, b, slots.data(), false);
      for (int i = 0; i < e - b; ++i) fb.logit_rows.push_back(i);
      EXPECT_TRUE(be.forward(fb, &lg).is_ok());
      for (int i = 0; i < e - b; ++i) rows.push_back(row_of(lg, i));
    }
    for (int s = 0; s < steps; ++s) {
      fb.clear();
      fb.add_sequence(&toks[prompt + s], 1, prompt + s, slots.data(), true);
      EXPECT_TRUE(be.forward(fb, &lg).is_ok());
      rows.push_back(row_of(lg, 0));
      if (greedy) {
        std::vector<int32_t> g;
        auto* cb = dynamic_cast<backend::CudaBackend*>(&be);
        EXPECT_TRUE(cb->forward_greedy(fb, &g).is_ok());  // rewrites the same K/V
        EXPECT_EQ(g.at(0), runtime::Sampler::argmax(rows.back())) << "step " << s;
      }
    }
    return rows;
  };
  const auto ref = run(**cpu, false);
  const auto got16 = run(**f16, true);
  const auto gotb = run(**bf16, false);
  ASSERT_EQ(got16.size(), ref.size());
  RowStats s16, sb, pair;
  for (size_t i = 0; i < ref.size(); ++i) {
    s16.add(got16[i], ref[i], 5e-2, "f16 vs cpu");
    sb.add(gotb[i], ref[i]);
    pair.add(got16[i], gotb[i]);
  }
  EXPECT_GE(s16.top1_same, int(ref.size()) * 9 / 10);
  EXPECT_LT(pair.worst, 5e-2);
  EXPECT_GT(pair.worst, 0.0);  // the f16 run is not the bf16 run
  std::printf(
      "[ %s%s ] worst row error vs CPU: f16 %.3g, bf16 %.3g; f16 vs bf16 %.3g; "
      "top-1 %d/%zu\n",
      GetParam().arch.c_str(), GetParam().f16_matrices ? " f16 file" : "", s16.worst, sb.worst,
      pair.worst, s16.top1_same, ref.size());
}

INSTANTIATE_TEST_SUITE_P(
    Archs, CudaF16ModelTest,
    ::testing::Values(
        TinyModelSpec{},  // llama, f32 file
        TinyModelSpec{.arch = "qwen2", .head_dim = 64, .bias = true, .tied = true},
        // An f16 checkpoint (its matrices F16 tensors), head_dim 64 (tensor-core prefill).
        TinyModelSpec{
            .n_embd = 128, .n_head = 2, .n_head_kv = 1, .head_dim = 64, .f16_matrices = true}),
    [](const auto& info) {
      return info.param.arch + (info.param.f16_matrices ? "_f16file" : "") + "_" +
             std::to_string(info.index);
    });

// A weight beyond f16's range fails an f16 load with the tensor's name and the way out; the same
// model loads in bf16. --dtype float32 is refused.
class CudaF16LoadTest : public TinyModelTest {
 protected:
  void SetUp() override {
    SGL_REQUIRE_GPU();
    load_tiny("cuda_f16_load");
  }
};

TEST_P(CudaF16LoadTest, OutOfRangeWeightAndFloat32AreErrors) {
  backend::CudaBackendOptions go;
  go.kv_capacity = 64;
  go.progress = false;
  go.dtype = backend::WeightDtype::kF16;
  auto f16 = backend::CudaBackend::create(*model_, go);
  ASSERT_FALSE(f16.is_ok());
  const std::string msg = f16.status().message();
  EXPECT_NE(msg.find("blk.0.ffn_down.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("65504"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--dtype bfloat16"), std::string::npos) << msg;
  go.dtype = backend::WeightDtype::kBF16;
  auto bf16 = backend::CudaBackend::create(*model_, go);
  EXPECT_TRUE(bf16.is_ok()) << bf16.status().to_string();
  go.dtype = backend::WeightDtype::kF32;
  auto f32 = backend::CudaBackend::create(*model_, go);
  ASSERT_FALSE(f32.is_ok());
  EXPECT_NE(f32.status().message().find("float32"), std::string::npos) << f32.status().to_string();
  // Dummy weights take the same refusal.
  auto d32 = backend::CudaBackend::create_dummy(model_->config, go);
  EXPECT_FALSE(d32.is_ok());
}

INSTANTIATE_TEST_SUITE_P(Big, CudaF16LoadTest,
                         ::testing::Values(TinyModelSpec{.big_weight = 70000.0f}));

// Dummy weights in f16 (the benchmark path): a decode step runs and gives finite logits that
// differ from the bf16 dummy model's by rounding only (the same draws).
TEST(CudaF16Dummy, DummyWeightsCloseToBf16) {
  SGL_REQUIRE_GPU();
  model::ModelConfig c;
  c.arch = "llama";
  c.n_vocab = 1000;
  c.n_embd = 256;
  c.n_layer = 2;
  c.n_ff = 512;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 64;
  c.context_length = 1024;
  c.rms_eps = 1e-5f;
  c.rope_freq_base = 10000.0f;
  backend::CudaBackendOptions go;
  go.kv_capacity = 64;
  go.progress = false;
  go.dtype = backend::WeightDtype::kF16;
  auto f16 = backend::CudaBackend::create_dummy(c, go, 5);
  ASSERT_TRUE(f16.is_ok()) << f16.status().to_string();
  go.dtype = backend::WeightDtype::kBF16;
  auto bf16 = backend::CudaBackend::create_dummy(c, go, 5);
  ASSERT_TRUE(bf16.is_ok()) << bf16.status().to_string();
  std::mt19937 rng(41);
  std::vector<int32_t> toks(20), slots(20);
  for (int i = 0; i < 20; ++i) {
    toks[i] = int32_t(rng() % 1000);
    slots[i] = i;
  }
  backend::ForwardBatch fb;
  fb.add_sequence(toks.data(), 20, 0, slots.data(), true);
  backend::Logits a, b;
  ASSERT_TRUE((*f16)->forward(fb, &a).is_ok());
  ASSERT_TRUE((*bf16)->forward(fb, &b).is_ok());
  const double e = norm_err(row_of(a, 0), row_of(b, 0));
  EXPECT_LT(e, 5e-2);
  EXPECT_GT(e, 0.0);
  std::printf("[ dummy ] f16 vs bf16 dummy weights: row error %.3g\n", e);
}

}  // namespace
}  // namespace sgl::cuda_test

#else

TEST(CudaF16Weights, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (-DSGL_CUDA=ON)"; }

#endif
