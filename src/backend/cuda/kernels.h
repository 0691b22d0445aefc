// The CUDA backend's own kernels, as host-callable launchers on device pointers. Each enqueues work
// on `stream` and returns at once; callers check cudaGetLastError() (the backend does after every
// layer). bf16 buffers are passed as uint16_t* holding raw bfloat16 bits so that this header
// needs no CUDA type beyond cudaStream_t. Shapes are row-major, given in comments as [rows, cols].
//
// Numerics: weights and the activations that feed GEMMs are bf16 (or all f16: WeightElem), the
// residual stream and GEMM outputs are f32, every reduction (norms, attention softmax, dot
// products) accumulates in f32, RoPE angles are computed in double (as the CPU backend's
// rope_table does). Q, the KV pool and the attention output keep their own types whatever the
// weights are.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace sgl::backend::cuda {

// Element type of the KV pool. The fp8 kinds (1 byte, scale 1.0, saturating; kv_store.cuh) are
// read by launch_attention (tensor cores for head_dim 128/256, the CUDA-core kernel otherwise)
// and by launch_attention_prefill_tc through a bf16 copy of the rows it reads.
enum class KvElem { kBF16, kF16, kFp8E4M3, kFp8E5M2 };
// Bytes per K or V element.
constexpr int kv_elem_bytes(KvElem e) {
  return e == KvElem::kFp8E4M3 || e == KvElem::kFp8E5M2 ? 1 : 2;
}

// Element type of the weight matrices (the embedding table and LM head included) and of the
// activations that feed their GEMMs (SGLang's --dtype): every launcher below that takes one reads
// and writes those uint16_t buffers as this type (bf16 when left out). f16 values are rounded to
// nearest even; an f16 activation beyond +-65504 becomes +-inf (as torch.float16 does).
enum class WeightElem { kBF16, kF16 };

// x[t, :] = float(table[tokens[t], :]).  table: [n_vocab, n_embd] `elem`, x: [n, n_embd] f32.
// REQUIRES: every token id is a valid row.
void launch_embedding(const uint16_t* table, const int32_t* tokens, int n, int n_embd, float* x,
                      cudaStream_t stream, WeightElem elem = WeightElem::kBF16);

// y[t] = elem(x[t] / sqrt(mean(x[t]^2) + eps) * w).  x: [n, dim] f32, w: [dim] f32, y `elem`.
void launch_rms_norm(const float* x, const float* w, uint16_t* y, int n, int dim, float eps,
                     cudaStream_t stream, WeightElem elem = WeightElem::kBF16);

// Fused residual add + RMS norm: x[t] += delta[t] (in place, f32), then y[t] = rms_norm(x[t]) * w.
void launch_add_rms_norm(float* x, const float* delta, const float* w, uint16_t* y, int n, int dim,
                         float eps, cudaStream_t stream, WeightElem elem = WeightElem::kBF16);

// y[r] = rms_norm(x[rows[r]]) * w for r < n_rows: the logits row selection before the LM head.
void launch_gather_rms_norm(const float* x, const int32_t* rows, int n_rows, int dim,
                            const float* w, float eps, uint16_t* y, cudaStream_t stream,
                            WeightElem elem = WeightElem::kBF16);

// y[i] = f16(bf16 x[i]) for i < n, in place allowed (y == x): the bf16 attention output as the
// f16 input of the O projection (exact for |x| <= 65504 above f16's subnormal range).
void launch_bf16_to_f16(const uint16_t* x, uint16_t* y, size_t n, cudaStream_t stream);

// cos_sin [n, rope_dim]: per token the rope_dim/2 cosines then the rope_dim/2 sines of
// positions[t] * inv_freq[i] (inv_freq: [rope_dim/2] doubles on the device, scaling folded in).
void launch_rope_table(const double* inv_freq, int rope_dim, const int32_t* positions, int n,
                       float* cos_sin, cudaStream_t stream);

