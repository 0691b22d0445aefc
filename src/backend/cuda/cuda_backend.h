// The CUDA backend: runs the Llama family on one NVIDIA GPU with bf16 (or, with dtype float16, f16)
// weights in device memory, bf16 (f16) GEMMs through cuBLASLt (f32 accumulation), the backend's own
// kernels for everything else (kernels.h), and a token-granular KV pool
// [layer][slot][kv_head][head_dim] in bf16 or f16 in device memory, sized by mem_fraction_static
// unless kv_capacity is given.
//
// Weights come from the model's WeightSource (safetensors F32/F16/BF16; GGUF F16/BF16/F32 and
// every quantized type model::dequantize_row handles, dequantized at load) or, for benchmarks, are
// generated on the device from a config alone (create_dummy).
//
// Per layer: RMSNorm -> fused QKV GEMM (f32 out) -> bias + RoPE + K/V store (one kernel) ->
// attention (bf16 out) -> O GEMM -> fused residual add + RMSNorm -> fused gate|up GEMM -> SiLU*up
// -> down GEMM -> fused residual add (+ next layer's norm). Logits: the requested rows are gathered
// and normed, then the LM head GEMM runs on those rows only. GEMMs of up to 8 rows may run on the
// backend's own GEMV (gemv.cu), gate|up then with SiLU*up fused; decode-only batches replay CUDA
// graphs captured per padded batch size (forward_graph).
//
// Unlike the CPU backend, results are not batch invariant: cuBLASLt may pick a different kernel
// for a different number of rows.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "models/loader.h"
#include "support/status.h"

namespace sgl::backend::cuda {
class Gemm;
enum class KvElem;
enum class WeightElem;
}  // namespace sgl::backend::cuda

namespace sgl::backend {

// Where decode steps use the fused GEMVs (kernels.h: the RMSNorm computed in the consuming
// GEMV's prologue, the residual add in the O and down GEMVs' epilogues, bias + RoPE + the K/V
// store in the QKV GEMV's epilogue): steps of up to kGemvMaxRows tokens on one GPU (tp_size 1).
// kAuto: where the GEMV won the planning of every projection shape of that row count; kAlways:
// wherever the kernels apply (tests); kOff: never.
enum class FusedDecode { kOff, kAuto, kAlways };

struct CudaBackendOptions {
  int device = 0;
  // Weight matrices (embeddings and LM head included) and the GEMM input activations: kBF16 =
  // bf16, kF16 = f16 (every weight converted with round-to-nearest; a weight beyond +-65504 fails
  // the load with its tensor's name); kAuto = kF16 where every weight matrix of the checkpoint is
  // f16, kBF16 otherwise (and for dummy weights); kF32 is refused. Norm weights and biases
  // stay f32, Q / the attention output bf16, the KV pool kv_dtype.
  WeightDtype dtype = WeightDtype::kAuto;
  KvDtype kv_dtype = KvDtype::kBF16;  // bf16, f16, fp8_e4m3 or fp8_e5m2 (f32 is refused)
  int64_t kv_capacity = 0;            // KV pool size in tokens; 0 = from mem_fraction_static
  // Fraction of the GPU's memory for weights + KV pool (the rest: activations, cuBLASLt, the
  // CUDA context). Used only when kv_capacity is 0.
  double mem_fraction_static = 0.85;
  bool progress = true;  // print loading progress to stderr
  // Prefill chunks of 32+ tokens on the tensor-core attention kernel (head_dim 64/128, bf16 or
  // fp8 KV: fp8 rows are converted to a bf16 scratch first);
  // the environment variable SGL_CUDA_PREFILL_TC=0 also turns it off.
  bool prefill_tc = true;
  // Decode-only batches replay CUDA graphs (captured lazily per padded batch size); the
  // environment variable SGL_CUDA_GRAPHS=0 also turns them off.
  bool cuda_graphs = true;
  // The environment variable SGL_CUDA_FUSED=0 also turns them off (=2: kAlways).
  FusedDecode fused_decode = FusedDecode::kAuto;
  // Tensor parallelism (set by TpCudaBackend, tp_backend.h): this backend holds rank tp_rank's
  // shard of tp_size: n_head / tp_size query heads and n_head_kv / tp_size KV heads (its rows of
  // Q|K|V and bias, its columns of O), n_ff / tp_size rows of gate and of up (its columns of
  // down); embeddings, norms and the LM head whole. The O and down GEMMs then give partial sums,
  // which `all_reduce` must sum over the ranks (in place, `count` f32 values, enqueued on the
  // given cudaStream_t) before the residual add. Every rank must run the same forward calls.
  int tp_rank = 0;
  int tp_size = 1;
  std::function<Status(float* data, size_t count, void* stream)> all_reduce;
};

class CudaBackend final : public Backend {
 public:
  // Copies (and converts to bf16 or f16, options.dtype) every weight of `model` to the GPU. The
  // model may be released afterwards.
  static Result<std::unique_ptr<CudaBackend>> create(const models::LoadedModel& model,
                                                     const CudaBackendOptions& options);
  // Random weights of the shape `config` describes (matrices uniform in +-1/sqrt(n_in), norms
  // 1), generated on the device from `seed`: for benchmarks of real model shapes.
  static Result<std::unique_ptr<CudaBackend>> create_dummy(const model::ModelConfig& config,
                                                           const CudaBackendOptions& options,
                                                           uint64_t seed = 1);
  ~CudaBackend() override;

