// Elementwise and per-row kernels of the CUDA backend (see kernels.h for the contracts).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "backend/cuda/kernels.h"
#include "backend/cuda/kv_store.cuh"
#include "backend/cuda/pdl.cuh"

namespace sgl::backend::cuda {
namespace {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float bf16_bits_to_float(uint16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}
__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
// A weight-typed (WeightElem) element to and from f32, rounding to nearest even.
template <WeightElem E>
__device__ __forceinline__ float elem_to_float(uint16_t b) {
  if constexpr (E == WeightElem::kBF16)
    return bf16_bits_to_float(b);
  else
    return __half2float(__ushort_as_half(b));
}
template <WeightElem E>
__device__ __forceinline__ uint16_t float_to_elem(float f) {
  if constexpr (E == WeightElem::kBF16)
    return float_to_bf16_bits(f);
  else
    return __half_as_ushort(__float2half_rn(f));
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  __shared__ float total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int n_warps = blockDim.x >> 5;
    float s = lane < n_warps ? warp_sums[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) total = s;
  }
  __syncthreads();
  const float r = total;
  __syncthreads();  // the shared slots may be reused by a following call
  return r;
}

// Grid (tokens, slices of 2048 columns): at batch 1 one block per row took ~9 us for 4096 columns.
template <WeightElem E>
__global__ void embedding_kernel(const uint16_t* __restrict__ table,
                                 const int32_t* __restrict__ tokens, int dim,
                                 float* __restrict__ x) {
  const int t = blockIdx.x;
  const uint16_t* row = table + static_cast<size_t>(tokens[t]) * dim;
  float* out = x + static_cast<size_t>(t) * dim;
  const int begin = blockIdx.y * 2048, end = min(dim, begin + 2048);
  if (dim % 8 == 0) {  // 16-byte loads, two 16-byte stores per 8 columns
    for (int i = begin + threadIdx.x * 8; i < end; i += blockDim.x * 8) {
      const uint4 v = *reinterpret_cast<const uint4*>(row + i);
      float4* o = reinterpret_cast<float4*>(out + i);
      if constexpr (E == WeightElem::kBF16) {
        o[0] = make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u),
                           __uint_as_float(v.y << 16), __uint_as_float(v.y & 0xffff0000u));
        o[1] = make_float4(__uint_as_float(v.z << 16), __uint_as_float(v.z & 0xffff0000u),
                           __uint_as_float(v.w << 16), __uint_as_float(v.w & 0xffff0000u));
      } else {
        const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&v.x));
        const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&v.y));
        const float2 c = __half22float2(*reinterpret_cast<const __half2*>(&v.z));
        const float2 d = __half22float2(*reinterpret_cast<const __half2*>(&v.w));
        o[0] = make_float4(a.x, a.y, b.x, b.y);
        o[1] = make_float4(c.x, c.y, d.x, d.y);
      }
    }
  } else {
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) out[i] = elem_to_float<E>(row[i]);
  }
}

// One block per row. `delta` null: plain norm. `rows` non-null: the input row is x[rows[r]].
template <WeightElem E>
__global__ void rms_norm_kernel(float* __restrict__ x, const float* __restrict__ delta,
                                const int32_t* __restrict__ rows, const float* __restrict__ w,
                                uint16_t* __restrict__ y, int dim, float eps) {
  pdl_trigger();  // the GEMV after a norm may start loading its weights now
  const int r = blockIdx.x;
  const size_t src_row = rows != nullptr ? static_cast<size_t>(rows[r]) : static_cast<size_t>(r);
  float* xr = x + src_row * dim;
  const float* dr = delta != nullptr ? delta + static_cast<size_t>(r) * dim : nullptr;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i];
    if (dr != nullptr) {
      v += dr[i];
      xr[i] = v;
    }
    ss += v * v;
  }
  ss = block_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(dim) + eps);
  uint16_t* yr = y + static_cast<size_t>(r) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = float_to_elem<E>(xr[i] * inv * w[i]);
}

int norm_threads(int dim) {
  int t = 32;
  while (t < 1024 && t * 4 < dim) t *= 2;
  return t;
}

