// Kernel parity suite of the CUDA backend: every CUDA op against the CPU backend's reference (or
// a double-precision computation for GEMMs) on fresh random inputs of many shapes, with
// normalized-error thresholds suited to bf16 outputs. Skips without CUDA or without a GPU.
//
// Thresholds: ||gpu - ref|| / ||ref||. A bf16 output alone carries up to 2^-9 relative rounding
// per element (about 1.1e-3 in the L2 norm for uniform data), so ops with bf16 outputs pass at
// 4e-3; f32-output GEMMs (bf16 inputs, f32 accumulation, compared with double sums of the same
// bf16 inputs) at 1e-4; attention (bf16 q/K/V, f32 softmax, bf16 output) at 5e-3.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "cuda_attention_util.h"
#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA

#include "backend/cpu/attention.h"
#include "backend/cpu/ops.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "runtime/sampler.h"

namespace sgl::cuda_test {
namespace {

namespace cu = backend::cuda;
namespace cpu = backend::cpu;

constexpr double kBf16OutTol = 4e-3;

TEST(CudaOps, Embedding) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(1);
  for (int dim : {64, 576, 4096}) {
    const int vocab = 1000, n = 37;
    const auto table = to_bf16(random_floats(size_t(vocab) * dim, rng));
    std::vector<int32_t> toks(n);
    for (auto& t : toks) t = rng() % vocab;
    DevBuf<uint16_t> d_table(table);
    DevBuf<int32_t> d_toks(toks);
    DevBuf<float> d_x(size_t(n) * dim);
    cu::launch_embedding(d_table.get(), d_toks.get(), n, dim, d_x.get(), nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    const auto x = d_x.host();
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < dim; ++i)
        ASSERT_EQ(x[size_t(t) * dim + i], bf16_to_fp32(table[size_t(toks[t]) * dim + i]));
  }
}

TEST(CudaOps, RmsNormAndFusedAdd) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(2);
  for (int dim : {64, 576, 896, 4096, 8192}) {
    for (int n : {1, 5, 33}) {
      const auto x = random_floats(size_t(n) * dim, rng, -3, 3);
      const auto delta = random_floats(size_t(n) * dim, rng);
      const auto w = random_floats(dim, rng, 0.5f, 1.5f);
      const float eps = 1e-5f;
      // Plain norm.
      {
        DevBuf<float> dx(x), dw(w);
        DevBuf<uint16_t> dy(size_t(n) * dim);
        cu::launch_rms_norm(dx.get(), dw.get(), dy.get(), n, dim, eps, nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());
        std::vector<float> ref(x.size());
        cpu::rms_norm(x.data(), w.data(), ref.data(), n, dim, eps);
        EXPECT_LT(norm_err(from_bf16(dy.host()), ref), kBf16OutTol) << dim << " " << n;
      }
      // x += delta, then norm.
      {
        DevBuf<float> dx(x), dd(delta), dw(w);
        DevBuf<uint16_t> dy(size_t(n) * dim);
        cu::launch_add_rms_norm(dx.get(), dd.get(), dw.get(), dy.get(), n, dim, eps, nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());
        std::vector<float> sum(x.size()), ref(x.size());
        cpu::add(x.data(), delta.data(), sum.data(), static_cast<int64_t>(x.size()));
        cpu::rms_norm(sum.data(), w.data(), ref.data(), n, dim, eps);
        EXPECT_EQ(dx.host(), sum);  // f32 adds are exact-rounded on both sides
        EXPECT_LT(norm_err(from_bf16(dy.host()), ref), kBf16OutTol) << dim << " " << n;
      }
      // Logit-row selection: gather + norm.
      {
        std::vector<int32_t> rows;
        for (int r = n - 1; r >= 0; r -= 2) rows.push_back(r);
        std::reverse(rows.begin(), rows.end());
        DevBuf<float> dx(x), dw(w);
        DevBuf<int32_t> dr(rows);
        DevBuf<uint16_t> dy(rows.size() * dim);
        cu::launch_gather_rms_norm(dx.get(), dr.get(), int(rows.size()), dim, dw.get(), eps,
                                   dy.get(), nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());
        std::vector<float> ref(rows.size() * dim);
        for (size_t r = 0; r < rows.size(); ++r)
          cpu::rms_norm(x.data() + size_t(rows[r]) * dim, w.data(), ref.data() + r * dim, 1, dim,
                        eps);
        EXPECT_LT(norm_err(from_bf16(dy.host()), ref), kBf16OutTol);
      }
    }
  }
}

TEST(CudaOps, SiluMul) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(3);
  for (int F : {128, 1536, 14336}) {
    for (int n : {1, 9}) {
      const auto gu = random_floats(size_t(n) * 2 * F, rng, -6, 6);
      DevBuf<float> dgu(gu);
      DevBuf<uint16_t> dout(size_t(n) * F);
      cu::launch_silu_mul(dgu.get(), n, F, dout.get(), nullptr);
      SGL_CUDA_ASSERT(cudaGetLastError());
      std::vector<float> ref(size_t(n) * F);
      for (int t = 0; t < n; ++t)
        cpu::silu_mul(gu.data() + size_t(t) * 2 * F, gu.data() + size_t(t) * 2 * F + F,
                      ref.data() + size_t(t) * F, F);
      EXPECT_LT(norm_err(from_bf16(dout.host()), ref), kBf16OutTol) << F << " " << n;
    }
  }
}

struct RopeCase {
  int n_head, n_head_kv, head_dim, rope_dim;
  bool neox, bias;
  float base;
  bool factors;
};

