// The fp8 KV cache of the CUDA backend (--kv-cache-dtype fp8_e4m3 / fp8_e5m2, scale 1.0):
//  - the K/V store gives exactly the bits of a host reference (round to nearest even among the
//    finite codes, saturating), over every magnitude: subnormals, ties, saturation, signed zero;
//  - decode and prefill attention over fp8 pools against the CPU attention on the dequantized
//    values (f32 KV), on ragged batches with scattered slots: the tensor-core decode kernel
//    (head_dim 128/256), the CUDA-core kernel (every head_dim), fixed splits, and the tensor-core
//    prefill kernels through their bf16 rows. Tolerance 5e-3 as for bf16 pools (bf16 Q and
//    output; the fp8 values themselves are exact in the f16 products);
//  - a tiny model with fp8 KV against the same model with bf16 KV (loose: fp8 e4m3 keeps 3
//    mantissa bits), greedy tokens mostly equal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_attention_util.h"
#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA

#include "backend/cpu/attention.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "runtime/sampler.h"

namespace sgl::cuda_test {
namespace {

namespace cu = backend::cuda;
namespace cpu = backend::cpu;

// Host fp8: the value of every code, and the nearest code by search over the finite ones.
struct Fp8Format {
  int exp_bits, man_bits, bias;
  uint8_t max_code;  // the largest finite positive code
};
constexpr Fp8Format kE4M3{4, 3, 7, 0x7E};
constexpr Fp8Format kE5M2{5, 2, 15, 0x7B};

double fp8_value(const Fp8Format& f, uint8_t code) {
  const int e = (code >> f.man_bits) & ((1 << f.exp_bits) - 1);
  const int m = code & ((1 << f.man_bits) - 1);
  const double mag = e == 0 ? std::ldexp(m, 1 - f.bias - f.man_bits)
                            : std::ldexp((1 << f.man_bits) + m, e - f.bias - f.man_bits);
  return (code & 0x80) ? -mag : mag;
}

// Round to nearest, ties to the even code (the even mantissa), saturating to +-max: the
// nearest of the finite positive codes (increasing with the code) by bisection.
uint8_t fp8_encode(const Fp8Format& f, float x) {
  static std::vector<double> tables[2];
  std::vector<double>& v = tables[f.exp_bits == 4 ? 0 : 1];
  if (v.empty())
    for (int c = 0; c <= f.max_code; ++c) v.push_back(fp8_value(f, uint8_t(c)));
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const double a = std::fabs(double(x));
  if (a >= v.back()) return sign | f.max_code;
  // lo: the largest code with value <= a.
  const uint8_t lo = uint8_t(std::upper_bound(v.begin(), v.end(), a) - v.begin() - 1);
  if (v[lo] == a) return sign | lo;
  const double dl = a - v[lo], dh = v[lo + 1] - a;
  const uint8_t c = dl < dh ? lo : dh < dl ? uint8_t(lo + 1) : ((lo & 1) ? uint8_t(lo + 1) : lo);
  return sign | c;
}

const Fp8Format& format_of(cu::KvElem e) { return e == cu::KvElem::kFp8E4M3 ? kE4M3 : kE5M2; }
const char* name_of(cu::KvElem e) { return e == cu::KvElem::kFp8E4M3 ? "e4m3" : "e5m2"; }

// Values over every binade the formats have (and past them), ties between neighbouring codes,
// exact codes, zeros, saturation.
std::vector<float> store_inputs(const Fp8Format& f, size_t n, std::mt19937& rng) {
  std::vector<float> v;
  for (int c = 0; c <= f.max_code; ++c) {
    const double x = fp8_value(f, uint8_t(c));
    v.push_back(float(x));
    v.push_back(float(-x));
    if (c < f.max_code) {
      const double mid = (x + fp8_value(f, uint8_t(c + 1))) / 2;  // a tie: exact in f32
      v.push_back(float(mid));
      v.push_back(float(-mid));
      v.push_back(std::nextafter(float(mid), 0.0f));
      v.push_back(std::nextafter(float(mid), 1e30f));
    }
  }
  const float mx = float(fp8_value(f, f.max_code));
  for (float x : {mx * 1.03f, mx * 1.2f, mx * 4.0f, 1e9f, 3e38f}) {
    v.push_back(x);
    v.push_back(-x);
  }
  std::uniform_real_distribution<float> lg(-30.0f, 20.0f);
  while (v.size() < n) {
    const float x = std::exp2(lg(rng));
    v.push_back(rng() & 1 ? -x : x);
  }
  v.resize(n);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

TEST(CudaFp8Kv, StoreMatchesHostReferenceBits) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(5);
  for (const auto kv_elem : {cu::KvElem::kFp8E4M3, cu::KvElem::kFp8E5M2}) {
    const Fp8Format& f = format_of(kv_elem);
    // No RoPE and no bias: the stored K and V are the input values themselves, rounded once.
    const int n = 37, n_head = 4, n_head_kv = 2, D = 128, capacity = 80;
    const int width = (n_head + 2 * n_head_kv) * D;
    std::vector<float> qkv = random_floats(size_t(n) * width, rng);
    const auto kv_in = store_inputs(f, size_t(n) * 2 * n_head_kv * D, rng);
    for (int t = 0, i = 0; t < n; ++t)
      for (int j = n_head * D; j < width; ++j) qkv[size_t(t) * width + j] = kv_in[i++];
    const std::vector<int32_t> perm = shuffled_slots(capacity, rng);
    const std::vector<int32_t> slots(perm.begin(), perm.begin() + n);
    DevBuf<float> dqkv(qkv);
    DevBuf<int32_t> dslots(slots);
    DevBuf<uint16_t> dq(size_t(n) * n_head * D);
    DevBuf<uint8_t> dk(size_t(capacity) * n_head_kv * D), dv(size_t(capacity) * n_head_kv * D);
    cu::QkvRopeArgs a;
    a.qkv = dqkv.get();
    a.out_slots = dslots.get();
    a.n = n;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
    a.head_dim = D;
    a.rope_dim = 0;
    a.q_out = dq.get();
    a.k_cache = dk.get();
    a.v_cache = dv.get();
    a.kv_elem = kv_elem;
    cu::launch_qkv_rope_store(a, nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    const auto k = dk.host(), v = dv.host();
    int bad = 0;
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < n_head_kv * D; ++j) {
        const float xk = qkv[size_t(t) * width + n_head * D + j];
        const float xv = qkv[size_t(t) * width + (n_head + n_head_kv) * D + j];
        const uint8_t gk = k[size_t(slots[t]) * n_head_kv * D + j];
        const uint8_t gv = v[size_t(slots[t]) * n_head_kv * D + j];
        if (gk != fp8_encode(f, xk) && bad++ < 10)
          ADD_FAILURE() << name_of(kv_elem) << " K " << xk << ": got 0x" << std::hex << int(gk)
                        << " want 0x" << int(fp8_encode(f, xk));
        if (gv != fp8_encode(f, xv) && bad++ < 10)
          ADD_FAILURE() << name_of(kv_elem) << " V " << xv << ": got 0x" << std::hex << int(gv)
                        << " want 0x" << int(fp8_encode(f, xv));
      }
    }
    EXPECT_EQ(bad, 0) << name_of(kv_elem);
  }
}

// The host reference itself, on values whose codes are known.
TEST(CudaFp8Kv, HostReference) {
  EXPECT_EQ(fp8_value(kE4M3, 0x7E), 448.0);
  EXPECT_EQ(fp8_value(kE5M2, 0x7B), 57344.0);
  EXPECT_EQ(fp8_value(kE4M3, 0x01), std::ldexp(1.0, -9));
  EXPECT_EQ(fp8_value(kE5M2, 0x01), std::ldexp(1.0, -16));
  EXPECT_EQ(fp8_encode(kE4M3, 1.0f), 0x38);
  EXPECT_EQ(fp8_encode(kE4M3, -2.0f), 0xC0);
  EXPECT_EQ(fp8_encode(kE4M3, 1000.0f), 0x7E);
  EXPECT_EQ(fp8_encode(kE4M3, -1000.0f), 0xFE);
  EXPECT_EQ(fp8_encode(kE4M3, 1.0625f), 0x38);  // tie between 1 and 1.125: even
  EXPECT_EQ(fp8_encode(kE4M3, 1.1875f), 0x3A);  // tie between 1.125 and 1.25: even
  EXPECT_EQ(fp8_encode(kE5M2, 1e6f), 0x7B);
  EXPECT_EQ(fp8_encode(kE4M3, -0.0f), 0x80);
}

struct AttnCase {
  int n_head, n_head_kv, head_dim;
  std::vector<std::pair<int, int>> seqs;  // (n_past, n_new)
};

TEST(CudaFp8Kv, AttentionMatchesCpuOnDequantizedValues) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(9);
  const AttnCase cases[] = {
      {32, 8, 128, {{1023, 1}, {0, 1}, {4000, 1}, {100, 40}}},
      {32, 8, 128, {{8190, 1}, {4095, 1}, {1500, 1}, {255, 1}, {17, 1}}},
      {32, 8, 128, {{100, 300}, {0, 64}, {5, 1}, {0, 33}}},
      {16, 1, 128, {{2500, 1}, {7, 3}}},   // group 16: all 16 mma rows
      {32, 1, 128, {{3000, 1}, {17, 1}}},  // group 32: two head chunks
      {12, 2, 128, {{700, 1}, {40, 2}, {6, 1}, {0, 1}}},
      {8, 8, 256, {{0, 3}, {600, 1}, {31, 1}}},
      {32, 2, 256, {{900, 1}, {15, 1}}},
      {14, 2, 64, {{0, 129}, {300, 1}, {2, 1}}},  // fp8 at 64: the CUDA-core kernel
      {9, 3, 64, {{0, 70}, {200, 1}, {31, 17}}},
      {4, 2, 16, {{0, 5}, {3, 1}, {10, 4}}},
      {6, 2, 32, {{20, 3}, {0, 1}}},
  };
  for (const auto& ac : cases) {
    for (const auto kv_elem : {cu::KvElem::kFp8E4M3, cu::KvElem::kFp8E5M2}) {
      const Fp8Format& f = format_of(kv_elem);
      const int D = ac.head_dim, H = ac.n_head, Hkv = ac.n_head_kv;
      const auto [n_tokens, total_kv, max_kv] = ragged_sizes(ac.seqs);
      const int capacity = total_kv + 17;
      const std::vector<int32_t> perm = shuffled_slots(capacity, rng);
      // K spread over several binades (subnormals of e4m3 included), V in [-1, 1).
      const auto kf = random_floats(size_t(capacity) * Hkv * D, rng, -3, 3);
      const auto vf = random_floats(size_t(capacity) * Hkv * D, rng);
      std::vector<uint8_t> kraw(kf.size()), vraw(vf.size());
      std::vector<float> kdq(kf.size()), vdq(vf.size());
      for (size_t i = 0; i < kf.size(); ++i) {
        const float ks = kf[i] * (i % 7 == 0 ? 1e-2f : 1.0f);
        kraw[i] = fp8_encode(f, ks);
        vraw[i] = fp8_encode(f, vf[i]);
        kdq[i] = float(fp8_value(f, kraw[i]));
        vdq[i] = float(fp8_value(f, vraw[i]));
      }
      const auto q = bf16_round(random_floats(size_t(n_tokens) * H * D, rng, -2, 2));
      const RaggedBatch b = ragged_batch(ac.seqs, perm);
      const DeviceRagged db(b);
      const std::vector<int32_t>& slots = b.slots;
      DevBuf<uint16_t> dq(to_bf16(q));
      DevBuf<uint8_t> dk(kraw), dv(vraw);
      cu::AttentionArgs a =
          attention_args(db, dq.get(), dk.get(), dv.get(), kv_elem, n_tokens, H, Hkv, D, max_kv);
      const AttentionBuffers bufs(&a);
      cu::launch_attention(a, nullptr);
      SGL_CUDA_ASSERT(cudaGetLastError());
      const auto out = bufs.output();
      const auto ref = cpu_attention_reference(ac.seqs, b, q, kdq.data(), vdq.data(),
                                               model::GgmlType::kF32, H, Hkv, D);
      const std::string what = std::string(name_of(kv_elem)) + " H " + std::to_string(H) + " Hkv " +
                               std::to_string(Hkv) + " D " + std::to_string(D);
      EXPECT_LT(norm_err(out, ref), 5e-3) << what;

      // The CUDA-core kernel on every shape, fixed split counts.
      expect_simple_and_fixed_splits(a, ref, what);

      // The check has teeth: the other fp8 format read from the same bytes is far off.
      {
        DevBuf<uint16_t> doutw(size_t(n_tokens) * H * D);
        cu::AttentionArgs aw = a;
        aw.kv_elem = kv_elem == cu::KvElem::kFp8E4M3 ? cu::KvElem::kFp8E5M2 : cu::KvElem::kFp8E4M3;
        aw.out = doutw.get();
        cu::launch_attention(aw, nullptr);
        SGL_CUDA_ASSERT(cudaGetLastError());
        EXPECT_GT(norm_err(from_bf16(doutw.host()), ref), 0.05) << "wrong format: " << what;
      }

      // The tensor-core prefill kernels (tiles of every sequence) through bf16 rows: the rows
      // of the tiles' sequences gathered in a shuffled order, their slot lists remapped.
      if (cu::prefill_tc_supported(D, kv_elem)) {
        const std::vector<int32_t> tiles = prefill_tiles(ac.seqs);
        std::vector<int32_t> order(total_kv);  // compact row of each slot-list entry
        for (int i = 0; i < total_kv; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        std::vector<int32_t> src(total_kv);
        for (int i = 0; i < total_kv; ++i) src[order[i]] = slots[i];
        DevBuf<int32_t> dtiles(tiles), dsrc(src), dorder(order);
        DevBuf<uint16_t> drk(size_t(total_kv) * Hkv * D), drv(size_t(total_kv) * Hkv * D);
        DevBuf<uint16_t> dout_tc(size_t(n_tokens) * H * D);
        cu::AttentionArgs at = a;
        at.out = dout_tc.get();
        const int n_tiles = int(tiles.size() / 2);
        // Without the bf16 rows an fp8 pool is refused, launching nothing.
        EXPECT_FALSE(cu::launch_attention_prefill_tc(at, dtiles.get(), n_tiles, nullptr));
        at.bf16_rows = total_kv;
        at.bf16_src = dsrc.get();
        at.bf16_seq_begin = db.seq_begin.get();  // same offsets, entries remapped through `order`
        at.bf16_slots = dorder.get();
        at.bf16_k = drk.get();
        at.bf16_v = drv.get();
        ASSERT_TRUE(cu::launch_attention_prefill_tc(at, dtiles.get(), n_tiles, nullptr));
        SGL_CUDA_ASSERT(cudaGetLastError());
        EXPECT_LT(norm_err(from_bf16(dout_tc.host()), ref), 5e-3) << "prefill tc: " << what;
        // The bf16 rows are the dequantized values exactly.
        const auto rk = from_bf16(drk.host()), rv = from_bf16(drv.host());
        int bad = 0;
        for (int i = 0; i < total_kv; ++i)
          for (int j = 0; j < Hkv * D; ++j) {
            const size_t s = size_t(src[i]) * Hkv * D + j, r = size_t(i) * Hkv * D + j;
            bad += rk[r] != kdq[s] || rv[r] != vdq[s];
          }
        EXPECT_EQ(bad, 0) << what;
      }
    }
  }
}

// A tiny model with fp8 KV against the same model with bf16 KV, on a mixed prefill batch, a
// chunk over a cached prefix and decode steps (CUDA graphs). head_dim 128 takes the tensor-core
// decode kernel and the prefill kernels' bf16 rows; 16 the CUDA-core kernel.
class CudaFp8KvModelTest : public TinyModelTest {
 protected:
  void SetUp() override {
    SGL_REQUIRE_GPU();
    load_tiny("cuda_fp8kv");
  }
};

TEST_P(CudaFp8KvModelTest, CloseToBf16Kv) {
  auto make = [&](backend::KvDtype kv) {
    backend::CudaBackendOptions go;
    go.kv_capacity = 512;
    go.progress = false;
    go.kv_dtype = kv;
    return backend::CudaBackend::create(*model_, go);
  };
  auto ref = make(backend::KvDtype::kBF16);
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  for (const auto kv : {backend::KvDtype::kFp8E4M3, backend::KvDtype::kFp8E5M2}) {
    auto gpu = make(kv);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    std::mt19937 rng(17);
    const int len_a = 100, len_b = 40, split = 70, steps = 8;
    auto a = random_tokens(len_a + steps, rng), b = random_tokens(len_b + steps, rng);
    std::vector<int32_t> slots_a, slots_b;
    for (int i = 0; i < len_a + steps; ++i) slots_a.push_back(300 - 2 * i);
    for (int i = 0; i < len_b + steps; ++i) slots_b.push_back(310 + 3 * i);
    RowStats st;
    auto both = [&](const backend::ForwardBatch& fb) {
      backend::Logits lr, lg;
      ASSERT_TRUE((*ref)->forward(fb, &lr).is_ok());
      ASSERT_TRUE((*gpu)->forward(fb, &lg).is_ok());
      st.add(lg, lr);
    };
    backend::ForwardBatch fb;
    fb.add_sequence(a.data(), split, 0, slots_a.data(), false);
    fb.add_sequence(b.data(), len_b, 0, slots_b.data(), false);
    for (int i = 0; i < split + len_b; ++i) fb.logit_rows.push_back(i);
    both(fb);
    fb.clear();
    fb.add_sequence(a.data() + split, len_a - split, split, slots_a.data(), false);
    for (int i = 0; i < len_a - split; ++i) fb.logit_rows.push_back(i);
    both(fb);
    for (int s = 0; s < steps; ++s) {
      fb.clear();
      fb.add_sequence(&a[len_a + s], 1, len_a + s, slots_a.data(), true);
      fb.add_sequence(&b[len_b + s], 1, len_b + s, slots_b.data(), true);
      both(fb);
    }
    const char* kname = kv == backend::KvDtype::kFp8E4M3 ? "e4m3" : "e5m2";
    std::printf("[ %s fp8 %s ] vs bf16 KV: worst row error %.3g, mean %.3g, top-1 %d/%d\n",
                GetParam().arch.c_str(), kname, st.worst, st.mean(), st.top1_same, st.rows);
    // fp8 rounds K and V to 3 (e4m3) or 2 (e5m2) mantissa bits: relative 2^-4 / 2^-3 per value.
    // Measured on the H100 (2026-11-27): llama (head_dim 16) e4m3 worst 0.21 / mean 0.069 /
    // top-1 136 of 156, e5m2 0.50 / 0.13 / 125; qwen2 (head_dim 128) e4m3 0.11 / 0.051 / 156,
    // e5m2 0.18 / 0.096 / 156. A broken fp8 path (wrong bytes, wrong format) gives rows near 1.
    const bool e4m3 = kv == backend::KvDtype::kFp8E4M3;
    EXPECT_LT(st.mean(), e4m3 ? 0.1 : 0.2) << kname;
    EXPECT_LT(st.worst, e4m3 ? 0.35 : 0.7) << kname;
    EXPECT_GE(st.top1_same, st.rows * 7 / 10) << kname;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, CudaFp8KvModelTest,
    ::testing::Values(TinyModelSpec{"llama", 64, 2, 128, 4, 2, 16, false, true, false, 1},
                      TinyModelSpec{"qwen2", 512, 2, 512, 4, 2, 128, true, false, true, 3}),
    [](const auto& info) { return info.param.arch; });

// One byte per element: the same memory holds twice the tokens.
TEST(CudaFp8Kv, PoolHoldsTwiceTheTokens) {
  SGL_REQUIRE_GPU();
  model::ModelConfig c;
  c.arch = "llama";
  c.n_vocab = 320;
  c.n_embd = 256;
  c.n_layer = 2;
  c.n_ff = 512;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 128;
  c.rope_dim = 128;
  c.context_length = 1024;
  backend::CudaBackendOptions go;
  go.progress = false;
  go.kv_capacity = 1000;
  go.kv_dtype = backend::KvDtype::kBF16;
  size_t bytes16 = 0;
  {
    auto b = backend::CudaBackend::create_dummy(c, go, 1);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    bytes16 = (*b)->kv_bytes();
  }
  go.kv_dtype = backend::KvDtype::kFp8E4M3;
  {
    auto b = backend::CudaBackend::create_dummy(c, go, 1);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    EXPECT_EQ((*b)->kv_bytes() * 2, bytes16);
  }
  // Sized by memory fraction: about twice the slots of a bf16 pool.
  go.kv_capacity = 0;
  go.mem_fraction_static = 0.2;
  int64_t cap16 = 0;
  go.kv_dtype = backend::KvDtype::kBF16;
  {
    auto b = backend::CudaBackend::create_dummy(c, go, 1);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    cap16 = (*b)->kv_capacity();
  }
  go.kv_dtype = backend::KvDtype::kFp8E5M2;
  {
    auto b = backend::CudaBackend::create_dummy(c, go, 1);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    EXPECT_GT((*b)->kv_capacity(), cap16 * 19 / 10);
    EXPECT_LT((*b)->kv_capacity(), cap16 * 21 / 10);
  }
}

}  // namespace
}  // namespace sgl::cuda_test

#else

TEST(CudaFp8Kv, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA (-DSGL_CUDA=ON)"; }

#endif
