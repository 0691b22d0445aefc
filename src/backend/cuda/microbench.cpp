#include "backend/cuda/microbench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/attention_tc.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"

namespace sgl::backend::cuda {

namespace {

#define SGL_MB_OK(call)                                                                     \
  do {                                                                                      \
    cudaError_t e_ = (call);                                                                \
    if (e_ != cudaSuccess)                                                                  \
      return internal_error(std::string("CUDA: ") + #call + ": " + cudaGetErrorString(e_)); \
  } while (0)

// Device memory freed on scope exit.
struct DeviceMem {
  void* p = nullptr;
  ~DeviceMem() {
    if (p) cudaFree(p);
  }
};

Status alloc(DeviceMem* m, size_t bytes) {
  if (cudaMalloc(&m->p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return Status(StatusCode::kResourceExhausted, "CUDA: out of memory in the benchmark");
  }
  return Status::ok();
}

// Median milliseconds of `reps` runs of fn (each timed with events) after `warmup` runs.
Result<double> time_ms(const std::function<Status()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) SGL_RETURN_IF_ERROR(fn());
  SGL_MB_OK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  SGL_MB_OK(cudaEventCreate(&a));
  SGL_MB_OK(cudaEventCreate(&b));
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a);
    SGL_RETURN_IF_ERROR(fn());
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  SGL_MB_OK(cudaGetLastError());
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int sm_count(int device) {
  cudaDeviceProp p{};
  cudaGetDeviceProperties(&p, device);
  return p.multiProcessorCount;
}

}  // namespace

Result<nlohmann::json> bench_copy(int device, size_t bytes) {
  SGL_MB_OK(cudaSetDevice(device));
  bytes = bytes / 16 * 16;
  DeviceMem src, dst;
  SGL_RETURN_IF_ERROR(alloc(&src, bytes));
  SGL_RETURN_IF_ERROR(alloc(&dst, bytes));
  launch_fill_uniform_bf16(static_cast<uint16_t*>(src.p), bytes / 2, 1.0f, 7, nullptr);
  const int n_sm = sm_count(device);
  SGL_ASSIGN_OR_RETURN(const double ms, time_ms(
                                            [&] {
                                              launch_copy(src.p, dst.p, bytes, n_sm, nullptr);
                                              return Status::ok();
                                            },
                                            3, 20));
  return nlohmann::json{{"bytes", bytes}, {"ms", ms}, {"gb_per_s", 2.0 * bytes / ms / 1e6}};
}

Result<nlohmann::json> bench_gemm(int device, int n, int m, int k) {
  SGL_MB_OK(cudaSetDevice(device));
  SGL_ASSIGN_OR_RETURN(auto gemm, Gemm::create());
  DeviceMem x, w, y;
  SGL_RETURN_IF_ERROR(alloc(&x, size_t(n) * k * 2));
  SGL_RETURN_IF_ERROR(alloc(&w, size_t(m) * k * 2));
  SGL_RETURN_IF_ERROR(alloc(&y, size_t(n) * m * 2));
  launch_fill_uniform_bf16(static_cast<uint16_t*>(x.p), size_t(n) * k, 1.0f, 1, nullptr);
  launch_fill_uniform_bf16(static_cast<uint16_t*>(w.p), size_t(m) * k, 1.0f, 2, nullptr);
  SGL_ASSIGN_OR_RETURN(const double ms, time_ms(
                                            [&] {
                                              return gemm->run(static_cast<uint16_t*>(x.p),
                                                               static_cast<uint16_t*>(w.p), y.p,
                                                               GemmOut::kBF16, n, m, k, nullptr);
                                            },
                                            3, 20));
  return nlohmann::json{
      {"n", n}, {"m", m}, {"k", k}, {"ms", ms}, {"tflop_per_s", 2.0 * n * m * k / ms / 1e9}};
}

namespace {

// Shared set-up of the attention benchmarks: a pool of `n_slots` random K/V rows, and
// sequences whose slot lists are a random permutation of the pool.
struct AttnSetup {
  DeviceMem q, k, v, out, ws, meta;
  AttentionArgs a;
};

Status make_attention(AttnSetup* s, const std::vector<std::pair<int, int>>& seqs, int n_head,
                      int n_head_kv, int head_dim, int n_sm, KvElem kv_elem = KvElem::kBF16) {
  int n_tokens = 0, n_slots = 0, max_kv = 1;
  for (auto [past, nn] : seqs) {
    n_tokens += nn;
    n_slots += past + nn;
    max_kv = std::max(max_kv, past + nn);
  }
  const size_t kv_elems = size_t(n_slots) * n_head_kv * head_dim;
  SGL_RETURN_IF_ERROR(alloc(&s->q, size_t(n_tokens) * n_head * head_dim * 2));
  SGL_RETURN_IF_ERROR(alloc(&s->k, kv_elems * kv_elem_bytes(kv_elem)));
  SGL_RETURN_IF_ERROR(alloc(&s->v, kv_elems * kv_elem_bytes(kv_elem)));
  SGL_RETURN_IF_ERROR(alloc(&s->out, size_t(n_tokens) * n_head * head_dim * 2));
  const size_t ws = attention_workspace_floats(n_tokens, n_head, n_head_kv, head_dim, max_kv, n_sm);
  SGL_RETURN_IF_ERROR(alloc(&s->ws, std::max<size_t>(ws, 1) * 4));
  launch_fill_uniform_bf16(static_cast<uint16_t*>(s->q.p), size_t(n_tokens) * n_head * head_dim,
                           1.0f, 3, nullptr);
  launch_fill_uniform_kv(s->k.p, kv_elems, kv_elem, 1.0f, 4, nullptr);
  launch_fill_uniform_kv(s->v.p, kv_elems, kv_elem, 1.0f, 5, nullptr);
  std::vector<int32_t> perm(n_slots);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng(1);
  // Decode batches read scattered slots (as a long-running server's pool); a prefill reads its
  // own fresh, consecutive slots.
  if (seqs.size() > 1) std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> pos, token_seq, begin;
  for (size_t i = 0, off = 0; i < seqs.size(); ++i) {
    begin.push_back(int32_t(off));
    for (int t = 0; t < seqs[i].second; ++t) {
      pos.push_back(seqs[i].first + t);
      token_seq.push_back(int32_t(i));
    }
    off += seqs[i].first + seqs[i].second;
  }
  std::vector<int32_t> meta;
  meta.insert(meta.end(), pos.begin(), pos.end());
  meta.insert(meta.end(), token_seq.begin(), token_seq.end());
  meta.insert(meta.end(), begin.begin(), begin.end());
  meta.insert(meta.end(), perm.begin(), perm.end());
  SGL_RETURN_IF_ERROR(alloc(&s->meta, meta.size() * 4));
  SGL_MB_OK(cudaMemcpy(s->meta.p, meta.data(), meta.size() * 4, cudaMemcpyHostToDevice));
  const int32_t* m = static_cast<const int32_t*>(s->meta.p);
  AttentionArgs& a = s->a;
  a.q = static_cast<uint16_t*>(s->q.p);
  a.k_cache = s->k.p;
  a.v_cache = s->v.p;
  a.kv_elem = kv_elem;
  a.positions = m;
  a.token_seq = m + n_tokens;
  a.seq_slots_begin = m + 2 * n_tokens;
  a.slots = m + 2 * n_tokens + seqs.size();
  a.n_tokens = n_tokens;
  a.n_head = n_head;
  a.n_head_kv = n_head_kv;
  a.head_dim = head_dim;
  a.max_kv = max_kv;
  a.scale = 1.0f / std::sqrt(float(head_dim));
  a.out = static_cast<uint16_t*>(s->out.p);
  a.workspace = static_cast<float*>(s->ws.p);
  a.n_sm = n_sm;
  return Status::ok();
}

}  // namespace

Result<nlohmann::json> bench_decode_attention(int device, int batch, int kv_len, int n_head,
                                              int n_head_kv, int head_dim, int fixed_splits,
                                              bool cuda_cores, KvElem kv_elem) {
  SGL_MB_OK(cudaSetDevice(device));
  const int n_sm = sm_count(device);
  const double bytes = 2.0 * batch * kv_len * n_head_kv * head_dim * kv_elem_bytes(kv_elem);
  // Copies of the batch (disjoint slots of one pool), each rep reading the next one.
  const int copies = static_cast<int>(std::clamp(std::ceil(256.0 * (1 << 20) / bytes), 1.0, 64.0));
  AttnSetup s;
  std::vector<std::pair<int, int>> seqs(size_t(batch) * copies, {kv_len - 1, 1});
  SGL_RETURN_IF_ERROR(make_attention(&s, seqs, n_head, n_head_kv, head_dim, n_sm, kv_elem));
  AttentionArgs a = s.a;
  a.n_tokens = batch;
  a.fixed_splits =
      fixed_splits < 0 ? attention_fixed_splits(batch, n_head, n_head_kv, n_sm) : fixed_splits;
  DeviceMem ws;
  const size_t ws_floats = attention_workspace_floats(batch, n_head, n_head_kv, head_dim, a.max_kv,
                                                      n_sm, a.fixed_splits);
  SGL_RETURN_IF_ERROR(alloc(&ws, std::max<size_t>(1, ws_floats) * 4));
  a.workspace = static_cast<float*>(ws.p);
  int rep = 0;
  SGL_ASSIGN_OR_RETURN(const double ms, time_ms(
                                            [&] {
                                              AttentionArgs r = a;
                                              const int i = rep++ % copies;
                                              r.positions += size_t(i) * batch;
                                              r.token_seq += size_t(i) * batch;
                                              if (cuda_cores)
                                                launch_attention_simple(r, nullptr);
                                              else
                                                launch_attention(r, nullptr);
                                              return Status::ok();
                                            },
                                            5, 50));
  const size_t splits_ws = ws_floats / (size_t(batch) * n_head * (head_dim + 2));
  return nlohmann::json{{"batch", batch},
                        {"kv_len", kv_len},
                        {"n_head", n_head},
                        {"n_head_kv", n_head_kv},
                        {"head_dim", head_dim},
                        {"kernel", cuda_cores ? "cuda_cores" : "default"},
                        {"kv", kv_elem == KvElem::kBF16      ? "bf16"
                               : kv_elem == KvElem::kF16     ? "f16"
                               : kv_elem == KvElem::kFp8E4M3 ? "fp8_e4m3"
                                                             : "fp8_e5m2"},
                        {"fixed_splits", a.fixed_splits},
                        {"splits", std::max<size_t>(1, splits_ws)},
                        {"ms", ms},
                        {"kv_bytes", bytes},
                        {"gb_per_s", bytes / ms / 1e6}};
}

Result<nlohmann::json> bench_prefill_attention(int device, int seq_len, int n_head, int n_head_kv,
                                               int head_dim) {
  SGL_MB_OK(cudaSetDevice(device));
  AttnSetup s;
  SGL_RETURN_IF_ERROR(
      make_attention(&s, {{0, seq_len}}, n_head, n_head_kv, head_dim, sm_count(device)));
  const double flops = 4.0 * n_head * head_dim * double(seq_len) * (seq_len + 1) / 2;
  nlohmann::json out{
      {"seq_len", seq_len}, {"n_head", n_head}, {"n_head_kv", n_head_kv}, {"head_dim", head_dim}};
  // The tensor-core kernel over kPrefillTcRows-query tiles, the tiles with the most keys first
  // (as the backend orders them): the default, then every tile-shape variant.
  if (prefill_tc_supported(head_dim, KvElem::kBF16)) {
    std::vector<int32_t> tiles;
    for (int q = (seq_len - 1) / kPrefillTcRows * kPrefillTcRows; q >= 0; q -= kPrefillTcRows) {
      tiles.push_back(q);
      tiles.push_back(std::min(kPrefillTcRows, seq_len - q));
    }
    DeviceMem d_tiles;
    SGL_RETURN_IF_ERROR(alloc(&d_tiles, tiles.size() * 4));
    SGL_MB_OK(cudaMemcpy(d_tiles.p, tiles.data(), tiles.size() * 4, cudaMemcpyHostToDevice));
    const int n_tiles = static_cast<int>(tiles.size() / 2);
    nlohmann::json variants = nlohmann::json::object();
    for (const PrefillTcVariant v : kPrefillTcVariants) {
      if (!prefill_tc_variant_available(v)) continue;
      SGL_ASSIGN_OR_RETURN(
          const double ms,
          time_ms(
              [&]() -> Status {
                if (!launch_attention_prefill_tc_variant(
                        s.a, static_cast<const int32_t*>(d_tiles.p), n_tiles, v, nullptr))
                  return internal_error("tensor-core prefill kernel not launched");
                return Status::ok();
              },
              3, 20));
      if (v == PrefillTcVariant::kDefault) {
        out["tc_ms"] = ms;
        out["tc_tflop_per_s"] = flops / ms / 1e9;
      }
      variants[prefill_tc_variant_name(v)] = flops / ms / 1e9;
    }
    out["tc_variants_tflop_per_s"] = variants;
  }
  // The general split-sequence kernel on the same problem, and its CUDA-core variant.
  SGL_ASSIGN_OR_RETURN(const double ms, time_ms(
                                            [&] {
                                              launch_attention(s.a, nullptr);
                                              return Status::ok();
                                            },
                                            1, 3));
  out["simple_ms"] = ms;
  out["simple_tflop_per_s"] = flops / ms / 1e9;
  SGL_ASSIGN_OR_RETURN(const double cc_ms, time_ms(
                                               [&] {
                                                 launch_attention_simple(s.a, nullptr);
                                                 return Status::ok();
                                               },
                                               1, 3));
  out["cuda_core_ms"] = cc_ms;
  return out;
}

}  // namespace sgl::backend::cuda