// The outputs of a QKV store for a RopeCase (Q [n, n_head, D] bf16; K/V pools of `capacity`
// slots, poisoned) and the arguments pointing at them; the caller sets `a.qkv` where the store
// reads it.
struct QkvStoreOut {
  QkvStoreOut(const RopeCase& rc, int n, int capacity, cu::KvElem kv_elem, const int32_t* slots,
              const float* cos_sin, const float* bias)
      : rc(rc),
        n(n),
        capacity(capacity),
        dq(size_t(n) * rc.n_head * rc.head_dim),
        dk(size_t(capacity) * rc.n_head_kv * rc.head_dim),
        dv(size_t(capacity) * rc.n_head_kv * rc.head_dim) {
    a.bias = bias;
    a.cos_sin = cos_sin;
    a.out_slots = slots;
    a.n = n;
    a.n_head = rc.n_head;
    a.n_head_kv = rc.n_head_kv;
    a.head_dim = rc.head_dim;
    a.rope_dim = rc.rope_dim;
    a.neox = rc.neox;
    a.q_out = dq.get();
    a.k_cache = dk.get();
    a.v_cache = dv.get();
    a.kv_elem = kv_elem;
  }

  // Q, and K and V read back from the tokens' slots, against the reference rows ref [n, (n_head
  // + 2 n_head_kv) D] (Q | K | V); the other slots still hold the poison. Returns Q.
  std::vector<float> expect_matches(const std::vector<float>& ref,
                                    const std::vector<int32_t>& slots,
                                    const std::string& what) const {
    const int D = rc.head_dim, width = (rc.n_head + 2 * rc.n_head_kv) * D;
    const int kv_row = rc.n_head_kv * D;
    const auto q = from_bf16(dq.host());
    const auto k_raw = dk.host(), v_raw = dv.host();
    auto kv_val = [&](uint16_t b) {
      return a.kv_elem == cu::KvElem::kBF16 ? bf16_to_fp32(b) : fp16_to_fp32(b);
    };
    std::vector<float> q_ref, k_got, k_ref, v_got, v_ref;
    for (int t = 0; t < n; ++t) {
      const float* r = ref.data() + size_t(t) * width;
      q_ref.insert(q_ref.end(), r, r + rc.n_head * D);
      k_ref.insert(k_ref.end(), r + rc.n_head * D, r + rc.n_head * D + kv_row);
      v_ref.insert(v_ref.end(), r + rc.n_head * D + kv_row, r + width);
      for (int i = 0; i < kv_row; ++i) {
        k_got.push_back(kv_val(k_raw[size_t(slots[t]) * kv_row + i]));
        v_got.push_back(kv_val(v_raw[size_t(slots[t]) * kv_row + i]));
      }
    }
    EXPECT_LT(norm_err(q, q_ref), kBf16OutTol) << what;
    EXPECT_LT(norm_err(k_got, k_ref), kBf16OutTol) << what;
    EXPECT_LT(norm_err(v_got, v_ref), kBf16OutTol) << what;
    for (int sl = 0; sl < capacity; ++sl)
      if (std::find(slots.begin(), slots.end(), sl) == slots.end()) {
        EXPECT_EQ(k_raw[size_t(sl) * kv_row], 0xFFFF) << what << " slot " << sl;
      }
    return q;
  }

  RopeCase rc;
  int n, capacity;
  DevBuf<uint16_t> dq, dk, dv;
  cu::QkvRopeArgs a;
};