  std::string_view name() const override { return "cuda"; }
  // The model's config (also under tensor parallelism, where this backend holds a shard).
  const model::ModelConfig& config() const override { return full_config_; }
  int64_t kv_capacity() const override { return kv_capacity_; }
  Status forward(const ForwardBatch& batch, Logits* logits) override;
  // The same forward pass, but returns only the greedy token (argmax, computed on the GPU) of
  // each logit row: no logits are copied to the host.
  Status forward_greedy(const ForwardBatch& batch, std::vector<int32_t>* tokens);
  // The forward pass with no output (the K/V writes only): what the ranks other than 0 of a
  // tensor-parallel backend run, so that their all-reduces meet rank 0's.
  Status forward_no_output(const ForwardBatch& batch);
  // forward_sample's checks of `rows` against `batch` (done before any GPU work, so that
  // tensor-parallel ranks fail together, before any collective).
  static Status check_sample_rows(const ForwardBatch& batch, std::span<const SampleRow> rows);

  // Bytes of weights on the device, and of the KV pool.
  size_t weight_bytes() const { return weight_bytes_; }
  size_t kv_bytes() const;
  std::string device_name() const { return device_name_; }
  // The weights' element type on the device (bfloat16 or float16; never auto).
  WeightDtype weight_dtype() const { return weight_dtype_; }
  // Forward passes enqueued on the fused decode path so far (a replayed graph counts once, when
  // captured).
  int64_t fused_decode_steps() const { return fused_steps_; }

 private:
  cuda::KvElem kv_elem() const;  // the kernels' name for kv_dtype_
  explicit CudaBackend(const model::ModelConfig& config);
  // Checks the tensor-parallel split and narrows config_ to this rank's shard.
  Status init_shard(const CudaBackendOptions& options);
  Status init_device(const CudaBackendOptions& options);
  Status alloc_weights();
  Status load_weights(const models::LoadedModel& model);
  Status fill_dummy(uint64_t seed);
  Status init_rope(const std::vector<double>& file_factors);
  Status init_kv(const CudaBackendOptions& options);
  // Device addresses of one step's batch description (layouts: prepare_eager, forward_graph).
  struct StepInputs {
    const int32_t *tokens = nullptr, *pos = nullptr, *out_slots = nullptr, *token_seq = nullptr,
                  *token_skip = nullptr, *seq_begin = nullptr, *rows = nullptr, *tiles = nullptr,
                  *slots = nullptr;
    int32_t* argmax = nullptr;  // [n_out] argmax output
    int n = 0, n_out = 0, n_tiles = 0, max_kv = 0;
    // fp8 KV with prefill tiles: the tiles' sequences' rows in bf16 (AttentionArgs::bf16_*).
    const int32_t *deq_seq_begin = nullptr, *deq_src = nullptr, *deq_slots = nullptr;
    int n_deq = 0;
    int attn_splits = 0;  // > 0: AttentionArgs::fixed_splits (graphs)
  };
  // Grows the activation scratch; drops the captured graphs when any block moved.
  Status ensure_scratch(int n_tokens, int n_logits, int max_kv, size_t meta_elems,
                        int attn_splits = 0);
  Status ensure_pinned(size_t elems);
  // The eager path: uploads the batch description into meta_.
  Status prepare_eager(const ForwardBatch& batch, StepInputs* in);
  Status enqueue_layers(const StepInputs& in);
  // Whether a step of n tokens runs the fused decode GEMVs (plans the GEMM shapes it compares).
  Result<bool> use_fused(int n);
  Status enqueue_head(const StepInputs& in);
  // Decode-only batches (one new token and one logits row per sequence, rows in order) of up to
  // 256 sequences replay a CUDA graph captured per padded batch size.
  bool graph_eligible(const ForwardBatch& batch) const;
  Status forward_graph(const ForwardBatch& batch);
  void drop_graphs();
  // The layers and the LM head, asynchronously on stream_: leaves the f32 logits of
  // batch.logit_rows in logits_ ([n_logits, n_vocab], row i = logit_rows[i]; a decode batch run
  // as a graph may leave padding rows after them). The caller synchronizes.
  Status forward_device(const ForwardBatch& batch);

