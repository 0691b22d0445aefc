// Causal grouped-query attention for one sequence over a slot-addressed KV pool, and the helper
// that writes new K/V rows into the pool.
//
// The pool holds, for every slot, n_head_kv rows of head_dim elements ([slot][kv_head][dim]) in
// f16, bf16 or f32. A sequence is a list of slots: its token j lives at slots[j]. A query at
// position p attends to tokens 0..p (causal), with query head h reading KV head
// h / (n_head / n_head_kv). The softmax is computed online (flash style) over key blocks of 32
// aligned at multiples of 32, in f32, with scale 1/sqrt(head_dim) unless given.
//
// Deterministic and batch invariant: a query's output depends only on its own q, its position
// and the keys it sees, never on how many queries share the call or how they are split across
// threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/ggml_type.h"

namespace sgl {
class ThreadPool;
}

namespace sgl::backend::cpu {

struct AttentionParams {
  const float* q = nullptr;            // [n_tokens][n_head][head_dim]
  const int32_t* positions = nullptr;  // [n_tokens]: each query's position in the sequence
  int n_tokens = 0;
  int n_head = 0;
  int n_head_kv = 0;  // divides n_head
  int head_dim = 0;
  const void* k_cache = nullptr;  // [slot][n_head_kv][head_dim], kv_type elements
  const void* v_cache = nullptr;
  model::GgmlType kv_type = model::GgmlType::kF16;  // F16, BF16 or F32
  const int32_t* slots = nullptr;                   // [n_kv]: slot of each token of the sequence
  int n_kv = 0;          // tokens in the sequence; every position must be < n_kv
  float scale = 0.0f;    // 0 means 1 / sqrt(head_dim)
  float* out = nullptr;  // [n_tokens][n_head][head_dim]
};

// Per-thread scratch for attention(); grows on first use, then no allocation.
class AttentionWorkspace {
 public:
  // Scratch for thread `thread` large enough for `floats` floats (64-byte aligned).
  float* scratch(int thread, size_t floats);

 private:
  std::vector<std::vector<float>> per_thread_;
};

// out = softmax(q k^T * scale, causal) v for every query and head.
// REQUIRES: the params describe valid memory; positions in [0, n_kv); slots index the caches.
// pool may be null; ws may be null (a thread-local workspace is used).
void attention(const AttentionParams& p, ThreadPool* pool, AttentionWorkspace* ws = nullptr);

// The same for query tokens [q_begin, q_end) and the query heads of KV head kv_head, on the
// calling thread, for callers that schedule heads themselves. scratch holds
// attention_scratch_size(p) floats.
void attention_range(const AttentionParams& p, int kv_head, int q_begin, int q_end, float* scratch);
size_t attention_scratch_size(const AttentionParams& p);

// Writes n_tokens rows of K and V ([n_tokens][n_head_kv * head_dim] f32, row_elems floats each)
// into the caches at slots[0..n_tokens), converting to kv_type (round to nearest even).
void store_kv(model::GgmlType kv_type, void* k_cache, void* v_cache, int64_t row_elems,
              const float* k, const float* v, const int32_t* slots, int n_tokens);

}  // namespace sgl::backend::cpu