struct QkvRopeArgs {
  const float* qkv = nullptr;          // [n, (n_head + 2 n_head_kv) * head_dim] f32: Q | K | V
  const float* bias = nullptr;         // [(n_head + 2 n_head_kv) * head_dim] f32, or null
  const float* cos_sin = nullptr;      // [n, rope_dim] from launch_rope_table
  const int32_t* out_slots = nullptr;  // [n] KV slot of each token
  int n = 0, n_head = 0, n_head_kv = 0, head_dim = 0, rope_dim = 0;
  bool neox = false;          // rotate halves (i, i + rope_dim/2) instead of pairs (2i, 2i+1)
  uint16_t* q_out = nullptr;  // [n, n_head * head_dim] bf16, rotated
  void* k_cache = nullptr;    // [slot, n_head_kv, head_dim] KvElem, K rotated
  void* v_cache = nullptr;
  KvElem kv_elem = KvElem::kBF16;
};
// Adds the bias, rotates Q and K, writes Q (bf16) and stores K, V into their slots.
void launch_qkv_rope_store(const QkvRopeArgs& a, cudaStream_t stream);

// out[t, f] = elem(silu(gu[t, f]) * gu[t, n_ff + f]).  gu: [n, 2 n_ff] f32 (gate | up).
void launch_silu_mul(const float* gu, int n, int n_ff, uint16_t* out, cudaStream_t stream,
                     WeightElem elem = WeightElem::kBF16);

// out[r] = the index of the largest of logits[r, 0..n_vocab) (lowest index on ties).
void launch_argmax(const float* logits, int n_rows, int n_vocab, int32_t* out, cudaStream_t stream);
// The same result over many blocks per row (argmax.cu: slices, then one reduction per row in
// slice order), for the decode step's few rows; workspace: argmax_workspace_bytes(n_rows,
// n_vocab) bytes, 8-byte aligned.
constexpr int kArgmaxMaxBlocks = 512;
size_t argmax_workspace_bytes(int n_rows, int n_vocab);
void launch_argmax_split(const float* logits, int n_rows, int n_vocab, void* workspace,
                         int32_t* out, cudaStream_t stream);

struct AttentionArgs {
  const uint16_t* q = nullptr;    // [n_tokens, n_head, head_dim] bf16
  const void* k_cache = nullptr;  // [slot, n_head_kv, head_dim] KvElem
  const void* v_cache = nullptr;
  KvElem kv_elem = KvElem::kBF16;
  const int32_t* positions = nullptr;        // [n_tokens]; a query at position p sees keys 0..p
  const int32_t* token_seq = nullptr;        // [n_tokens] sequence of each token
  const int32_t* seq_slots_begin = nullptr;  // [n_seqs] offset of each sequence's slot list
  const int32_t* slots = nullptr;            // concatenated slot lists
  int n_tokens = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
  int max_kv = 0;  // the largest position + 1 over the batch
  // > 0: split every token's keys into exactly this many chunks (of its own length), whatever
  // max_kv is: the launch then depends on n_tokens alone, as CUDA graph replays need.
  int fixed_splits = 0;
  float scale = 0.0f;          // softmax scale (1/sqrt(head_dim))
  uint16_t* out = nullptr;     // [n_tokens, n_head, head_dim] bf16
  float* workspace = nullptr;  // attention_workspace_floats() floats
  int n_sm = 132;              // multiprocessors (sizes the split over the sequence)
  // [n_tokens] or null: launch_attention leaves tokens with token_skip[t] != 0 alone (their
  // outputs come from launch_attention_prefill_tc).
  const int32_t* token_skip = nullptr;
  // fp8 pools, launch_attention_prefill_tc only (its kernels read bf16): the K/V rows the tiles
  // read are first converted into bf16_k / bf16_v ([bf16_rows, n_head_kv, head_dim] bf16; row i
  // from pool slot bf16_src[i]), and the kernel then reads key j of the sequence of token t at
  // row bf16_slots[bf16_seq_begin[token_seq[t]] + j] instead of the pool's slot list.
  int bf16_rows = 0;
  const int32_t* bf16_src = nullptr;
  const int32_t* bf16_seq_begin = nullptr;
  const int32_t* bf16_slots = nullptr;
  uint16_t* bf16_k = nullptr;
  uint16_t* bf16_v = nullptr;
};
// True iff the attention kernels handle this head dimension (8, 16, 32, 64, 128, 256).
bool attention_head_dim_supported(int head_dim);
// Floats of workspace the split-sequence attention needs for these sizes.
size_t attention_workspace_floats(int n_tokens, int n_head, int n_head_kv, int head_dim, int max_kv,
                                  int n_sm, int fixed_splits = 0);