TEST(CudaOps, RopeTableAndQkvStore) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(4);
  const RopeCase cases[] = {
      {4, 2, 16, 16, false, false, 10000.0f, false},    {4, 2, 16, 16, true, true, 10000.0f, false},
      {32, 8, 128, 128, false, false, 500000.0f, true}, {32, 8, 128, 128, true, false, 5e5f, true},
      {14, 2, 64, 64, true, true, 1e6f, false},         {8, 8, 64, 32, false, false, 1e4f, false},
      {8, 4, 64, 32, true, true, 1e4f, false},
  };
  for (const auto& rc : cases) {
    for (const auto kv_elem : {cu::KvElem::kBF16, cu::KvElem::kF16}) {
      const int n = 13, D = rc.head_dim;
      const int width = (rc.n_head + 2 * rc.n_head_kv) * D;
      const int capacity = 64;
      std::vector<int32_t> pos(n), slots(n);
      for (int t = 0; t < n; ++t) pos[t] = int(rng() % 100000);
      const std::vector<int32_t> perm = shuffled_slots(capacity, rng);
      std::copy(perm.begin(), perm.begin() + n, slots.begin());
      std::vector<float> factors;
      if (rc.factors) factors = random_floats(rc.rope_dim / 2, rng, 1.0f, 8.0f);
      cpu::RopeParams rp;
      rp.layout = rc.neox ? cpu::RopeLayout::kNeox : cpu::RopeLayout::kNorm;
      rp.head_dim = D;
      rp.rope_dim = rc.rope_dim;
      rp.freq_base = rc.base;
      rp.freq_factors = factors.empty() ? nullptr : factors.data();
      // The device takes inv_freq with the factors folded in (as CudaBackend computes it).
      std::vector<double> inv(rc.rope_dim / 2);
      for (int i = 0; i < rc.rope_dim / 2; ++i) {
        inv[i] = std::pow(double(rc.base), -2.0 * i / rc.rope_dim);
        if (!factors.empty()) inv[i] /= factors[i];
      }
      DevBuf<double> dinv(inv);
      DevBuf<int32_t> dpos(pos), dslots(slots);
      DevBuf<float> dcs(size_t(n) * rc.rope_dim);
      cu::launch_rope_table(dinv.get(), rc.rope_dim, dpos.get(), n, dcs.get(), nullptr);
      SGL_CUDA_ASSERT(cudaGetLastError());
      std::vector<float> cs_ref(size_t(n) * rc.rope_dim);
      cpu::rope_table(rp, pos.data(), n, cs_ref.data());
      const auto cs = dcs.host();
      for (size_t i = 0; i < cs.size(); ++i) ASSERT_NEAR(cs[i], cs_ref[i], 2e-6) << i;

      const auto qkv = random_floats(size_t(n) * width, rng, -2, 2);
      const auto bias = rc.bias ? random_floats(width, rng) : std::vector<float>();
      DevBuf<float> dqkv(qkv), dbias(bias), dcs_ref(cs_ref);
      QkvStoreOut out(rc, n, capacity, kv_elem, dslots.get(), dcs_ref.get(),
                      rc.bias ? dbias.get() : nullptr);
      out.a.qkv = dqkv.get();
      cu::launch_qkv_rope_store(out.a, nullptr);
      SGL_CUDA_ASSERT(cudaGetLastError());

      // Reference: bias, rope_apply on Q and K, then the rows.
      std::vector<float> ref = qkv;
      if (rc.bias)
        for (int t = 0; t < n; ++t)
          cpu::add(ref.data() + size_t(t) * width, bias.data(), ref.data() + size_t(t) * width,
                   width);
      cpu::rope_apply(rp, cs_ref.data(), ref.data(), n, rc.n_head, width);
      cpu::rope_apply(rp, cs_ref.data(), ref.data() + rc.n_head * D, n, rc.n_head_kv, width);
      const auto q =
          out.expect_matches(ref, slots, std::to_string(D) + " neox " + std::to_string(rc.neox));
      // A wrong layout must fail the same threshold (the check has teeth).
      cpu::RopeParams wrong = rp;
      wrong.layout = rc.neox ? cpu::RopeLayout::kNorm : cpu::RopeLayout::kNeox;
      std::vector<float> bad = qkv;
      if (rc.bias)
        for (int t = 0; t < n; ++t)
          cpu::add(bad.data() + size_t(t) * width, bias.data(), bad.data() + size_t(t) * width,
                   width);
      cpu::rope_apply(wrong, cs_ref.data(), bad.data(), n, rc.n_head, width);
      std::vector<float> q_bad;
      for (int t = 0; t < n; ++t)
        q_bad.insert(q_bad.end(), bad.data() + size_t(t) * width,
                     bad.data() + size_t(t) * width + rc.n_head * D);
      EXPECT_GT(norm_err(q, q_bad), 0.05);
    }
  }
}