  template <typename T>
  Status dev_alloc(T** p, size_t count, const char* what);

  // The kernels' name for weight_dtype_.
  cuda::WeightElem welem() const;

  struct Layer {
    uint16_t* wqkv = nullptr;    // [(n_head + 2 n_head_kv) * head_dim, n_embd] bf16 or f16
    float* bqkv = nullptr;       // [(n_head + 2 n_head_kv) * head_dim] or null
    uint16_t* wo = nullptr;      // [n_embd, n_head * head_dim]
    uint16_t* wgu = nullptr;     // [2 n_ff, n_embd]: gate rows, then up rows
    uint16_t* wdown = nullptr;   // [n_embd, n_ff]
    float* attn_norm = nullptr;  // [n_embd]
    float* ffn_norm = nullptr;   // [n_embd]
  };

  // config_: the shapes this backend computes (under tensor parallelism n_head, n_head_kv and
  // n_ff are this rank's shares); full_config_: the model's.
  model::ModelConfig config_;
  model::ModelConfig full_config_;
  int tp_rank_ = 0, tp_size_ = 1;
  std::function<Status(float*, size_t, void*)> all_reduce_;
  int device_ = -1;
  bool progress_ = true;
  int n_sm_ = 0;
  std::string device_name_;
  void* stream_ = nullptr;  // cudaStream_t
  std::unique_ptr<cuda::Gemm> gemm_;
  std::vector<void*> allocations_;  // every cudaMalloc'd block, freed in the destructor
  size_t weight_bytes_ = 0;
  WeightDtype weight_dtype_ = WeightDtype::kBF16;  // kBF16 or kF16

  uint16_t* tok_embd_ = nullptr;  // [n_vocab, n_embd]
  uint16_t* output_ = nullptr;    // [n_vocab, n_embd] (== tok_embd_ when tied)
  float* output_norm_ = nullptr;
  std::vector<Layer> layers_;
  double* inv_freq_ = nullptr;  // [rope_dim / 2]
  int rope_dim_ = 0;

  KvDtype kv_dtype_ = KvDtype::kBF16;
  uint16_t *deq_k_ = nullptr, *deq_v_ = nullptr;  // fp8 KV: bf16 rows for the prefill kernel
  size_t cap_deq_k_ = 0, cap_deq_v_ = 0;          // bytes
  bool use_tc_ = false;                           // tensor-core prefill attention
  std::vector<std::array<int32_t, 3>> tc_tiles_;  // per forward: (keys, first token, rows)
  int64_t kv_capacity_ = 0;
  size_t kv_row_elems_ = 0;  // n_head_kv * head_dim
  std::vector<void*> k_cache_, v_cache_;