__global__ void rope_table_kernel(const double* __restrict__ inv_freq, int rope_dim,
                                  const int32_t* __restrict__ positions, int n,
                                  float* __restrict__ cos_sin) {
  const int half = rope_dim / 2;
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= n * half) return;
  const int t = idx / half, i = idx % half;
  const double theta = static_cast<double>(positions[t]) * inv_freq[i];
  double s, c;
  sincos(theta, &s, &c);
  cos_sin[static_cast<size_t>(t) * rope_dim + i] = static_cast<float>(c);
  cos_sin[static_cast<size_t>(t) * rope_dim + half + i] = static_cast<float>(s);
}

// One block per token; threads walk the element pairs of every Q, K and V head.
template <typename KV>
__global__ void qkv_rope_store_kernel(QkvRopeArgs a) {
  const int t = blockIdx.x;
  const int D = a.head_dim, half_d = D / 2, rhalf = a.rope_dim / 2;
  const int width = (a.n_head + 2 * a.n_head_kv) * D;
  const float* row = a.qkv + static_cast<size_t>(t) * width;
  const float* cs = a.cos_sin + static_cast<size_t>(t) * a.rope_dim;
  const int64_t slot = a.out_slots[t];
  KV* kc = static_cast<KV*>(a.k_cache) + slot * a.n_head_kv * D;
  KV* vc = static_cast<KV*>(a.v_cache) + slot * a.n_head_kv * D;
  const int n_pairs = (a.n_head + 2 * a.n_head_kv) * half_d;
  for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) {
    const int head = p / half_d, i = p % half_d;  // head in Q | K | V order
    int e0, e1;
    bool rotate = i < rhalf;
    if (rotate) {
      e0 = a.neox ? i : 2 * i;
      e1 = a.neox ? i + rhalf : 2 * i + 1;
    } else {
      e0 = a.rope_dim + 2 * (i - rhalf);
      e1 = e0 + 1;
    }
    const int base = head * D;
    float x0 = row[base + e0], x1 = row[base + e1];
    if (a.bias != nullptr) {
      x0 += a.bias[base + e0];
      x1 += a.bias[base + e1];
    }
    const bool is_v = head >= a.n_head + a.n_head_kv;
    if (rotate && !is_v) {
      const float c = cs[i], s = cs[rhalf + i];
      const float r0 = x0 * c - x1 * s;
      const float r1 = x0 * s + x1 * c;
      x0 = r0;
      x1 = r1;
    }
    if (head < a.n_head) {
      uint16_t* q = a.q_out + static_cast<size_t>(t) * a.n_head * D + base;
      q[e0] = float_to_bf16_bits(x0);
      q[e1] = float_to_bf16_bits(x1);
    } else if (!is_v) {
      KV* k = kc + (head - a.n_head) * D;
      kv::store(k + e0, x0);
      kv::store(k + e1, x1);
    } else {
      KV* v = vc + (head - a.n_head - a.n_head_kv) * D;
      kv::store(v + e0, x0);
      kv::store(v + e1, x1);
    }
  }
}

template <WeightElem E>
__global__ void silu_mul_kernel(const float* __restrict__ gu, int n, int n_ff,
                                uint16_t* __restrict__ out) {
  const size_t total = static_cast<size_t>(n) * n_ff;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / n_ff, f = idx % n_ff;
    const float g = gu[t * 2 * n_ff + f];
    const float u = gu[t * 2 * n_ff + n_ff + f];
    out[idx] = float_to_elem<E>(g / (1.0f + __expf(-g)) * u);
  }
}

// One thread per 8 elements (n % 8 == 0) or per element.
__global__ void bf16_to_f16_kernel(const uint16_t* x, uint16_t* y, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t i0 = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (n % 8 == 0) {
    for (size_t i = i0; i < n / 8; i += stride) {
      uint4 v = reinterpret_cast<const uint4*>(x)[i];
      uint32_t* w = &v.x;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const __half2 h =
            __floats2half2_rn(__uint_as_float(w[k] << 16), __uint_as_float(w[k] & 0xffff0000u));
        w[k] = *reinterpret_cast<const uint32_t*>(&h);
      }
      reinterpret_cast<uint4*>(y)[i] = v;
    }
  } else {
    for (size_t i = i0; i < n; i += stride)
      y[i] = __half_as_ushort(__float2half_rn(bf16_bits_to_float(x[i])));
  }
}

