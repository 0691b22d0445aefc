#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/kernel_table.h"
#include "support/check.h"
#include "support/thread_pool.h"

namespace sgl::backend::cpu {
namespace {

using model::GgmlType;

void check_params(const AttentionParams& p) {
  SGL_CHECK(p.n_head > 0 && p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0,
            "attention: n_head must be a multiple of n_head_kv");
  SGL_CHECK(p.head_dim > 0, "attention: head_dim must be positive");
  SGL_CHECK(
      p.kv_type == GgmlType::kF16 || p.kv_type == GgmlType::kBF16 || p.kv_type == GgmlType::kF32,
      "attention: kv_type must be F16, BF16 or F32");
  for (int i = 0; i < p.n_tokens; ++i)
    SGL_CHECK(p.positions[i] >= 0 && p.positions[i] < p.n_kv, "attention: position out of range");
}

// The kernel table whose attention handles this head_dim (SIMD paths need whole vectors).
const detail::KernelTable& attention_table(int head_dim) {
  const auto& kt = detail::kernels();
  if (head_dim % kt.attention_head_dim_multiple == 0) return kt;
  return detail::scalar_kernels();
}

detail::AttentionTile make_tile(const AttentionParams& p) {
  detail::AttentionTile t;
  t.q = p.q;
  t.positions = p.positions;
  t.k = p.k_cache;
  t.v = p.v_cache;
  t.kv_type = p.kv_type;
  t.slots = p.slots;
  t.n_head = p.n_head;
  t.n_head_kv = p.n_head_kv;
  t.head_dim = p.head_dim;
  t.scale = p.scale != 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  t.out = p.out;
  return t;
}

AttentionWorkspace& thread_workspace() {
  thread_local AttentionWorkspace ws;
  return ws;
}

}  // namespace

float* AttentionWorkspace::scratch(int thread, size_t floats) {
  if (per_thread_.size() <= static_cast<size_t>(thread)) per_thread_.resize(thread + 1);
  auto& v = per_thread_[thread];
  if (v.size() < floats + 16) v.resize(floats + 16);
  auto addr = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + ((64 - addr % 64) % 64) / sizeof(float);
}

size_t attention_scratch_size(const AttentionParams& p) {
  return detail::attention_scratch_floats(p.head_dim, p.n_head / p.n_head_kv);
}

void attention_range(const AttentionParams& p, int kv_head, int q_begin, int q_end,
                     float* scratch) {
  detail::AttentionTile t = make_tile(p);
  t.kv_head = kv_head;
  t.head_begin = 0;
  t.head_end = p.n_head / p.n_head_kv;
  t.q_begin = q_begin;
  t.q_end = q_end;
  t.scratch = scratch;
  attention_table(p.head_dim).attention(t);
}

void attention(const AttentionParams& p, ThreadPool* pool, AttentionWorkspace* ws) {
  if (p.n_tokens <= 0) return;
  check_params(p);
  if (ws == nullptr) ws = &thread_workspace();
  const auto& kt = attention_table(p.head_dim);
  const int group = p.n_head / p.n_head_kv;
  const int n_threads = pool != nullptr ? pool->n_threads() : 1;
  const size_t scratch_floats = attention_scratch_size(p);
  for (int t = 0; t < n_threads; ++t) ws->scratch(t, scratch_floats);  // grow before forking

  // Tasks: (kv head, chunk of queries), latest (most expensive) chunks first; the query heads of
  // a KV head stay together so they share its converted keys, unless there are fewer such tasks
  // than threads (e.g. decoding with one KV head), then heads are split too.
  const int q_chunk = detail::kAttnQueryTile;
  const int n_q_chunks = (p.n_tokens + q_chunk - 1) / q_chunk;
  int heads_per_task = group;
  while (heads_per_task > 1 && p.n_head_kv * n_q_chunks * (group / heads_per_task) < n_threads) {
    int d = heads_per_task - 1;
    while (group % d != 0) --d;
    heads_per_task = d;
  }
  const int head_tasks = group / heads_per_task;
  const int n_tasks = p.n_head_kv * head_tasks * n_q_chunks;
  const detail::AttentionTile base = make_tile(p);

  auto run_task = [&](int task, int thread) {
    const int qc = n_q_chunks - 1 - task / (p.n_head_kv * head_tasks);
    const int rest = task % (p.n_head_kv * head_tasks);
    detail::AttentionTile t = base;
    t.kv_head = rest / head_tasks;
    t.head_begin = (rest % head_tasks) * heads_per_task;
    t.head_end = t.head_begin + heads_per_task;
    t.q_begin = qc * q_chunk;
    t.q_end = std::min(p.n_tokens, t.q_begin + q_chunk);
    t.scratch = ws->scratch(thread, scratch_floats);
    kt.attention(t);
  };
  if (pool != nullptr && n_threads > 1 && n_tasks > 1) {
    pool->parallel_for(n_tasks, run_task);
  } else {
    for (int task = 0; task < n_tasks; ++task) run_task(task, 0);
  }
}

void store_kv(GgmlType kv_type, void* k_cache, void* v_cache, int64_t row_elems, const float* k,
              const float* v, const int32_t* slots, int n_tokens) {
  const auto& kt = detail::kernels();
  for (int i = 0; i < n_tokens; ++i) {
    const size_t slot = static_cast<size_t>(slots[i]);
    const float* ks = k + static_cast<size_t>(i) * row_elems;
    const float* vs = v + static_cast<size_t>(i) * row_elems;
    switch (kv_type) {
      case GgmlType::kF32:
        std::memcpy(static_cast<float*>(k_cache) + slot * row_elems, ks, row_elems * sizeof(float));
        std::memcpy(static_cast<float*>(v_cache) + slot * row_elems, vs, row_elems * sizeof(float));
        break;
      case GgmlType::kF16:
        kt.f32_to_f16(ks, static_cast<uint16_t*>(k_cache) + slot * row_elems, row_elems);
        kt.f32_to_f16(vs, static_cast<uint16_t*>(v_cache) + slot * row_elems, row_elems);
        break;
      case GgmlType::kBF16:
        kt.f32_to_bf16(ks, static_cast<uint16_t*>(k_cache) + slot * row_elems, row_elems);
        kt.f32_to_bf16(vs, static_cast<uint16_t*>(v_cache) + slot * row_elems, row_elems);
        break;
      default:
        SGL_CHECK(false, "store_kv: kv_type must be F16, BF16 or F32");
    }
  }
}

}  // namespace sgl::backend::cpu