TEST(CudaOps, Argmax) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(5);
  for (int V : {7, 1000, 49152, 128256}) {
    const int rows = 6;
    auto x = random_floats(size_t(rows) * V, rng, -10, 10);
    // Row 1: a tie between two positions (the lower index must win); row 2: all equal.
    if (V > 3) {
      x[size_t(V) + V - 1] = 50.0f;
      x[size_t(V) + V / 2] = 50.0f;
    }
    std::fill(x.begin() + 2 * V, x.begin() + 3 * V, 1.0f);
    // Row 3: all -inf (index 0, as the sampler); row 4: the maximum at the very end.
    std::fill(x.begin() + 3 * V, x.begin() + 4 * V, -INFINITY);
    x[size_t(4) * V + V - 1] = 99.0f;
    DevBuf<float> dx(x);
    DevBuf<int32_t> dout(rows), dsplit(rows);
    DevBuf<uint8_t> ws(cu::argmax_workspace_bytes(rows, V));
    cu::launch_argmax(dx.get(), rows, V, dout.get(), nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    cu::launch_argmax_split(dx.get(), rows, V, ws.get(), dsplit.get(), nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    const auto out = dout.host(), split = dsplit.host();
    for (int r = 0; r < rows; ++r) {
      const int32_t want = runtime::Sampler::argmax({x.data() + size_t(r) * V, size_t(V)});
      EXPECT_EQ(out[r], want) << "V " << V << " row " << r;
      EXPECT_EQ(split[r], want) << "split, V " << V << " row " << r;
    }
  }
}

TEST(CudaOps, GemmMatchesDoubleReference) {
  SGL_REQUIRE_GPU();
  auto gemm = backend::cuda::Gemm::create();
  ASSERT_TRUE(gemm.is_ok()) << gemm.status().to_string();
  std::mt19937 rng(6);
  struct Shape {
    int n, m, k;
  };
  for (const Shape s : {Shape{1, 4096, 4096}, Shape{3, 6144, 4096}, Shape{7, 1000, 64},
                        Shape{64, 384, 576}, Shape{200, 1536, 896}, Shape{33, 128256 / 16, 512}}) {
    const auto x = bf16_round(random_floats(size_t(s.n) * s.k, rng));
    const auto w = bf16_round(random_floats(size_t(s.m) * s.k, rng));
    DevBuf<uint16_t> dx(to_bf16(x)), dw(to_bf16(w));
    DevBuf<float> dy(size_t(s.n) * s.m);
    DevBuf<uint16_t> dyb(size_t(s.n) * s.m);
    ASSERT_TRUE((*gemm)
                    ->run(dx.get(), dw.get(), dy.get(), backend::cuda::GemmOut::kF32, s.n, s.m, s.k,
                          nullptr)
                    .is_ok());
    ASSERT_TRUE((*gemm)
                    ->run(dx.get(), dw.get(), dyb.get(), backend::cuda::GemmOut::kBF16, s.n, s.m,
                          s.k, nullptr)
                    .is_ok());
    std::vector<float> ref(size_t(s.n) * s.m);
    for (int i = 0; i < s.n; ++i)
      for (int j = 0; j < s.m; ++j) {
        double acc = 0;
        for (int kk = 0; kk < s.k; ++kk)
          acc += double(x[size_t(i) * s.k + kk]) * w[size_t(j) * s.k + kk];
        ref[size_t(i) * s.m + j] = float(acc);
      }
    EXPECT_LT(norm_err(dy.host(), ref), 1e-4) << s.n << "x" << s.m << "x" << s.k;
    EXPECT_LT(norm_err(from_bf16(dyb.host()), ref), kBf16OutTol) << s.n << "x" << s.m;
  }
}

// The decode GEMV (every tiling variant) against double sums on the same bf16 inputs, for every
// row count it takes, odd output counts (partial warps and blocks) and K not a multiple of the
// 256-column step; the gated form against cpu::silu_mul of the reference gate|up rows.
TEST(CudaOps, GemvMatchesDoubleReference) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(11);
  struct Shape {
    int N, K;
  };
  for (const Shape s : {Shape{1, 8}, Shape{7, 264}, Shape{37, 1000}, Shape{129, 4096},
                        Shape{1001, 776}, Shape{6144, 4096}, Shape{33, 14336}}) {
    for (int n = 1; n <= cu::kGemvMaxRows; ++n) {
      if (s.N * s.K > 1 << 22 && n != 1 && n != 5 && n != cu::kGemvMaxRows) continue;
      ASSERT_TRUE(cu::gemv_supported(n, s.N, s.K));
      const auto x = bf16_round(random_floats(size_t(n) * s.K, rng));
      const auto w = bf16_round(random_floats(size_t(s.N) * s.K, rng));
      DevBuf<uint16_t> dx(to_bf16(x)), dw(to_bf16(w));
      std::vector<float> ref(size_t(n) * s.N);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < s.N; ++j) {
          double acc = 0;
          for (int kk = 0; kk < s.K; ++kk)
            acc += double(x[size_t(i) * s.K + kk]) * w[size_t(j) * s.K + kk];
          ref[size_t(i) * s.N + j] = float(acc);
        }
      for (int variant = 0; variant <= 4; ++variant) {
        DevBuf<float> dy(size_t(n) * s.N);  // poisoned: unwritten outputs stay NaN
        cu::launch_gemv(dx.get(), dw.get(), dy.get(), n, s.N, s.K, nullptr, variant);
        SGL_CUDA_ASSERT(cudaGetLastError());
        EXPECT_LT(norm_err(dy.host(), ref), 1e-5)
            << n << "x" << s.N << "x" << s.K << " variant " << variant;
      }
      if (s.N % 2 != 0) continue;
      const int F = s.N / 2;
      std::vector<float> act_ref(size_t(n) * F);
      for (int i = 0; i < n; ++i)
        cpu::silu_mul(ref.data() + size_t(i) * s.N, ref.data() + size_t(i) * s.N + F,
                      act_ref.data() + size_t(i) * F, F);
      for (int variant = 0; variant <= 4; ++variant) {
        DevBuf<uint16_t> dact(size_t(n) * F);
        cu::launch_gemv_gate_up_silu(dx.get(), dw.get(), dact.get(), n, F, s.K, nullptr, variant);
        SGL_CUDA_ASSERT(cudaGetLastError());
        EXPECT_LT(norm_err(from_bf16(dact.host()), act_ref), kBf16OutTol)
            << "gated " << n << "x" << F << "x" << s.K << " variant " << variant;
      }
    }
  }
}

// rms_norm(x[rows[r]]) * w rounded to bf16 (what the fused GEMVs' prologue computes), and the
// double-precision sums of those activations with W: the reference of the fused GEMVs.
struct NormGemvRef {
  std::vector<float> act;  // [n, K] bf16 values
  std::vector<float> y;    // [n, N]
};
NormGemvRef norm_gemv_ref(const std::vector<float>& x, const std::vector<int32_t>& rows,
                          const std::vector<float>& g, const std::vector<float>& w, int N, int K,
                          float eps) {
  const int n = int(rows.size());
  NormGemvRef r;
  r.act.resize(size_t(n) * K);
  for (int i = 0; i < n; ++i)
    cpu::rms_norm(x.data() + size_t(rows[i]) * K, g.data(), r.act.data() + size_t(i) * K, 1, K,
                  eps);
  r.act = bf16_round(r.act);
  r.y.resize(size_t(n) * N);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < N; ++j) {
      double acc = 0;
      for (int kk = 0; kk < K; ++kk) acc += double(r.act[size_t(i) * K + kk]) * w[size_t(j) * K + kk];
      r.y[size_t(i) * N + j] = float(acc);
    }
  return r;
}

