// Split-sequence causal GQA attention over slot lists (see kernels.h).
//
// Grid: (query token, KV head x chunk of its query heads, split of the key range). A block of 4
// warps walks its keys; within a warp, head_dim/8 lanes share one key (8 elements each, one
// 16-byte load of K and of V), so a warp covers 256/head_dim keys per step. Every lane keeps an
// online-softmax state (running max, sum, 8 accumulators) per query head of its chunk; states are
// merged across the warp by shuffles, across warps in shared memory, and across splits by
// combine_kernel. Scores live in the log2 domain (q pre-scaled by scale * log2(e)).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/kernels.h"
#include "backend/cuda/pdl.cuh"

namespace sgl::backend::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 4;
constexpr int kMinSplitKeys = 128;
// Upper bound of attention_fixed_splits: enough blocks to fill the chip at batch 1 (8 KV heads x
// 16), few enough that short contexts do not pay much for empty splits and the merge.
constexpr int kMaxFixedSplits = 16;

__device__ __forceinline__ void load8(const bf16* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __bfloat1622float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}
__device__ __forceinline__ void load8(const __half* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

// Merges softmax state (m2, l2, a2) into (m1, l1, a1).
__device__ __forceinline__ void merge_state(float& m1, float& l1, float* a1, float m2, float l2,
                                            const float* a2) {
  const float m = fmaxf(m1, m2);
  if (m == -INFINITY) return;
  const float c1 = m1 == -INFINITY ? 0.0f : exp2f(m1 - m);
  const float c2 = m2 == -INFINITY ? 0.0f : exp2f(m2 - m);
  l1 = l1 * c1 + l2 * c2;
#pragma unroll
  for (int i = 0; i < 8; ++i) a1[i] = a1[i] * c1 + a2[i] * c2;
  m1 = m;
}

struct KernelArgs {
  AttentionArgs a;
  int n_gchunks;  // chunks of query heads per KV head
  int n_splits;
  int split_len;
};

template <typename KV, int D, int GC>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(KernelArgs ka) {
  constexpr int L = D / 8;     // lanes per key
  constexpr int KPW = 32 / L;  // keys per warp step
  pdl_trigger();  // the O GEMV may start loading its weights now
  const AttentionArgs& a = ka.a;
  const int t = blockIdx.x;
  if (a.token_skip != nullptr && a.token_skip[t] != 0) return;
  const int kvh = blockIdx.y / ka.n_gchunks;
  const int gchunk = blockIdx.y % ka.n_gchunks;
  const int split = blockIdx.z;
  const int group = a.n_head / a.n_head_kv;
  const int h0 = kvh * group + gchunk * GC;
  const int ng = min(GC, group - gchunk * GC);
  const int n_keys = a.positions[t] + 1;
  const int32_t* slots = a.slots + a.seq_slots_begin[a.token_seq[t]];
  // split_len 0: the split count is fixed (graph replays) and each token divides its own keys.
  const int split_len = ka.split_len > 0 ? ka.split_len : (n_keys + ka.n_splits - 1) / ka.n_splits;
  const int k_begin = split * split_len;
  const int k_end = min(n_keys, k_begin + split_len);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / L, part = lane % L;
  const float qscale = a.scale * 1.4426950408889634f;

  float q[GC][8];
#pragma unroll
  for (int g = 0; g < GC; ++g) {
    if (g < ng) {
      load8(reinterpret_cast<const bf16*>(a.q) + (static_cast<size_t>(t) * a.n_head + h0 + g) * D +
                part * 8,
            q[g]);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] *= qscale;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] = 0.0f;
    }
  }
  float m[GC], l[GC], acc[GC][8];