// The split count for AttentionArgs::fixed_splits at this batch size: enough blocks to fill
// n_sm multiprocessors about twice over (one wave of the decode kernel's blocks), at most 16.
int attention_fixed_splits(int n_tokens, int n_head, int n_head_kv, int n_sm);
// Causal GQA attention over slot lists: each query reads the keys of its sequence up to its own
// position, split over the sequence into chunks whose partial softmax states are merged after.
// REQUIRES: attention_head_dim_supported(head_dim); n_head % n_head_kv == 0.
void launch_attention(const AttentionArgs& a, cudaStream_t stream);
// The same through the CUDA-core kernel alone (launch_attention's kernel for head_dim < 64; for
// the others a reference for tests and benchmarks).
void launch_attention_simple(const AttentionArgs& a, cudaStream_t stream);

// Prefill attention on tensor cores (wgmma on sm_90, else mma.sync; bf16, FlashAttention-style
// blocks of 128 queries, online softmax in f32; attention_tc.h) for head_dim 64 or 128 with a
// bf16 KV pool, or an fp8 one through the bf16_* rows of AttentionArgs (false without them). Same
// contract as launch_attention (causal, slot lists, cached prefix) for the queries of the given
// tiles only: tiles is [n_tiles][2] on the device, each (first token index, number of rows <=
// kPrefillTcRows), the rows being consecutive tokens of one sequence; longest tiles first is
// fastest. Returns false (launching nothing) when it does not apply (prefill_tc_supported) or the
// kernel cannot be configured.
bool prefill_tc_supported(int head_dim, KvElem kv_elem);
bool launch_attention_prefill_tc(const AttentionArgs& a, const int32_t* tiles, int n_tiles,
                                 cudaStream_t stream);
constexpr int kPrefillTcRows = 128;
// dst_k[i] = bf16(k_cache[src_slots[i]]) and the same for V, for i < n_rows, rows of row_elems
// (a multiple of 8) elements: the fp8 pool's rows for the bf16 prefill kernels (exact: every fp8
// value is a bf16 value).
void launch_kv_rows_to_bf16(const void* k_cache, const void* v_cache, KvElem kv_elem,
                            const int32_t* src_slots, int n_rows, int row_elems, uint16_t* dst_k,
                            uint16_t* dst_v, cudaStream_t stream);

// Skinny GEMM for decode batches (gemv.cu): y[n, N] (f32) = x[n, K] (bf16) * W[N, K]^T (bf16,
// row-major as stored), f32 accumulation, for n <= kGemvMaxRows activation rows. A pure weight
// stream (16-byte loads, several in flight per lane, one warp per few output rows, no split over
// K): deterministic, and independent of n in its per-row arithmetic order. `variant` 0 is the
// tuned default; 1..4 are alternative tilings kept for benchmarks (bf16 only: f16 always runs
// the default). With elem kF16, x and W are both f16.
// REQUIRES: gemv_supported(n, N, K); x, w 16-byte aligned.
constexpr int kGemvMaxRows = 8;
bool gemv_supported(int n, int N, int K);
void launch_gemv(const uint16_t* x, const uint16_t* w, float* y, int n, int N, int K,
                 cudaStream_t stream, int variant = 0, WeightElem elem = WeightElem::kBF16);
// The same over the fused gate|up matrix w_gu [2 n_ff, K] with the SiLU-and-multiply epilogue:
// out[t, f] = elem(silu(g) * u), g = x[t] . w_gu[f], u = x[t] . w_gu[n_ff + f] (f32 sums), the
// expression launch_silu_mul uses. out: [n, n_ff] `elem`.
void launch_gemv_gate_up_silu(const uint16_t* x, const uint16_t* w_gu, uint16_t* out, int n,
                              int n_ff, int K, cudaStream_t stream, int variant = 0,
                              WeightElem elem = WeightElem::kBF16);

