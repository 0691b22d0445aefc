// The tensor-core prefill attention kernels (attention_tc.cu: mma.sync; attention_sm90a.cu:
// wgmma, on sm_90 GPUs) against a plain double-precision causal attention over the same bf16
// inputs: chunks of many lengths (multiples of the 128-query tile and not), cached prefixes before
// the chunk, GQA groups 1/3/4/8, head dims 64 and 128, slot lists scattered over the pool, every
// kernel variant. Outputs are poisoned (NaN) first, so
// an unwritten row fails; tokens outside the tiles must stay poisoned; a second launch must give
// the same bits (a race would show as a moving result). Skips without CUDA or without a GPU.
//
// Threshold: ||gpu - ref|| / ||ref|| < 5e-3 (bf16 P in the P V product and a bf16 output each add
// about 1e-3; the kernel is otherwise f32).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "cuda_attention_util.h"
#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA

#include "backend/cuda/attention_tc.h"
#include "backend/cuda/kernels.h"

namespace sgl::cuda_test {
namespace {

namespace cu = backend::cuda;

struct PrefillCase {
  int n_head, n_head_kv, head_dim;
  std::vector<std::pair<int, int>> seqs;  // (n_past, n_new); n_new == 1 stays off the kernel
  float q_range;                          // q uniform in [-q_range, q_range]: softmax sharpness
};

// out[t, h, :] = softmax_j<=pos(t)(q . k_j * scale) V, K/V read through the sequence's slots.
void reference(const std::vector<float>& q, const std::vector<float>& k,
               const std::vector<float>& v, const std::vector<int32_t>& slots, int n_past,
               int n_new, int tok0, int H, int Hkv, int D, std::vector<float>* out) {
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> w(n_past + n_new), acc(D);
  for (int t = 0; t < n_new; ++t) {
    const int pos = n_past + t;
    for (int h = 0; h < H; ++h) {
      const int kvh = h / (H / Hkv);
      const float* qr = q.data() + (size_t(tok0 + t) * H + h) * D;
      double mx = -INFINITY;
      for (int j = 0; j <= pos; ++j) {
        const float* kr = k.data() + (size_t(slots[j]) * Hkv + kvh) * D;
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += double(qr[d]) * kr[d];
        w[j] = dot * scale;
        mx = std::max(mx, w[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int j = 0; j <= pos; ++j) {
        const double e = std::exp(w[j] - mx);
        sum += e;
        const float* vr = v.data() + (size_t(slots[j]) * Hkv + kvh) * D;
        for (int d = 0; d < D; ++d) acc[d] += e * vr[d];
      }
      float* o = out->data() + (size_t(tok0 + t) * H + h) * D;
      for (int d = 0; d < D; ++d) o[d] = float(acc[d] / sum);
    }
  }
}

TEST(CudaPrefillAttention, MatchesReference) {
  SGL_REQUIRE_GPU();
  std::mt19937 rng(11);
  const PrefillCase cases[] = {
      {8, 8, 128, {{0, 300}}, 2.0f},                       // GQA 1, partial last tile
      {8, 2, 128, {{100, 257}, {0, 128}, {40, 1}}, 2.0f},  // GQA 4, prefix, exact tile, decode
      {16, 2, 128, {{513, 77}, {0, 40}}, 2.0f},            // GQA 8, prefix not tile-aligned
      {8, 1, 128, {{0, 700}}, 8.0f},                       // GQA 8, sharp softmax
      {8, 2, 64, {{0, 129}, {37, 200}}, 2.0f},             // head dim 64
      {4, 1, 64, {{1000, 33}, {5, 1}}, 8.0f},              // long prefix, short chunk
      {2, 2, 64, {{0, 64}, {63, 65}}, 2.0f},
      {6, 2, 128, {{20, 150}}, 2.0f},  // GQA 3: no even split of 128 rows over the group
  };
  for (const auto& pc : cases) {
    const int D = pc.head_dim, H = pc.n_head, Hkv = pc.n_head_kv;
    const auto [n_tokens, total_kv, max_kv] = ragged_sizes(pc.seqs);
    // A pool larger than needed, each sequence's slots a random scattering of it.
    const int capacity = total_kv + 29;
    const std::vector<int32_t> perm = shuffled_slots(capacity, rng);
    const auto k = bf16_round(random_floats(size_t(capacity) * Hkv * D, rng, -2, 2));
    const auto v = bf16_round(random_floats(size_t(capacity) * Hkv * D, rng));
    const auto q =
        bf16_round(random_floats(size_t(n_tokens) * H * D, rng, -pc.q_range, pc.q_range));
    const RaggedBatch b = ragged_batch(pc.seqs, perm);
    std::vector<int32_t> tiles;
    std::vector<float> ref(size_t(n_tokens) * H * D, NAN);
    std::vector<bool> in_tile(n_tokens, false);
    int tok0 = 0;
    for (size_t s = 0; s < pc.seqs.size(); ++s) {
      auto [p, nn] = pc.seqs[s];
      if (nn > 1) {
        reference(q, k, v, b.seq_slots[s], p, nn, tok0, H, Hkv, D, &ref);
        for (int qb = 0; qb < nn; qb += cu::kPrefillTcRows) {
          tiles.push_back(tok0 + qb);
          tiles.push_back(std::min(cu::kPrefillTcRows, nn - qb));
          for (int r = 0; r < tiles.back(); ++r) in_tile[tok0 + qb + r] = true;
        }
      }
      tok0 += nn;
    }
    // Tile order is the caller's choice (longest first is only faster): shuffle it.
    const int n_tiles = int(tiles.size() / 2);
    std::vector<int> order(n_tiles);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int32_t> shuffled;
    for (int i : order) {
      shuffled.push_back(tiles[2 * i]);
      shuffled.push_back(tiles[2 * i + 1]);
    }

    DevBuf<uint16_t> dq(to_bf16(q)), dk(to_bf16(k)), dv(to_bf16(v));
    const DeviceRagged db(b);
    DevBuf<int32_t> dtiles(shuffled);
    cu::AttentionArgs a = attention_args(db, dq.get(), dk.get(), dv.get(), cu::KvElem::kBF16,
                                         n_tokens, H, Hkv, D, max_kv);
    ASSERT_TRUE(cu::prefill_tc_supported(D, cu::KvElem::kBF16));

    for (const auto variant : cu::kPrefillTcVariants) {
      const char* vname = cu::prefill_tc_variant_name(variant);
      if (!cu::prefill_tc_variant_available(variant)) {
        EXPECT_FALSE(
            cu::launch_attention_prefill_tc_variant(a, dtiles.get(), n_tiles, variant, nullptr));
        continue;  // the wgmma kernels without an sm_90a build or an sm_90 GPU
      }
      DevBuf<uint16_t> dout(size_t(n_tokens) * H * D);  // poisoned: 0xFFFF (NaN)
      a.out = dout.get();
      ASSERT_TRUE(
          cu::launch_attention_prefill_tc_variant(a, dtiles.get(), n_tiles, variant, nullptr));
      SGL_CUDA_ASSERT(cudaGetLastError());
      const auto raw = dout.host();
      SGL_CUDA_ASSERT(cudaGetLastError());
      std::vector<float> got, want;
      for (int t = 0; t < n_tokens; ++t) {
        for (int i = 0; i < H * D; ++i) {
          const size_t idx = size_t(t) * H * D + i;
          if (in_tile[t]) {
            got.push_back(bf16_to_fp32(raw[idx]));
            want.push_back(ref[idx]);
          } else {
            ASSERT_EQ(raw[idx], 0xFFFF) << vname << ": token " << t << " is outside the tiles";
          }
        }
      }
      EXPECT_LT(norm_err(got, want), 5e-3)
          << vname << ": H " << H << " Hkv " << Hkv << " D " << D << " tokens " << n_tokens;

      // Same inputs, same bits.
      ASSERT_TRUE(
          cu::launch_attention_prefill_tc_variant(a, dtiles.get(), n_tiles, variant, nullptr));
      SGL_CUDA_ASSERT(cudaGetLastError());
      EXPECT_TRUE(dout.host() == raw) << vname << ": a second run gave other results";
    }
  }
}

// The public entry point refuses what it does not support (and launches nothing).
TEST(CudaPrefillAttention, Support) {
  EXPECT_TRUE(cu::prefill_tc_supported(64, cu::KvElem::kBF16));
  EXPECT_TRUE(cu::prefill_tc_supported(128, cu::KvElem::kBF16));
  EXPECT_FALSE(cu::prefill_tc_supported(256, cu::KvElem::kBF16));
  EXPECT_FALSE(cu::prefill_tc_supported(128, cu::KvElem::kF16));
  cu::AttentionArgs a;
  a.head_dim = 96;
  a.kv_elem = cu::KvElem::kBF16;
  EXPECT_FALSE(cu::launch_attention_prefill_tc(a, nullptr, 1, nullptr));
}

}  // namespace
}  // namespace sgl::cuda_test

#else  // !SGL_WITH_CUDA

TEST(CudaPrefillAttention, SkippedWithoutCuda) {
  GTEST_SKIP() << "built without CUDA (-DSGL_CUDA=ON)";
}

#endif