  // Per-forward scratch (device), grown to the largest batch seen.
  size_t cap_x_ = 0, cap_f_ = 0, cap_h_ = 0, cap_q_ = 0, cap_cs_ = 0, cap_meta_ = 0;
  size_t cap_head_x_ = 0, cap_logits_ = 0, cap_ws_ = 0;  // bytes
  float* x_ = nullptr;                                   // [n, n_embd] residual stream
  float* f_ = nullptr;       // [n, max(qkv width, 2 n_ff, n_embd)] GEMM outputs
  uint16_t* h_ = nullptr;    // [n, max(n_embd, n_ff, q_dim)] GEMM inputs (weight type)
  uint16_t* q_ = nullptr;    // [n, q_dim] bf16
  // [min(n, kGemvMaxRows), n_ff] weight type: SiLU(gate) * up of the GEMV
  uint16_t* act_ = nullptr;
  size_t cap_act_ = 0;
  float* cos_sin_ = nullptr;  // [n, rope_dim]
  // tokens | positions | out_slots | token_seq | seq begins | logit rows | slots | argmax out
  int32_t* meta_ = nullptr;
  int32_t* argmax_ = nullptr;   // [n_logits], inside meta_
  uint16_t* head_x_ = nullptr;  // [n_logits, n_embd] weight type
  float* logits_ = nullptr;     // [n_logits, n_vocab]
  float* attn_ws_ = nullptr;
  void* argmax_ws_ = nullptr;  // launch_argmax_split's scratch (forward_greedy)
  size_t cap_argmax_ws_ = 0;
  int32_t* pinned_ = nullptr;  // host staging of meta (pinned)
  // Decode graphs: padded batch size -> cudaGraphExec_t; the sizes already run once eagerly (their
  // GEMMs planned); the fixed-address inputs (header + slot lists, see forward_graph).
  bool graphs_enabled_ = true;
  FusedDecode fused_decode_ = FusedDecode::kAuto;
  bool step_fused_ = false;  // the step being enqueued runs the fused GEMVs
  int64_t fused_steps_ = 0;
  std::map<int, void*> graphs_;
  std::set<int> graph_planned_;
  int32_t* gmeta_ = nullptr;
  size_t gmeta_cap_ = 0;  // int32 elements
  size_t pinned_elems_ = 0;

  // ---- Device sampling (cuda_sample.cpp, kernels in sampling.cu) ----
 public:
  bool supports_sampling() const override { return true; }
  // forward_device, then the sampling kernel on logits_ (overwritten); the rows' parameters and
  // grammar bitsets go up in one copy from pinned staging, only the tokens come back.
  Status forward_sample(const ForwardBatch& batch, std::span<const SampleRow> rows,
                        std::vector<int32_t>* tokens) override;
  // Asynchronous: launch_sample enqueues the uploads, the forward pass, the sampling kernel and
  // the copy of the tokens into pinned memory, records an event and returns; collect waits for
  // it. Future ids are resolved by a kernel over the uploaded token ids (launch_resolve_futures)
  // from the previous launch's device token buffer, before the embedding (outside the decode
  // graphs, whose token ids live at a fixed address). Two token buffers alternate between
  // launches; the pinned staging of the batch description and of the sampling parameters is
  // rewritten only after the previous launch's uploads have read it (staging_ready()).
  bool supports_async() const override { return true; }
  Result<uint64_t> launch_sample(const ForwardBatch& batch,
                                 std::span<const SampleRow> rows) override;
  Status collect(uint64_t ticket, std::vector<int32_t>* tokens) override;

 private:
  Result<uint64_t> launch(const ForwardBatch& batch, std::span<const SampleRow> rows,
                          bool allow_futures);
  // Waits until the last uploads from the pinned staging buffers have completed.
  Status staging_ready();
  // After a batch upload: marks the staging free once the copy is done, and resolves the future
  // ids among the n uploaded token ids (future_src_: the previous launch's tokens, or null).
  Status after_upload(int32_t* tokens_dev, const ForwardBatch& batch, int n);
  const int32_t* future_src_ = nullptr;  // set by launch() around forward_device
  void* staging_event_ = nullptr;        // cudaEvent_t, recorded after each batch upload
  struct SampleBuffers;  // staging and token buffers, grown on demand (cuda_sample.cpp)
  struct SampleBuffersDeleter {
    void operator()(SampleBuffers* b) const;  // frees its device and pinned memory
  };
  std::unique_ptr<SampleBuffers, SampleBuffersDeleter> sample_;
  // ---- end of device sampling ----
};

}  // namespace sgl::backend