#pragma unroll
  for (int g = 0; g < GC; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.0f;
  }

  const KV* kc = static_cast<const KV*>(a.k_cache);
  const KV* vc = static_cast<const KV*>(a.v_cache);
  constexpr int kStep = kWarps * KPW;
  auto fetch = [&](int j, uint4* kr, uint4* vr) {
    if (j < k_end) {
      const size_t off = (static_cast<size_t>(slots[j]) * a.n_head_kv + kvh) * D + part * 8;
      *kr = *reinterpret_cast<const uint4*>(kc + off);
      *vr = *reinterpret_cast<const uint4*>(vc + off);
    } else {
      *kr = *vr = make_uint4(0, 0, 0, 0);
    }
  };
  // The next step's K/V rows are loaded (raw 16 bytes) before this step's math, so two steps of
  // loads are in flight per lane. (Three steps measured 2% slower at batch 64 x 4k on the H100.)
  uint4 k_raw, v_raw;
  fetch(k_begin + warp * KPW + sub, &k_raw, &v_raw);
  for (int base = k_begin + warp * KPW; base < k_end; base += kStep) {
    const int j = base + sub;
    const bool valid = j < k_end;
    float kf[8], vf[8];
    load8(reinterpret_cast<const KV*>(&k_raw), kf);
    load8(reinterpret_cast<const KV*>(&v_raw), vf);
    fetch(j + kStep, &k_raw, &v_raw);
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) s += q[g][i] * kf[i];
#pragma unroll
      for (int o = L / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (valid) {
        const float mn = fmaxf(m[g], s);
        const float c = exp2f(m[g] - mn);  // m = -inf gives 0, as wanted
        const float p = exp2f(s - mn);
        l[g] = l[g] * c + p;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] = acc[g][i] * c + p * vf[i];
        m[g] = mn;
      }
    }
  }

  // Merge the key streams of the warp (lanes with the same part, different sub).
#pragma unroll
  for (int o = L; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float l2 = __shfl_xor_sync(0xffffffffu, l[g], o);
      float a2[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) a2[i] = __shfl_xor_sync(0xffffffffu, acc[g][i], o);
      merge_state(m[g], l[g], acc[g], m2, l2, a2);
    }
  }

  // Merge the warps through shared memory.
  __shared__ float s_acc[kWarps][GC][D];
  __shared__ float s_m[kWarps][GC], s_l[kWarps][GC];
  if (sub == 0) {
#pragma unroll
    for (int g = 0; g < GC; ++g) {
#pragma unroll
      for (int i = 0; i < 8; ++i) s_acc[warp][g][part * 8 + i] = acc[g][i];
      if (part == 0) {
        s_m[warp][g] = m[g];
        s_l[warp][g] = l[g];
      }
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < ng * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, s_m[w][g]);
    float sum = 0.0f, lsum = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float c = s_m[w][g] == -INFINITY ? 0.0f : exp2f(s_m[w][g] - mx);
        sum += s_acc[w][g][d] * c;
        lsum += s_l[w][g] * c;
      }
    }
    const size_t row = static_cast<size_t>(t) * a.n_head + h0 + g;
    if (ka.n_splits == 1) {
      a.out[row * D + d] = __bfloat16_as_ushort(__float2bfloat16_rn(lsum > 0 ? sum / lsum : 0.0f));
    } else {
      float* pp = a.workspace + (row * ka.n_splits + split) * (D + 2);
      pp[2 + d] = sum;
      if (d == 0) {
        pp[0] = mx;
        pp[1] = lsum;
      }
    }
  }
}

// One block of head_dim threads per (token, query head): merges the splits' states.
__global__ void combine_kernel(const float* __restrict__ ws, int n_splits, int D, int n_head,
                               const int32_t* __restrict__ token_skip, uint16_t* __restrict__ out) {
  pdl_trigger();
  const size_t row = blockIdx.x;
  if (token_skip != nullptr && token_skip[row / n_head] != 0) return;
  const float* p = ws + row * n_splits * (D + 2);
  float mx = -INFINITY;
  for (int s = 0; s < n_splits; ++s) mx = fmaxf(mx, p[s * (D + 2)]);
  const int d = threadIdx.x;
  float sum = 0.0f, lsum = 0.0f;
  if (mx != -INFINITY) {
    for (int s = 0; s < n_splits; ++s) {
      const float ms = p[s * (D + 2)];
      const float c = ms == -INFINITY ? 0.0f : exp2f(ms - mx);
      sum += p[s * (D + 2) + 2 + d] * c;
      lsum += p[s * (D + 2) + 1] * c;
    }
  }
  out[row * D + d] = __bfloat16_as_ushort(__float2bfloat16_rn(lsum > 0 ? sum / lsum : 0.0f));
}