// The fused decode GEMVs (norm prologue with and without a row gather; f32, gated and
// residual-add epilogues) against the CPU norm + double sums, every row count, odd shapes (partial
// warps, K not a multiple of the 256-column step), K split over warps (fewer than 4096 row
// groups) and not (40000 rows), and grids that make blocks loop over several row groups. Thresholds: 1e-3 for the
// f32 outputs (the norm's sum of squares runs in another order than the CPU's, so an activation
// can round to the neighbouring bf16 value, rarely), bf16 outputs as everywhere.
TEST(CudaOps, FusedGemvMatchesReference) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(12);
  struct Shape {
    int N, K;
  };
  const float eps = 1e-5f;
  for (const Shape s : {Shape{1, 8}, Shape{6, 264}, Shape{37, 1000}, Shape{130, 4096},
                        Shape{1002, 776}, Shape{6144, 4096}, Shape{40000, 512}}) {
    for (int n = 1; n <= cu::kGemvMaxRows; ++n) {
      if (size_t(s.N) * s.K > 1 << 22 && n != 1 && n != 5 && n != cu::kGemvMaxRows) continue;
      ASSERT_TRUE(cu::gemv_norm_supported(n, s.N, s.K));
      // n + 3 residual rows; odd n reads them through a reversed row list.
      const int n_src = n + 3;
      const auto x = random_floats(size_t(n_src) * s.K, rng, -3, 3);
      const auto g = random_floats(s.K, rng, 0.5f, 1.5f);
      const auto w = bf16_round(random_floats(size_t(s.N) * s.K, rng));
      const bool gather = n % 2 == 1;
      std::vector<int32_t> rows(n);
      for (int i = 0; i < n; ++i) rows[i] = gather ? n_src - 1 - i : i;
      const NormGemvRef ref = norm_gemv_ref(x, rows, g, w, s.N, s.K, eps);
      DevBuf<float> dx(x), dg(g);
      DevBuf<int32_t> drows(rows);
      DevBuf<uint16_t> dw(to_bf16(w));
      cu::GemvNormIn in;
      in.x = dx.get();
      in.rows = gather ? drows.get() : nullptr;
      in.weight = dg.get();
      in.eps = eps;
      const std::string what = std::to_string(n) + "x" + std::to_string(s.N) + "x" +
                               std::to_string(s.K) + (gather ? " gather" : "");
      {
        DevBuf<float> dy(size_t(n) * s.N);  // poisoned: unwritten outputs stay NaN
        cu::launch_gemv_norm(in, dw.get(), dy.get(), n, s.N, s.K, nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());
        EXPECT_LT(norm_err(dy.host(), ref.y), 1e-3) << what;
      }
      if (s.N % 2 == 0) {
        const int F = s.N / 2;
        std::vector<float> act_ref(size_t(n) * F);
        for (int i = 0; i < n; ++i)
          cpu::silu_mul(ref.y.data() + size_t(i) * s.N, ref.y.data() + size_t(i) * s.N + F,
                        act_ref.data() + size_t(i) * F, F);
        DevBuf<uint16_t> dact(size_t(n) * F);
        cu::launch_gemv_norm_gate_up_silu(in, dw.get(), dact.get(), n, F, s.K, nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());
        EXPECT_LT(norm_err(from_bf16(dact.host()), act_ref), kBf16OutTol) << "gated " << what;
      }
      // Residual add: resid += act W^T, with the reference activations as the bf16 input.
      {
        const auto resid = random_floats(size_t(n) * s.N, rng, -2, 2);
        DevBuf<float> dr(resid);
        DevBuf<uint16_t> da(to_bf16(ref.act));
        cu::launch_gemv_add(da.get(), dw.get(), dr.get(), n, s.N, s.K, nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());
        std::vector<float> want(resid.size());
        for (size_t i = 0; i < want.size(); ++i) want[i] = float(double(resid[i]) + ref.y[i]);
        EXPECT_LT(norm_err(dr.host(), want), 1e-5) << "add " << what;
      }
    }
  }
}

// The QKV GEMV with the norm prologue and the bias + RoPE + Q / K / V store epilogue against the
// CPU chain (rms_norm, bf16, double sums, bias, cpu::rope_apply), for the RoPE layouts, partial
// rotary dims, biases and both KV element types, at several row counts.
TEST(CudaOps, FusedQkvRopeMatchesReference) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(13);
  const RopeCase cases[] = {
      {4, 2, 16, 16, false, false, 10000.0f, false}, {4, 2, 16, 16, true, true, 10000.0f, false},
      {32, 8, 128, 128, false, false, 5e5f, true},   {32, 8, 128, 128, true, true, 5e5f, true},
      {14, 2, 64, 64, true, true, 1e6f, false},      {8, 8, 64, 32, false, false, 1e4f, false},
      {8, 4, 64, 32, true, true, 1e4f, false},
  };
  const float eps = 1e-6f;
  for (const auto& rc : cases) {
    const int D = rc.head_dim;
    const int width = (rc.n_head + 2 * rc.n_head_kv) * D;
    const int K = D == 128 ? 4096 : 264;
    const auto w = bf16_round(random_floats(size_t(width) * K, rng));
    for (int n : {1, 3, 8}) {
      for (const auto kv_elem : {cu::KvElem::kBF16, cu::KvElem::kF16}) {
        const int capacity = 64;
        std::vector<int32_t> pos(n), slots(n), rows(n);
        for (int t = 0; t < n; ++t) pos[t] = int(rng() % 100000);
        const std::vector<int32_t> perm = shuffled_slots(capacity, rng);
        std::copy(perm.begin(), perm.begin() + n, slots.begin());
        for (int t = 0; t < n; ++t) rows[t] = t;
        cpu::RopeParams rp;
        rp.layout = rc.neox ? cpu::RopeLayout::kNeox : cpu::RopeLayout::kNorm;
        rp.head_dim = D;
        rp.rope_dim = rc.rope_dim;
        rp.freq_base = rc.base;
        std::vector<float> cs(size_t(n) * rc.rope_dim);
        cpu::rope_table(rp, pos.data(), n, cs.data());
        const auto x = random_floats(size_t(n) * K, rng, -3, 3);
        const auto g = random_floats(K, rng, 0.5f, 1.5f);
        const auto bias = rc.bias ? random_floats(width, rng) : std::vector<float>();
        NormGemvRef ref = norm_gemv_ref(x, rows, g, w, width, K, eps);
        if (rc.bias)
          for (int t = 0; t < n; ++t)
            cpu::add(ref.y.data() + size_t(t) * width, bias.data(),
                     ref.y.data() + size_t(t) * width, width);
        cpu::rope_apply(rp, cs.data(), ref.y.data(), n, rc.n_head, width);
        cpu::rope_apply(rp, cs.data(), ref.y.data() + rc.n_head * D, n, rc.n_head_kv, width);

        DevBuf<float> dx(x), dg(g), dbias(bias), dcs(cs);
        DevBuf<uint16_t> dw(to_bf16(w));
        DevBuf<int32_t> dslots(slots);
        QkvStoreOut out(rc, n, capacity, kv_elem, dslots.get(), dcs.get(),
                        rc.bias ? dbias.get() : nullptr);
        const cu::QkvRopeArgs& a = out.a;
        ASSERT_TRUE(cu::gemv_norm_qkv_rope_supported(a, K));
        cu::GemvNormIn in;
        in.x = dx.get();
        in.weight = dg.get();
        in.eps = eps;
        cu::launch_gemv_norm_qkv_rope(in, dw.get(), a, K, nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());

        out.expect_matches(ref.y, slots,
                           "D " + std::to_string(D) + " rope " + std::to_string(rc.rope_dim) +
                               " neox " + std::to_string(rc.neox) + " n " + std::to_string(n));
      }
    }
  }
}