__global__ void argmax_kernel(const float* __restrict__ logits, int n_vocab,
                              int32_t* __restrict__ out) {
  const float* row = logits + static_cast<size_t>(blockIdx.x) * n_vocab;
  float best = -INFINITY;
  int best_i = n_vocab;
  for (int i = threadIdx.x; i < n_vocab; i += blockDim.x) {
    const float v = row[i];
    if (v > best) {  // strictly greater: the first index of a thread's maximum stays
      best = v;
      best_i = i;
    }
  }
  __shared__ float sv[32];
  __shared__ int si[32];
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (ov > best || (ov == best && oi < best_i)) {
      best = ov;
      best_i = oi;
    }
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) {
    sv[warp] = best;
    si[warp] = best_i;
  }
  __syncthreads();
  if (warp == 0) {
    const int n_warps = blockDim.x >> 5;
    best = lane < n_warps ? sv[lane] : -INFINITY;
    best_i = lane < n_warps ? si[lane] : n_vocab;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
      if (ov > best || (ov == best && oi < best_i)) {
        best = ov;
        best_i = oi;
      }
    }
    // All -inf or NaN rows: index 0, as the CPU sampler's argmax of such a row.
    if (lane == 0) out[blockIdx.x] = best_i < n_vocab ? best_i : 0;
  }
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// p[i] = scale * u_i, u_i uniform in [-1, 1) from a hash of (seed, i), stored as KV (kv::store:
// rounded to nearest even, saturated): dummy bf16 weights and test KV pools of any element type.
template <typename KV>
__global__ void fill_uniform_kernel(KV* p, size_t n, float scale, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = splitmix64(seed * 0xD1B54A32D192ED03ull + i);
    const float u = static_cast<float>(h >> 40) * (1.0f / 8388608.0f) - 1.0f;  // [-1, 1)
    kv::store(p + i, scale * u);
  }
}

__global__ void fill_f32_kernel(float* p, size_t n, float value) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = value;
}

__global__ void copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  // Four independent 16-byte loads in flight per thread.
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
    dst[i] = a;
    dst[i + stride] = b;
    dst[i + 2 * stride] = c;
    dst[i + 3 * stride] = d;
  }
  for (; i < n; i += stride) dst[i] = src[i];
}

int grid_for(size_t n, int threads) {
  const size_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

}  // namespace

void launch_embedding(const uint16_t* table, const int32_t* tokens, int n, int n_embd, float* x,
                      cudaStream_t stream, WeightElem elem) {
  if (n <= 0) return;
  const dim3 grid(n, (n_embd + 2047) / 2048);
  if (elem == WeightElem::kF16)
    embedding_kernel<WeightElem::kF16><<<grid, 256, 0, stream>>>(table, tokens, n_embd, x);
  else
    embedding_kernel<WeightElem::kBF16><<<grid, 256, 0, stream>>>(table, tokens, n_embd, x);
}

namespace {
// The kernel writes x only when delta is given; the cast keeps one kernel for every use.
void launch_norm(float* x, const float* delta, const int32_t* rows, const float* w, uint16_t* y,
                 int n, int dim, float eps, cudaStream_t stream, WeightElem elem) {
  if (n <= 0) return;
  if (elem == WeightElem::kF16)
    rms_norm_kernel<WeightElem::kF16>
        <<<n, norm_threads(dim), 0, stream>>>(x, delta, rows, w, y, dim, eps);
  else
    rms_norm_kernel<WeightElem::kBF16>
        <<<n, norm_threads(dim), 0, stream>>>(x, delta, rows, w, y, dim, eps);
}
}  // namespace

void launch_rms_norm(const float* x, const float* w, uint16_t* y, int n, int dim, float eps,
                     cudaStream_t stream, WeightElem elem) {
  launch_norm(const_cast<float*>(x), nullptr, nullptr, w, y, n, dim, eps, stream, elem);
}

void launch_add_rms_norm(float* x, const float* delta, const float* w, uint16_t* y, int n, int dim,
                         float eps, cudaStream_t stream, WeightElem elem) {
  launch_norm(x, delta, nullptr, w, y, n, dim, eps, stream, elem);
}

void launch_gather_rms_norm(const float* x, const int32_t* rows, int n_rows, int dim,
                            const float* w, float eps, uint16_t* y, cudaStream_t stream,
                            WeightElem elem) {
  launch_norm(const_cast<float*>(x), nullptr, rows, w, y, n_rows, dim, eps, stream, elem);
}

void launch_bf16_to_f16(const uint16_t* x, uint16_t* y, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  bf16_to_f16_kernel<<<grid_for(n % 8 == 0 ? n / 8 : n, 256), 256, 0, stream>>>(x, y, n);
}

