// Attention test set-up shared by the CUDA attention parity tests (cuda_ops_test.cpp,
// cuda_fp8_kv_test.cpp, cuda_prefill_attention_test.cpp): a ragged batch laid out as the backend
// lays it out, its device copy with the launch arguments filled in, the CPU reference over it, and
// the prefill tiles of its sequences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_util.h"

#ifdef SGL_WITH_CUDA
#include "backend/cpu/attention.h"
#include "backend/cuda/kernels.h"
#include "model/ggml_type.h"

namespace sgl::cuda_test {

using Seqs = std::vector<std::pair<int, int>>;  // (n_past, n_new) per sequence

// Per token its position and sequence; per sequence the offset of its slot list; the slot lists
// concatenated. Sequence s takes the next n_past + n_new entries of `perm` as its slots.
struct RaggedBatch {
  std::vector<int32_t> positions, token_seq, seq_begin, slots;
  std::vector<std::vector<int32_t>> seq_slots;
};

inline RaggedBatch ragged_batch(const Seqs& seqs, const std::vector<int32_t>& perm) {
  RaggedBatch b;
  size_t used = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto [p, nn] = seqs[s];
    b.seq_begin.push_back(static_cast<int32_t>(b.slots.size()));
    std::vector<int32_t> ss(perm.begin() + used, perm.begin() + used + p + nn);
    used += p + nn;
    b.slots.insert(b.slots.end(), ss.begin(), ss.end());
    b.seq_slots.push_back(std::move(ss));
    for (int t = 0; t < nn; ++t) {
      b.positions.push_back(p + t);
      b.token_seq.push_back(static_cast<int32_t>(s));
    }
  }
  return b;
}

// The batch's index arrays on the device.
struct DeviceRagged {
  explicit DeviceRagged(const RaggedBatch& b)
      : pos(b.positions), token_seq(b.token_seq), seq_begin(b.seq_begin), slots(b.slots) {}
  DevBuf<int32_t> pos, token_seq, seq_begin, slots;
};

// Launch arguments over a device batch: q [n_tokens, H, D] bf16, K/V pools of `kv_elem`. The output
// and workspace are the caller's (left null).
inline backend::cuda::AttentionArgs attention_args(const DeviceRagged& d, const uint16_t* q,
                                                   const void* k, const void* v,
                                                   backend::cuda::KvElem kv_elem, int n_tokens,
                                                   int H, int Hkv, int D, int max_kv) {
  backend::cuda::AttentionArgs a;
  a.q = q;
  a.k_cache = k;
  a.v_cache = v;
  a.kv_elem = kv_elem;
  a.positions = d.pos.get();
  a.token_seq = d.token_seq.get();
  a.seq_slots_begin = d.seq_begin.get();
  a.slots = d.slots.get();
  a.n_tokens = n_tokens;
  a.n_head = H;
  a.n_head_kv = Hkv;
  a.head_dim = D;
  a.max_kv = max_kv;
  a.scale = 1.0f / std::sqrt(static_cast<float>(D));
  a.n_sm = 132;
  return a;
}

// The workspace (sized by a's max_kv or fixed_splits) and the bf16 output of an attention launch
// over *a, set into it.
struct AttentionBuffers {
  explicit AttentionBuffers(backend::cuda::AttentionArgs* a)
      : ws(std::max<size_t>(1, backend::cuda::attention_workspace_floats(
                                   a->n_tokens, a->n_head, a->n_head_kv, a->head_dim, a->max_kv,
                                   a->n_sm, a->fixed_splits))),
        out(static_cast<size_t>(a->n_tokens) * a->n_head * a->head_dim) {
    a->workspace = ws.get();
    a->out = out.get();
  }
  std::vector<float> output() const { return from_bf16(out.host()); }
  DevBuf<float> ws;
  DevBuf<uint16_t> out;
};

// The CPU backend's attention of every sequence of the batch over pools of `kv_type` (raw
// elements: f32, f16 or bf16 bits).
inline std::vector<float> cpu_attention_reference(const Seqs& seqs, const RaggedBatch& b,
                                                  const std::vector<float>& q, const void* k,
                                                  const void* v, model::GgmlType kv_type, int H,
                                                  int Hkv, int D) {
  int n_tokens = 0;
  for (auto [p, nn] : seqs) n_tokens += nn;
  std::vector<float> ref(static_cast<size_t>(n_tokens) * H * D);
  int tb = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto [p, nn] = seqs[s];
    backend::cpu::AttentionParams cp;
    cp.q = q.data() + static_cast<size_t>(tb) * H * D;
    cp.positions = b.positions.data() + tb;
    cp.n_tokens = nn;
    cp.n_head = H;
    cp.n_head_kv = Hkv;
    cp.head_dim = D;
    cp.k_cache = k;
    cp.v_cache = v;
    cp.kv_type = kv_type;
    cp.slots = b.seq_slots[s].data();
    cp.n_kv = p + nn;
    cp.out = ref.data() + static_cast<size_t>(tb) * H * D;
    backend::cpu::attention(cp, nullptr);
    tb += nn;
  }
  return ref;
}

// (first token, rows) of every prefill tile: each sequence's new tokens in tiles of
// kPrefillTcRows queries.
inline std::vector<int32_t> prefill_tiles(const Seqs& seqs) {
  std::vector<int32_t> tiles;
  int t0 = 0;
  for (auto [p, nn] : seqs) {
    for (int qb = 0; qb < nn; qb += backend::cuda::kPrefillTcRows) {
      tiles.push_back(t0 + qb);
      tiles.push_back(std::min(backend::cuda::kPrefillTcRows, nn - qb));
    }
    t0 += nn;
  }
  return tiles;
}

// The same batch through the CUDA-core kernel and through fixed split counts (the decode graphs'
// launch: every token divides its own keys, with more splits than some tokens have keys, and
// max_kv left unset), each against ref.
inline void expect_simple_and_fixed_splits(const backend::cuda::AttentionArgs& a,
                                           const std::vector<float>& ref, const std::string& what) {
  namespace cu = backend::cuda;
  const int n_tokens = a.n_tokens, H = a.n_head, Hkv = a.n_head_kv, D = a.head_dim;
  {
    DevBuf<uint16_t> douts(static_cast<size_t>(n_tokens) * H * D);
    cu::AttentionArgs as = a;
    as.out = douts.get();
    cu::launch_attention_simple(as, nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    EXPECT_LT(norm_err(from_bf16(douts.host()), ref), 5e-3) << "CUDA cores: " << what;
  }
  for (int splits : {1, 3, cu::attention_fixed_splits(n_tokens, H, Hkv, 132)}) {
    cu::AttentionArgs af = a;
    af.max_kv = 0;
    af.fixed_splits = splits;
    const AttentionBuffers bufs(&af);
    cu::launch_attention(af, nullptr);
    SGL_CUDA_ASSERT(cudaGetLastError());
    EXPECT_LT(norm_err(bufs.output(), ref), 5e-3) << "fixed splits " << splits << ": " << what;
  }
}

}  // namespace sgl::cuda_test
#endif  // SGL_WITH_CUDA
