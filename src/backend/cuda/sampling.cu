// Token sampling on the GPU (see sampling.h for the contract and the method).
//
// Mirror of runtime::Sampler::sample, step by step, one block per row:
//   1. masked maximum and argmax (bitset, vocabulary limit); greedy or no finite maximum: argmax;
//   2. p_i = exp((l_i - max) / T) as a float (the host's expression; exp in double, rounded, so it
//      agrees with the host's correctly rounded expf but for rare halfway cases), kept iff
//      p_i > 0 and p_i >= min_p; written to `work`, 0 for dropped entries;
//   3. top-k: the first k entries of the (p desc, id asc) order;
//   4. top-p: the shortest prefix of that order whose mass reaches top_p * (kept mass); then the
//      draw walks that order: the first entry whose cumulative mass exceeds u * (kept mass);
//      without top-p the draw walks the kept entries in id order (the host's canonical order).
// Entries are never sorted: a prefix of the (p desc, id asc) order is a cut (t, id) and is found
// by bisection on the bits of t (positive floats order like their bit patterns), each step one
// pass over the row with a block reduction. Only the tie at the cut needs an id-order scan. Each
// cut is then applied to the row (entries outside it zeroed), so the search passes of the next
// filter test a single compare per entry: the passes are instruction-bound, and this took top-p
// from 856 to 511 us for 64 rows x 128256 on the H100.
#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>

#include "backend/cuda/sampling.h"

namespace sgl::backend::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;
constexpr uint32_t kOneBits = 0x3F800000u;  // 1.0f: the largest p (the maximum's)

struct Smem {
  double d[kWarps];
  float f[kWarps];
  int a[kWarps], b[kWarps], c[kWarps];
  int result;
};

// A prefix of the kept entries in (p desc, id asc) order: p > t, or p == t and id <= id.
// {0, -1} is every entry with p > 0.
struct Cut {
  float t;
  int id;
};