int group_chunk(int group) { return group > 4 ? 8 : group > 2 ? 4 : group > 1 ? 2 : 1; }

void plan(int n_tokens, int n_head, int n_head_kv, int max_kv, int n_sm, int* n_gchunks,
          int* n_splits, int* split_len) {
  const int group = n_head / n_head_kv;
  *n_gchunks = (group + group_chunk(group) - 1) / group_chunk(group);
  const long base = static_cast<long>(n_tokens) * n_head_kv * *n_gchunks;
  const long target = 4L * n_sm;
  int splits = static_cast<int>(std::max<long>(1, (target + base - 1) / base));
  splits = std::min(splits, std::max(1, (max_kv + kMinSplitKeys - 1) / kMinSplitKeys));
  int len = (std::max(max_kv, 1) + splits - 1) / splits;
  *split_len = len;
  *n_splits = (std::max(max_kv, 1) + len - 1) / len;
}

template <typename KV, int D>
void launch_d(const KernelArgs& ka, int group, dim3 grid, cudaStream_t stream) {
  switch (group_chunk(group)) {
    case 1:
      attention_kernel<KV, D, 1><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
    case 2:
      attention_kernel<KV, D, 2><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
    case 4:
      attention_kernel<KV, D, 4><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
    default:
      attention_kernel<KV, D, 8><<<grid, kWarps * 32, 0, stream>>>(ka);
      break;
  }
}

template <typename KV>
void launch_kv(const KernelArgs& ka, int group, dim3 grid, cudaStream_t stream) {
  switch (ka.a.head_dim) {
    case 8:
      launch_d<KV, 8>(ka, group, grid, stream);
      break;
    case 16:
      launch_d<KV, 16>(ka, group, grid, stream);
      break;
    case 32:
      launch_d<KV, 32>(ka, group, grid, stream);
      break;
    case 64:
      launch_d<KV, 64>(ka, group, grid, stream);
      break;
    case 128:
      launch_d<KV, 128>(ka, group, grid, stream);
      break;
    default:
      launch_d<KV, 256>(ka, group, grid, stream);
      break;
  }
}

}  // namespace

bool attention_head_dim_supported(int d) {
  return d == 8 || d == 16 || d == 32 || d == 64 || d == 128 || d == 256;
}

int attention_fixed_splits(int n_tokens, int n_head, int n_head_kv, int n_sm) {
  const int group = n_head / n_head_kv;
  const long gch = (group + group_chunk(group) - 1) / group_chunk(group);
  const long base = static_cast<long>(n_tokens) * n_head_kv * gch;
  return static_cast<int>(std::clamp<long>((4L * n_sm + base - 1) / base, 1, kMaxFixedSplits));
}

size_t attention_workspace_floats(int n_tokens, int n_head, int n_head_kv, int head_dim, int max_kv,
                                  int n_sm, int fixed_splits) {
  int gch, splits, len;
  plan(n_tokens, n_head, n_head_kv, max_kv, n_sm, &gch, &splits, &len);
  if (fixed_splits > 0) splits = fixed_splits;
  if (splits == 1) return 0;
  return static_cast<size_t>(n_tokens) * n_head * splits * (head_dim + 2);
}

void launch_attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n_tokens <= 0) return;
  KernelArgs ka;
  ka.a = a;
  plan(a.n_tokens, a.n_head, a.n_head_kv, a.max_kv, a.n_sm, &ka.n_gchunks, &ka.n_splits,
       &ka.split_len);
  if (a.fixed_splits > 0) {
    ka.n_splits = a.fixed_splits;
    ka.split_len = 0;
  }
  const int group = a.n_head / a.n_head_kv;
  const dim3 grid(a.n_tokens, a.n_head_kv * ka.n_gchunks, ka.n_splits);
  if (a.kv_elem == KvElem::kBF16)
    launch_kv<bf16>(ka, group, grid, stream);
  else
    launch_kv<__half>(ka, group, grid, stream);
  if (ka.n_splits > 1)
    combine_kernel<<<a.n_tokens * a.n_head, a.head_dim, 0, stream>>>(
        a.workspace, ka.n_splits, a.head_dim, a.n_head, a.token_skip, a.out);
}

}  // namespace sgl::backend::cuda