// Decode GEMVs with the neighbouring elementwise work fused in (gemv_fused.cu), for decode steps
// of n <= kGemvMaxRows rows: the weight stream of launch_gemv (for the small projections, fewer
// than ~16k rows, with K split over a block's warps, partial sums added in a fixed order; chosen
// by the shape, so rows are batch invariant as there), plus
// - GemvNormIn: the GEMV computes its bf16 activations itself, rms_norm(x[rows[r]]) * weight
//   (as launch_gather_rms_norm writes them; sum of squares in another order), in a prologue that
//   runs under its first weight loads: the separate norm launch goes away;
// - launch_gemv_add: resid[r, o] += sum (f32, each element added by one thread: deterministic),
//   the residual add after the O and down projections;
// - launch_gemv_norm_qkv_rope: bias + RoPE + the Q write and the K/V store of launch_qkv_rope_store
//   in the epilogue (the f32 Q|K|V rows never go to memory).
// With elem kF16 the weights, x of launch_gemv_add, the prologue's activations and the gated
// output are f16 (Q and K/V keep their types).
struct GemvNormIn {
  const float* x = nullptr;       // [*, K] f32 (the residual stream)
  const int32_t* rows = nullptr;  // [n] the rows of x to use, or null: rows 0..n-1
  const float* weight = nullptr;  // [K] f32 norm weight
  float eps = 0.0f;
};
// gemv_supported, and the prologue's n * K bf16 fit in shared memory.
bool gemv_norm_supported(int n, int N, int K);
// y[n, N] (f32) = rms_norm(x) W^T.  REQUIRES: gemv_norm_supported(n, N, K); x rows 16-byte aligned.
void launch_gemv_norm(const GemvNormIn& in, const uint16_t* w, float* y, int n, int N, int K,
                      cudaStream_t stream, WeightElem elem = WeightElem::kBF16);
// out[n, n_ff] (`elem`) = silu(g) * u of rms_norm(x) w_gu^T, as launch_gemv_gate_up_silu.
void launch_gemv_norm_gate_up_silu(const GemvNormIn& in, const uint16_t* w_gu, uint16_t* out, int n,
                                   int n_ff, int K, cudaStream_t stream,
                                   WeightElem elem = WeightElem::kBF16);
// resid[n, N] (f32) += x[n, K] W^T.  REQUIRES: gemv_supported(n, N, K).
void launch_gemv_add(const uint16_t* x, const uint16_t* w, float* resid, int n, int N, int K,
                     cudaStream_t stream, WeightElem elem = WeightElem::kBF16);
// What launch_qkv_rope_store(a) does to rms_norm(x) w_qkv^T (a.qkv is ignored), for a.n rows:
// needs gemv_norm_supported, head_dim and rope_dim multiples of 4.
bool gemv_norm_qkv_rope_supported(const QkvRopeArgs& a, int K);
void launch_gemv_norm_qkv_rope(const GemvNormIn& in, const uint16_t* w_qkv, const QkvRopeArgs& a,
                               int K, cudaStream_t stream, WeightElem elem = WeightElem::kBF16);

// Deterministic pseudo-random fill (dummy weights): p[i] = bf16(scale * u_i), u_i uniform in
// [-1, 1) from a hash of (seed, i).
void launch_fill_uniform_bf16(uint16_t* p, size_t n, float scale, uint64_t seed,
                              cudaStream_t stream);
// The same draws as `elem` (f16: rounded to nearest even).
void launch_fill_uniform_weight(uint16_t* p, size_t n, WeightElem elem, float scale, uint64_t seed,
                                cudaStream_t stream);
// The same draws as KV elements of kv_elem (rounded and saturated as the K/V store does).
void launch_fill_uniform_kv(void* p, size_t n, KvElem kv_elem, float scale, uint64_t seed,
                            cudaStream_t stream);
void launch_fill_f32(float* p, size_t n, float value, cudaStream_t stream);

// dst = src over `bytes` (a multiple of 16, both 16-byte aligned) with 16-byte loads and stores:
// the copy kernel that measures device memory bandwidth.
void launch_copy(const void* src, void* dst, size_t bytes, int n_sm, cudaStream_t stream);

}  // namespace sgl::backend::cuda