// Not a test: GEMV bandwidth on the Llama-3.1-8B decode shapes, each variant and cuBLASLt
// (SGL_CUDA_GEMV=0 plan) side by side, weights rotated over copies well beyond L2. Run with
// --gtest_also_run_disabled_tests --gtest_filter='*GemvBandwidth*' on a GPU machine.
TEST(CudaOpsBench, DISABLED_GemvBandwidth) {
  SGL_REQUIRE_GPU();
  struct Shape {
    const char* name;
    int N, K;
  };
  const Shape shapes[] = {{"qkv", 6144, 4096},
                          {"o", 4096, 4096},
                          {"gate_up", 28672, 4096},
                          {"down", 4096, 14336},
                          {"lm_head", 128256, 4096}};
  setenv("SGL_CUDA_GEMV", "0", 1);
  auto lt = cu::Gemm::create();
  unsetenv("SGL_CUDA_GEMV");
  ASSERT_TRUE(lt.is_ok());
  cudaStream_t st = nullptr;
  SGL_CUDA_ASSERT(cudaStreamCreate(&st));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::printf("%-8s %2s %9s | %-26s | GB/s (weights read / median time)\n", "shape", "n", "MB",
              "time us: lt v0 v1 v2 v3 v4 gated0");
  for (const Shape& s : shapes) {
    const size_t wbytes = size_t(s.N) * s.K * 2;
    const int copies = int(std::max<size_t>(2, (size_t(1) << 30) / wbytes));
    DevBuf<uint16_t> w(wbytes / 2 * copies);
    cu::launch_fill_uniform_bf16(w.get(), wbytes / 2 * copies, 0.02f, 7, st);
    DevBuf<uint16_t> x(size_t(8) * (s.K + s.N));  // activations, then the gated output
    cu::launch_fill_uniform_bf16(x.get(), size_t(8) * s.K, 1.0f, 9, st);
    DevBuf<float> y(size_t(8) * s.N);
    for (int n : {1, 2, 4, 8}) {
      std::vector<double> t;
      for (int v = -1; v <= 5; ++v) {  // -1: cuBLASLt, 5: gated default
        if (v == 5 && s.N % 2 != 0) continue;
        std::vector<float> ms;
        for (int r = 0; r < 60; ++r) {
          const uint16_t* wr = w.get() + (wbytes / 2) * (r % copies);
          cudaEventRecord(e0, st);
          if (v < 0)
            ASSERT_TRUE(
                (*lt)->run(x.get(), wr, y.get(), cu::GemmOut::kF32, n, s.N, s.K, st).is_ok());
          else if (v == 5)
            cu::launch_gemv_gate_up_silu(x.get(), wr, x.get() + size_t(8) * s.K, n, s.N / 2, s.K,
                                         st);
          else
            cu::launch_gemv(x.get(), wr, y.get(), n, s.N, s.K, st, v);
          cudaEventRecord(e1, st);
          cudaEventSynchronize(e1);
          float e = 0;
          cudaEventElapsedTime(&e, e0, e1);
          if (r >= 10) ms.push_back(e);
        }
        SGL_CUDA_ASSERT(cudaGetLastError());
        std::sort(ms.begin(), ms.end());
        t.push_back(ms[ms.size() / 2] * 1e3);
      }
      std::printf("%-8s %2d %9.1f |", s.name, n, wbytes / 1e6);
      for (double us : t) std::printf(" %6.1f", us);
      std::printf(" |");
      for (double us : t) std::printf(" %5.0f", wbytes / (us * 1e-6) / 1e9);
      std::printf("\n");
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(st);
}

// Not a test: the fused decode GEMVs against the plain GEMV (+ the separate norm kernel they
// replace) on the Llama-3.1-8B shapes, weights rotated over >= 1 GiB of copies, CUDA events
// around each launch, median of 50. Run with --gtest_also_run_disabled_tests
// --gtest_filter='*FusedGemvBandwidth*' on a GPU machine.
TEST(CudaOpsBench, DISABLED_FusedGemvBandwidth) {
  SGL_REQUIRE_GPU();
  struct Shape {
    const char* name;
    int N, K;
  };
  const Shape shapes[] = {{"qkv", 6144, 4096},
                          {"o", 4096, 4096},
                          {"gate_up", 28672, 4096},
                          {"down", 4096, 14336},
                          {"lm_head", 128256, 4096}};
  cudaStream_t st = nullptr;
  SGL_CUDA_ASSERT(cudaStreamCreate(&st));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  const int E = 4096;
  DevBuf<float> resid(size_t(8) * 14336), g(E), cs(size_t(8) * 128), y(size_t(8) * 128256);
  cu::launch_fill_f32(g.get(), E, 1.0f, st);
  cu::launch_fill_f32(cs.get(), size_t(8) * 128, 0.5f, st);
  {
    DevBuf<uint16_t> tmp(size_t(8) * 14336);
    cu::launch_fill_uniform_bf16(tmp.get(), size_t(8) * 14336, 1.0f, 3, st);
    cudaStreamSynchronize(st);
    std::vector<float> r(size_t(8) * 14336);
    for (size_t i = 0; i < r.size(); ++i) r[i] = 0.001f * float(int(i % 2001) - 1000);
    cudaMemcpy(resid.get(), r.data(), r.size() * 4, cudaMemcpyHostToDevice);
  }
  DevBuf<uint16_t> x(size_t(8) * 14336), h(size_t(8) * 14336), q(size_t(8) * 4096);
  cu::launch_fill_uniform_bf16(x.get(), size_t(8) * 14336, 1.0f, 9, st);
  DevBuf<uint16_t> kc(size_t(64) * 1024), vc(size_t(64) * 1024);
  std::vector<int32_t> sl = {1, 5, 9, 13, 17, 21, 25, 29};
  DevBuf<int32_t> slots(sl);
  std::printf("%-8s %2s | us: plain fused(norm or add) [qkv: +rope] | norm kernel us | GB/s plain fused\n",
              "shape", "n");
  for (const Shape& s : shapes) {
    const size_t wbytes = size_t(s.N) * s.K * 2;
    const int copies = int(std::max<size_t>(2, (size_t(1) << 30) / wbytes));
    DevBuf<uint16_t> w(wbytes / 2 * copies);
    cu::launch_fill_uniform_bf16(w.get(), wbytes / 2 * copies, 0.02f, 7, st);
    const bool gated = std::string(s.name) == "gate_up";
    const bool adds = std::string(s.name) == "o" || std::string(s.name) == "down";
    const bool qkv = std::string(s.name) == "qkv";
    for (int n : {1, 2, 4, 8}) {
      cu::GemvNormIn in;
      in.x = resid.get();
      in.weight = g.get();
      in.eps = 1e-5f;
      cu::QkvRopeArgs ra;
      ra.cos_sin = cs.get();
      ra.out_slots = slots.get();
      ra.n = n;
      ra.n_head = 32;
      ra.n_head_kv = 8;
      ra.head_dim = 128;
      ra.rope_dim = 128;
      ra.neox = true;
      ra.q_out = q.get();
      ra.k_cache = kc.get();
      ra.v_cache = vc.get();
      auto time = [&](auto&& launch) {
        std::vector<float> ms;
        for (int r = 0; r < 60; ++r) {
          const uint16_t* wr = w.get() + (wbytes / 2) * (r % copies);
          cudaEventRecord(e0, st);
          launch(wr);
          cudaEventRecord(e1, st);
          cudaEventSynchronize(e1);
          float e = 0;
          cudaEventElapsedTime(&e, e0, e1);
          if (r >= 10) ms.push_back(e);
        }
        std::sort(ms.begin(), ms.end());
        return ms[ms.size() / 2] * 1e3;
      };
      double plain, fused, extra = 0, norm_us = 0;
      if (gated) {
        plain = time([&](const uint16_t* wr) {
          cu::launch_gemv_gate_up_silu(x.get(), wr, h.get(), n, s.N / 2, s.K, st);
        });
        fused = time([&](const uint16_t* wr) {
          cu::launch_gemv_norm_gate_up_silu(in, wr, h.get(), n, s.N / 2, s.K, st);
        });
      } else {
        plain = time(
            [&](const uint16_t* wr) { cu::launch_gemv(x.get(), wr, y.get(), n, s.N, s.K, st); });
        if (adds)
          fused = time([&](const uint16_t* wr) {
            cu::launch_gemv_add(x.get(), wr, resid.get(), n, s.N, s.K, st);
          });
        else
          fused = time(
              [&](const uint16_t* wr) { cu::launch_gemv_norm(in, wr, y.get(), n, s.N, s.K, st); });
        if (qkv)
          extra = time([&](const uint16_t* wr) {
            cu::launch_gemv_norm_qkv_rope(in, wr, ra, s.K, st);
          });
      }
      if (!adds)
        norm_us = time([&](const uint16_t*) {
          cu::launch_rms_norm(resid.get(), g.get(), x.get(), n, E, 1e-5f, st);
        });
      SGL_CUDA_ASSERT(cudaGetLastError());
      std::printf("%-8s %2d | %6.1f %6.1f %6.1f | %5.1f | %5.0f %5.0f\n", s.name, n, plain, fused,
                  extra, norm_us, wbytes / (plain * 1e-6) / 1e9, wbytes / (fused * 1e-6) / 1e9);
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(st);
}

// A ragged batch: each sequence has n_past cached tokens and n_new new ones; the KV pool holds
// random K/V at scattered slots. GPU attention vs cpu::attention per sequence.
struct AttnCase {
  int n_head, n_head_kv, head_dim;
  std::vector<std::pair<int, int>> seqs;  // (n_past, n_new)
};

TEST(CudaOps, AttentionMatchesCpu) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(7);
  const AttnCase cases[] = {
      {4, 2, 16, {{0, 5}, {3, 1}, {10, 4}}},
      {9, 3, 64, {{0, 1}, {0, 70}, {200, 1}, {31, 17}}},
      {32, 8, 128, {{1023, 1}, {0, 1}, {4000, 1}, {100, 40}}},
      {14, 2, 64, {{0, 129}, {300, 1}}},
      {16, 1, 128, {{2500, 1}, {7, 3}}},  // group 16: two head chunks
      {8, 8, 256, {{0, 3}, {600, 1}}},
      {4, 4, 32, {{50, 1}, {0, 2}, {5, 1}, {1, 1}, {0, 1}}},
      {6, 2, 8, {{20, 3}}},
      {32, 8, 128, {{100, 300}, {0, 64}, {5, 1}, {0, 33}}},
      {8, 2, 64, {{0, 200}, {63, 65}}},
      // Tensor-core decode kernel: group 32 (two chunks of 16 heads), 12 (rows 8.. partly
      // used), 1 and 8; head_dim 64 / 256; tails of every length mod 16, long and split ranges.
      {32, 1, 128, {{3000, 1}, {17, 1}, {0, 1}}},
      {12, 1, 64, {{700, 1}, {40, 2}, {6, 1}}},
      {8, 8, 128, {{4100, 1}, {2, 1}, {14, 1}}},
      {64, 8, 64, {{2049, 1}, {1, 1}, {31, 1}}},
      {8, 1, 256, {{1000, 1}, {33, 1}}},
      {32, 2, 256, {{900, 1}, {15, 1}}},
      {32, 8, 128, {{8190, 1}, {4095, 1}, {1500, 1}, {255, 1}}},
  };
  for (const auto& ac : cases) {
    for (const auto kv_elem : {cu::KvElem::kBF16, cu::KvElem::kF16}) {
      const int D = ac.head_dim, H = ac.n_head, Hkv = ac.n_head_kv;
      const auto [n_tokens, total_kv, max_kv] = ragged_sizes(ac.seqs);
      const int capacity = total_kv + 17;
      const std::vector<int32_t> perm = shuffled_slots(capacity, rng);
      const auto kf = random_floats(size_t(capacity) * Hkv * D, rng, -2, 2);
      const auto vf = random_floats(size_t(capacity) * Hkv * D, rng);
      std::vector<uint16_t> kraw(kf.size()), vraw(vf.size());
      for (size_t i = 0; i < kf.size(); ++i) {
        kraw[i] = kv_elem == cu::KvElem::kBF16 ? fp32_to_bf16(kf[i]) : fp32_to_fp16(kf[i]);
        vraw[i] = kv_elem == cu::KvElem::kBF16 ? fp32_to_bf16(vf[i]) : fp32_to_fp16(vf[i]);
      }
      const auto q = bf16_round(random_floats(size_t(n_tokens) * H * D, rng, -2, 2));
      const RaggedBatch b = ragged_batch(ac.seqs, perm);
      const DeviceRagged db(b);
      DevBuf<uint16_t> dq(to_bf16(q)), dk(kraw), dv(vraw);
      cu::AttentionArgs a =
          attention_args(db, dq.get(), dk.get(), dv.get(), kv_elem, n_tokens, H, Hkv, D, max_kv);
      const AttentionBuffers bufs(&a);
      cu::launch_attention(a, nullptr);
      SGL_CUDA_ASSERT(cudaGetLastError());
      const auto out = bufs.output();
      const auto ref = cpu_attention_reference(
          ac.seqs, b, q, kraw.data(), vraw.data(),
          kv_elem == cu::KvElem::kBF16 ? model::GgmlType::kBF16 : model::GgmlType::kF16, H, Hkv, D);
      EXPECT_LT(norm_err(out, ref), 5e-3) << "H " << H << " Hkv " << Hkv << " D " << D;

      // The CUDA-core kernel (launch_attention's for head_dim < 64) on every shape, and the
      // decode graphs' fixed split counts.
      expect_simple_and_fixed_splits(a, ref,
                                     "H " + std::to_string(H) + " Hkv " + std::to_string(Hkv) +
                                         " D " + std::to_string(D));

      // The tensor-core prefill kernel on every sequence (tiles of up to 64 queries).
      if (cu::prefill_tc_supported(D, kv_elem)) {
        const std::vector<int32_t> tiles = prefill_tiles(ac.seqs);
        DevBuf<int32_t> dtiles(tiles);
        DevBuf<uint16_t> dout_tc(size_t(n_tokens) * H * D);
        a.out = dout_tc.get();
        ASSERT_TRUE(
            cu::launch_attention_prefill_tc(a, dtiles.get(), int(tiles.size() / 2), nullptr));
        SGL_CUDA_ASSERT(cudaGetLastError());
        EXPECT_LT(norm_err(from_bf16(dout_tc.host()), ref), 5e-3)
            << "tensor cores: H " << H << " Hkv " << Hkv << " D " << D;
      }
    }
  }
}

TEST(CudaOps, FillAndCopy) {
  SGL_REQUIRE_GPU();
  const size_t n = (size_t{1} << 20) + 24;
  DevBuf<uint16_t> d(n);
  cu::launch_fill_uniform_bf16(d.get(), n, 0.5f, 42, nullptr);
  SGL_CUDA_ASSERT(cudaGetLastError());
  const auto v = from_bf16(d.host());
  double mean = 0;
  float lo = 1, hi = -1;
  for (float x : v) {
    mean += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  mean /= double(n);
  EXPECT_GE(lo, -0.5f);
  EXPECT_LE(hi, 0.5f);
  EXPECT_LT(hi - lo, 1.01f);
  EXPECT_GT(hi - lo, 0.98f);
  EXPECT_LT(std::abs(mean), 0.01);
  DevBuf<uint16_t> c(n);
  cu::launch_copy(d.get(), c.get(), n * 2 / 16 * 16, 132, nullptr);
  SGL_CUDA_ASSERT(cudaGetLastError());
  const auto w = c.host();
  const auto raw = d.host();
  for (size_t i = 0; i < n * 2 / 16 * 8; ++i) ASSERT_EQ(w[i], raw[i]) << i;
}

}  // namespace
}  // namespace sgl::cuda_test

#else  // !SGL_WITH_CUDA

TEST(CudaOps, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (-DSGL_CUDA=ON)"; }

#endif