__device__ __forceinline__ bool kept(float e, int i, Cut cut) {
  return e > 0.0f && (e > cut.t || (e == cut.t && i <= cut.id));
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ int warp_sum(int v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ int warp_min(int v) {
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ __forceinline__ int warp_max(int v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// Calls f(i, row[i]) for every i < n this thread owns; 16-byte loads when the row allows. The
// assignment of entries to threads is fixed, so every reduction below has a fixed order.
template <typename F>
__device__ __forceinline__ void for_row(const float* row, int n, F&& f) {
  if ((n & 3) == 0 && (reinterpret_cast<uintptr_t>(row) & 15) == 0) {
    const float4* r4 = reinterpret_cast<const float4*>(row);
    for (int j = threadIdx.x; j < (n >> 2); j += kThreads) {
      const float4 v = r4[j];
      f(4 * j, v.x);
      f(4 * j + 1, v.y);
      f(4 * j + 2, v.z);
      f(4 * j + 3, v.w);
    }
  } else {
    for (int i = threadIdx.x; i < n; i += kThreads) f(i, row[i]);
  }
}

// Sum over the block of a double; every thread gets the same value (same order everywhere).
__device__ double block_sum(double v, Smem& sm) {
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) sm.d[threadIdx.x >> 5] = v;
  __syncthreads();
  double t = 0;
  for (int w = 0; w < kWarps; ++w) t += sm.d[w];
  __syncthreads();
  return t;
}

// Count (by_mass false) or mass of the kept entries with p >= t.
__device__ double measure_ge(const float* w, int n, float t, Cut cut, bool by_mass, Smem& sm) {
  double acc = 0;
  for_row(w, n, [&](int i, float e) {
    if (e >= t && kept(e, i, cut)) acc += by_mass ? static_cast<double>(e) : 1.0;
  });
  return block_sum(acc, sm);
}

// Zeroes the entries outside `cut`, so that from then on "kept" is just p > 0 and the search
// passes test one compare per entry (they are most of the kernel's time).
__device__ void apply_cut(float* w, int n, Cut cut) {
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const float e = w[i];
    if (e > 0.0f && !kept(e, i, cut)) w[i] = 0.0f;
  }
  __syncthreads();
}

// measure_ge for a row where every p > 0 is kept (apply_cut done) and t > 0.
__device__ double measure_applied(const float* w, int n, float t, bool by_mass, Smem& sm) {
  if (by_mass) {
    double acc = 0;
    for_row(w, n, [&](int, float e) {
      if (e >= t) acc += static_cast<double>(e);
    });
    return block_sum(acc, sm);
  }
  int cnt = 0;
  for_row(w, n, [&](int, float e) { cnt += e >= t ? 1 : 0; });
  cnt = warp_sum(cnt);
  if ((threadIdx.x & 31) == 0) sm.a[threadIdx.x >> 5] = cnt;
  __syncthreads();
  cnt = 0;
  for (int v = 0; v < kWarps; ++v) cnt += sm.a[v];
  __syncthreads();
  return static_cast<double>(cnt);
}

// The id of the c-th (1-based) kept entry with p == t, in id order.
__device__ int nth_tie(const float* w, int n, float t, Cut cut, int c, Smem& sm) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int running = 0;
  for (int base = 0; base < n; base += kThreads) {
    const int i = base + static_cast<int>(threadIdx.x);
    float e = 0.0f;
    if (i < n) e = w[i];
    const bool hit = i < n && e == t && kept(e, i, cut);
    const int cnt = __syncthreads_count(hit);
    if (running + cnt >= c) {  // uniform: every thread saw the same counts
      const unsigned bits = __ballot_sync(kFull, hit);
      if (lane == 0) sm.a[warp] = __popc(bits);
      __syncthreads();
      int before = running;
      for (int v = 0; v < warp; ++v) before += sm.a[v];
      before += __popc(bits & ((1u << lane) - 1u));
      if (hit && before + 1 == c) sm.result = i;
      __syncthreads();
      const int r = sm.result;
      __syncthreads();
      return r;
    }
    running += cnt;
  }
  return -1;  // fewer than c ties: not reached (callers pass c <= the tie count)
}

// The last kept entry in (p desc, id asc) order: the largest id among the smallest p.
__device__ int last_kept(const float* w, int n, Cut cut, Smem& sm) {
  float mn = INFINITY;
  for_row(w, n, [&](int i, float e) {
    if (kept(e, i, cut)) mn = fminf(mn, e);
  });
  for (int o = 16; o > 0; o >>= 1) mn = fminf(mn, __shfl_xor_sync(kFull, mn, o));
  if ((threadIdx.x & 31) == 0) sm.f[threadIdx.x >> 5] = mn;
  __syncthreads();
  mn = INFINITY;
  for (int v = 0; v < kWarps; ++v) mn = fminf(mn, sm.f[v]);
  __syncthreads();
  int id = -1;
  for_row(w, n, [&](int i, float e) {
    if (e == mn && kept(e, i, cut)) id = max(id, i);
  });
  id = warp_max(id);
  if ((threadIdx.x & 31) == 0) sm.a[threadIdx.x >> 5] = id;
  __syncthreads();
  id = -1;
  for (int v = 0; v < kWarps; ++v) id = max(id, sm.a[v]);
  __syncthreads();
  return id;
}

// The shortest prefix of the kept entries, in (p desc, id asc) order, whose count reaches
// `target` (by_mass false), or whose mass reaches it (mass >= target; strict: mass > target).
// Returns it as a cut; *last = the id of its last entry.
// REQUIRES: the row holds only kept entries (apply_cut(cut) done).
__device__ Cut select_prefix(const float* w, int n, Cut cut, bool by_mass, double target,
                             bool strict, int* last, Smem& sm) {
  auto meets = [&](double m) { return strict ? m > target : m >= target; };
  // The largest t whose {p >= t} part of the kept set still meets the target. The whole kept set
  // ({p >= cut.t}) meets it by the callers' construction (the target is at most its measure); if
  // rounding breaks that, the search ends at cut.t and the tie step below picks the last kept
  // entry, which is the host's answer then too (or last_kept when nothing ties there).
  uint32_t lo = cut.t > 0.0f ? __float_as_uint(cut.t) : 1u;
  uint32_t hi = kOneBits;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (meets(measure_applied(w, n, __uint_as_float(mid), by_mass, sm))) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const float t = __uint_as_float(lo);
  // The entries above t fall short; how many of the ties at t (in id order) complete the prefix?
  double above = 0;
  int n_eq = 0, min_eq = INT_MAX, max_eq = -1;
  for_row(w, n, [&](int i, float e) {
    if (!kept(e, i, cut)) return;
    if (e > t) {
      above += by_mass ? static_cast<double>(e) : 1.0;
    } else if (e == t) {
      ++n_eq;
      min_eq = min(min_eq, i);
      max_eq = max(max_eq, i);
    }
  });
  above = warp_sum(above);
  n_eq = warp_sum(n_eq);
  min_eq = warp_min(min_eq);
  max_eq = warp_max(max_eq);
  if ((threadIdx.x & 31) == 0) {
    const int wi = threadIdx.x >> 5;
    sm.d[wi] = above;
    sm.a[wi] = n_eq;
    sm.b[wi] = min_eq;
    sm.c[wi] = max_eq;
  }
  __syncthreads();
  above = 0;
  n_eq = 0;
  min_eq = INT_MAX;
  max_eq = -1;
  for (int v = 0; v < kWarps; ++v) {
    above += sm.d[v];
    n_eq += sm.a[v];
    min_eq = min(min_eq, sm.b[v]);
    max_eq = max(max_eq, sm.c[v]);
  }
  __syncthreads();
  if (n_eq == 0) {  // not reached: the bisection stops on an entry's value
    *last = last_kept(w, n, cut, sm);
    return cut;
  }
  int c;
  if (!by_mass) {
    c = static_cast<int>(target - above);
  } else {
    // The host adds the tied entries one by one; c * t differs from that sum only in rounding.
    c = 1;
    if (!meets(above + static_cast<double>(t))) {
      const double need = ceil((target - above) / static_cast<double>(t));
      c = static_cast<int>(fmin(fmax(need, 1.0), static_cast<double>(n_eq)));
      while (c < n_eq && !meets(above + c * static_cast<double>(t))) ++c;
      while (c > 1 && meets(above + (c - 1) * static_cast<double>(t))) --c;
    }
  }
  c = max(1, min(c, n_eq));
  int id;
  if (c == n_eq) {
    id = max_eq;
  } else if (c == 1) {
    id = min_eq;
  } else {
    id = nth_tie(w, n, t, cut, c, sm);
  }
  *last = id;
  return Cut{t, id};
}

// The draw in id order: the first kept id whose cumulative mass exceeds r. Each thread takes a
// contiguous run of ids; a block scan of the runs' masses finds the run that holds r.
__device__ int draw_by_id(const float* w, int n, Cut cut, double r, Smem& sm) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int chunk = (n + kThreads - 1) / kThreads;
  const int begin = min(n, static_cast<int>(threadIdx.x) * chunk);
  const int end = min(n, begin + chunk);
  double s = 0;
  int last_local = -1;
  for (int i = begin; i < end; ++i) {
    const float e = w[i];
    if (kept(e, i, cut)) {
      s += e;
      last_local = i;
    }
  }
  double incl = s;
  for (int o = 1; o < 32; o <<= 1) {
    const double y = __shfl_up_sync(kFull, incl, o);
    if (lane >= o) incl += y;
  }
  double excl = __shfl_up_sync(kFull, incl, 1);
  if (lane == 0) excl = 0;
  const int last_warp = warp_max(last_local);
  if (lane == 31) sm.d[warp] = incl;
  if (lane == 0) sm.a[warp] = last_warp;
  if (threadIdx.x == 0) sm.result = -1;
  __syncthreads();
  double base = 0;
  for (int v = 0; v < warp; ++v) base += sm.d[v];
  int last_all = -1;
  for (int v = 0; v < kWarps; ++v) last_all = max(last_all, sm.a[v]);
  // [lo, hi) partition [0, total): a thread's hi is computed exactly as the next one's lo.
  const double lo = base + excl, hi = base + incl;
  if (last_local >= 0 && lo <= r && r < hi) {
    double cum = lo;
    int tok = last_local;  // rounding between the scan and this walk: stay in this run
    for (int i = begin; i < end; ++i) {
      const float e = w[i];
      if (!kept(e, i, cut)) continue;
      cum += e;
      if (r < cum) {
        tok = i;
        break;
      }
    }
    sm.result = tok;
  }
  __syncthreads();
  const int tok = sm.result;
  __syncthreads();
  return tok >= 0 ? tok : last_all;  // r at or past the total (rounding): the last, as the host
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* logits, float* work,
                                                          int n, const SampleParams* params,
                                                          const uint32_t* masks, int32_t* out) {
  __shared__ Smem sm;
  const int row = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const SampleParams p = params[row];
  const float* lrow = logits + static_cast<size_t>(row) * n;
  float* w = work + static_cast<size_t>(row) * n;
  const int limit = p.vocab_limit > 0 ? min(p.vocab_limit, n) : n;
  const uint32_t* mask = p.mask_offset >= 0 ? masks + p.mask_offset : nullptr;
  const int allowed_end = mask != nullptr ? min(limit, 32 * max(p.mask_words, 0)) : limit;
  auto allowed = [&](int i) {
    return i < allowed_end && (mask == nullptr || ((__ldg(mask + (i >> 5)) >> (i & 31)) & 1u));
  };

  // 1. The masked maximum and its first index.
  float best = -INFINITY;
  int best_i = INT_MAX;
  for_row(lrow, n, [&](int i, float v) {
    if (allowed(i) && v > best) {  // strictly: a thread's entries come in increasing id order
      best = v;
      best_i = i;
    }
  });
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, best, o);
    const int oi = __shfl_xor_sync(kFull, best_i, o);
    if (ov > best || (ov == best && oi < best_i)) {
      best = ov;
      best_i = oi;
    }
  }
  if (lane == 0) {
    sm.f[warp] = best;
    sm.a[warp] = best_i;
  }
  __syncthreads();
  best = -INFINITY;
  best_i = INT_MAX;
  for (int v = 0; v < kWarps; ++v) {
    if (sm.f[v] > best || (sm.f[v] == best && sm.a[v] < best_i)) {
      best = sm.f[v];
      best_i = sm.a[v];
    }
  }
  __syncthreads();
  if (p.temperature < 1e-6f || !isfinite(best)) {
    // All masked (no index won over -inf): index 0, as the host's argmax of an all -inf row.
    if (threadIdx.x == 0) out[row] = best_i == INT_MAX ? 0 : best_i;
    return;
  }

  // 2. Unnormalized probabilities with the min-p filter (p_max = 1, so the threshold is min_p).
  const float maxl = best;
  const float inv_t = 1.0f / p.temperature;
  const float min_keep = p.min_p > 0.0f ? p.min_p : 0.0f;
  for_row(lrow, n, [&](int i, float v) {
    float e = 0.0f;
    if (allowed(i)) {
      const float x = (v - maxl) * inv_t;
      e = static_cast<float>(exp(static_cast<double>(x)));
      if (!(e > 0.0f && e >= min_keep)) e = 0.0f;
    }
    w[i] = e;  // same thread, same index as the read: `work` may alias `logits`
  });
  __syncthreads();  // the row is re-read by every thread below

  Cut cut{0.0f, -1};
  const float tiny = __uint_as_float(1u);  // every p > 0 is >= the smallest denormal
  int last = -1;
  // 3. top-k.
  if (p.top_k > 0 && static_cast<double>(p.top_k) < measure_ge(w, n, tiny, cut, false, sm)) {
    cut = select_prefix(w, n, cut, false, static_cast<double>(p.top_k), false, &last, sm);
    apply_cut(w, n, cut);
  }
  int tok;
  if (p.top_p < 1.0f) {
    // 4a. top-p, then the draw in (p desc, id asc) order.
    const double total = measure_ge(w, n, tiny, cut, true, sm);
    cut = select_prefix(w, n, cut, true, static_cast<double>(p.top_p) * total, false, &last, sm);
    apply_cut(w, n, cut);
    const double kept_total = measure_ge(w, n, tiny, cut, true, sm);
    select_prefix(w, n, cut, true, p.u * kept_total, true, &tok, sm);
  } else {
    // 4b. The draw in id order.
    const double total = measure_ge(w, n, tiny, cut, true, sm);
    tok = draw_by_id(w, n, cut, p.u * total, sm);
  }
  if (threadIdx.x == 0) out[row] = tok;
}

__global__ void resolve_futures_kernel(int32_t* tokens, int n, const int32_t* prev) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n && tokens[i] < 0) tokens[i] = prev[-tokens[i] - 1];
}

}  // namespace

void launch_resolve_futures(int32_t* tokens, int n, const int32_t* prev, cudaStream_t stream) {
  if (n <= 0) return;
  resolve_futures_kernel<<<(n + 255) / 256, 256, 0, stream>>>(tokens, n, prev);
}

void launch_sample(const float* logits, float* work, int n_rows, int n_vocab,
                   const SampleParams* params, const uint32_t* masks, int32_t* out,
                   cudaStream_t stream) {
  if (n_rows <= 0) return;
  sample_kernel<<<n_rows, kThreads, 0, stream>>>(logits, work, n_vocab, params, masks, out);
}

}  // namespace sgl::backend::cuda
