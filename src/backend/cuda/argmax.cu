// Greedy token selection over many blocks per row (see kernels.h): at batch 1 the one-block
// argmax_kernel walks 128k logits with 1024 threads (~30 us on the H100); here each of up to
// kArgmaxChunks blocks reduces a slice of the row to (value, index), and one small block per row
// reduces those in slice order. Same result as launch_argmax, ties to the lowest index.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {
namespace {

constexpr int kThreads = 256;

// (v, i) beats (bv, bi): greater value, or the same value at a lower index. NaN never wins.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}

// Block-wide reduction of (best, best_i); thread 0 gets the result.
__device__ __forceinline__ void block_best(float& best, int& best_i) {
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (better(ov, oi, best, best_i)) {
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
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w)
      if (better(sv[w], si[w], best, best_i)) {
        best = sv[w];
        best_i = si[w];
      }
  }
}

// Grid (chunks, rows): block c reduces its slice of row r to ws[r * chunks + c].
__global__ void argmax_partial_kernel(const float* __restrict__ logits, int n_vocab, int chunk,
                                      float* __restrict__ ws_v, int* __restrict__ ws_i) {
  const int r = blockIdx.y, c = blockIdx.x;
  const float* row = logits + static_cast<size_t>(r) * n_vocab;
  const int begin = c * chunk, end = min(n_vocab, begin + chunk);
  float best = -INFINITY;
  int best_i = n_vocab;  // "none": every value was -inf or NaN
  for (int i = begin + threadIdx.x; i < end; i += kThreads) {
    const float v = row[i];
    if (v > best) {  // ascending i per thread: the first index of a thread's maximum stays
      best = v;
      best_i = i;
    }
  }
  block_best(best, best_i);
  if (threadIdx.x == 0) {
    ws_v[static_cast<size_t>(r) * gridDim.x + c] = best;
    ws_i[static_cast<size_t>(r) * gridDim.x + c] = best_i;
  }
}

__global__ void argmax_final_kernel(const float* __restrict__ ws_v, const int* __restrict__ ws_i,
                                    int chunks, int n_vocab, int32_t* __restrict__ out) {
  const int r = blockIdx.x;
  float best = -INFINITY;
  int best_i = n_vocab;
  for (int c = threadIdx.x; c < chunks; c += kThreads) {
    const float v = ws_v[static_cast<size_t>(r) * chunks + c];
    const int i = ws_i[static_cast<size_t>(r) * chunks + c];
    if (better(v, i, best, best_i)) {
      best = v;
      best_i = i;
    }
  }
  block_best(best, best_i);
  // All -inf or NaN rows: index 0, as the CPU sampler's argmax of such a row.
  if (threadIdx.x == 0) out[r] = best_i < n_vocab ? best_i : 0;
}

int argmax_chunks(int n_rows, int n_vocab) {
  // About 4096 logits per block, and no more than ~4 blocks per SM's worth in all.
  int chunks = (n_vocab + 4095) / 4096;
  const int cap = (kArgmaxMaxBlocks + n_rows - 1) / n_rows;
  if (chunks > cap) chunks = cap;
  return chunks > 0 ? chunks : 1;
}

}  // namespace

size_t argmax_workspace_bytes(int n_rows, int n_vocab) {
  return static_cast<size_t>(n_rows) * argmax_chunks(n_rows, n_vocab) * 8;
}

void launch_argmax_split(const float* logits, int n_rows, int n_vocab, void* workspace,
                         int32_t* out, cudaStream_t stream) {
  if (n_rows <= 0) return;
  const int chunks = argmax_chunks(n_rows, n_vocab);
  const int chunk = (n_vocab + chunks - 1) / chunks;
  float* ws_v = static_cast<float*>(workspace);
  int* ws_i = reinterpret_cast<int*>(ws_v + static_cast<size_t>(n_rows) * chunks);
  argmax_partial_kernel<<<dim3(chunks, n_rows), kThreads, 0, stream>>>(logits, n_vocab, chunk,
                                                                       ws_v, ws_i);
  argmax_final_kernel<<<n_rows, kThreads, 0, stream>>>(ws_v, ws_i, chunks, n_vocab, out);
}

}  // namespace sgl::backend::cuda