void launch_rope_table(const double* inv_freq, int rope_dim, const int32_t* positions, int n,
                       float* cos_sin, cudaStream_t stream) {
  const int total = n * (rope_dim / 2);
  if (total <= 0) return;
  rope_table_kernel<<<(total + 255) / 256, 256, 0, stream>>>(inv_freq, rope_dim, positions, n,
                                                             cos_sin);
}

void launch_qkv_rope_store(const QkvRopeArgs& a, cudaStream_t stream) {
  if (a.n <= 0) return;
  const int pairs = (a.n_head + 2 * a.n_head_kv) * a.head_dim / 2;
  const int threads = pairs >= 512 ? 512 : (pairs + 31) / 32 * 32;
  switch (a.kv_elem) {
    case KvElem::kBF16:
      qkv_rope_store_kernel<bf16><<<a.n, threads, 0, stream>>>(a);
      break;
    case KvElem::kF16:
      qkv_rope_store_kernel<__half><<<a.n, threads, 0, stream>>>(a);
      break;
    case KvElem::kFp8E4M3:
      qkv_rope_store_kernel<__nv_fp8_e4m3><<<a.n, threads, 0, stream>>>(a);
      break;
    case KvElem::kFp8E5M2:
      qkv_rope_store_kernel<__nv_fp8_e5m2><<<a.n, threads, 0, stream>>>(a);
      break;
  }
}

void launch_silu_mul(const float* gu, int n, int n_ff, uint16_t* out, cudaStream_t stream,
                     WeightElem elem) {
  const size_t total = static_cast<size_t>(n) * n_ff;
  if (total == 0) return;
  if (elem == WeightElem::kF16)
    silu_mul_kernel<WeightElem::kF16><<<grid_for(total, 256), 256, 0, stream>>>(gu, n, n_ff, out);
  else
    silu_mul_kernel<WeightElem::kBF16><<<grid_for(total, 256), 256, 0, stream>>>(gu, n, n_ff, out);
}

void launch_argmax(const float* logits, int n_rows, int n_vocab, int32_t* out,
                   cudaStream_t stream) {
  if (n_rows <= 0) return;
  argmax_kernel<<<n_rows, 1024, 0, stream>>>(logits, n_vocab, out);
}

void launch_fill_uniform_bf16(uint16_t* p, size_t n, float scale, uint64_t seed,
                              cudaStream_t stream) {
  launch_fill_uniform_kv(p, n, KvElem::kBF16, scale, seed, stream);
}

void launch_fill_uniform_weight(uint16_t* p, size_t n, WeightElem elem, float scale, uint64_t seed,
                                cudaStream_t stream) {
  launch_fill_uniform_kv(p, n, elem == WeightElem::kF16 ? KvElem::kF16 : KvElem::kBF16, scale, seed,
                         stream);
}

void launch_fill_uniform_kv(void* p, size_t n, KvElem kv_elem, float scale, uint64_t seed,
                            cudaStream_t stream) {
  if (n == 0) return;
  const dim3 grid = grid_for(n, 256);
  switch (kv_elem) {
    case KvElem::kBF16:
      fill_uniform_kernel<<<grid, 256, 0, stream>>>(static_cast<bf16*>(p), n, scale, seed);
      break;
    case KvElem::kF16:
      fill_uniform_kernel<<<grid, 256, 0, stream>>>(static_cast<__half*>(p), n, scale, seed);
      break;
    case KvElem::kFp8E4M3:
      fill_uniform_kernel<<<grid, 256, 0, stream>>>(static_cast<__nv_fp8_e4m3*>(p), n, scale,
                                                       seed);
      break;
    case KvElem::kFp8E5M2:
      fill_uniform_kernel<<<grid, 256, 0, stream>>>(static_cast<__nv_fp8_e5m2*>(p), n, scale,
                                                       seed);
      break;
  }
}

void launch_fill_f32(float* p, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fill_f32_kernel<<<grid_for(n, 256), 256, 0, stream>>>(p, n, value);
}

void launch_copy(const void* src, void* dst, size_t bytes, int n_sm, cudaStream_t stream) {
  const size_t n = bytes / 16;
  if (n == 0) return;
  copy_kernel<<<n_sm * 8, 512, 0, stream>>>(static_cast<const uint4*>(src),
                                            static_cast<uint4*>(dst), n);
}

}  // namespace sgl::backend::cuda
