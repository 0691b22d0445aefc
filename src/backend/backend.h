// Backend: the contract every compute backend (CPU, CUDA) implements. A backend owns the model's
// weights in its own memory and the KV pool storage ([layer][slot][kv_head][head_dim]); the
// runtime owns which slots belong to which sequence (runtime/kv_pool) and builds ForwardBatches.
//
// Contract of forward():
// - REQUIRES: batch.validate(kv_capacity(), config().n_vocab) is ok (backends check it too and
//   return its error), and every slot in a sequence's first n_past entries was written by an
//   earlier forward() with the same token at the same position.
// - Writes K/V of every new token into its out slot, then returns logits for batch.logit_rows.
// - Batch invariance (CPU backend): a sequence's logits are bit-identical whatever else is in the
//   batch and however its prompt was split into chunks.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "backend/forward_batch.h"
#include "model/model_config.h"
#include "support/status.h"

namespace sgl::backend {

// KV cache element type. The fp8 kinds (SGLang's --kv-cache-dtype fp8_e4m3 / fp8_e5m2) store
// K and V with scale 1.0: round to nearest even, saturating to +-448 (e4m3) / +-57344 (e5m2).
// Only the CUDA backend has them; the CPU backend refuses them.
enum class KvDtype { kF16, kBF16, kF32, kFp8E4M3, kFp8E5M2 };
std::string_view kv_dtype_name(KvDtype t);
// "f16"/"fp16"/"auto", "bf16", "f32"/"fp32", "fp8_e4m3", "fp8_e5m2".
Result<KvDtype> parse_kv_dtype(std::string_view name);
// Bytes per stored K or V element.
int kv_dtype_bytes(KvDtype t);
inline bool kv_dtype_is_fp8(KvDtype t) { return t == KvDtype::kFp8E4M3 || t == KvDtype::kFp8E5M2; }

// Element type of the weights on the device (SGLang's --dtype). kAuto: the backend's default (CUDA:
// bf16, whatever the checkpoint holds). kF16 keeps f16 checkpoints exact (bf16 drops 3 mantissa
// bits) and needs every weight within +-65504. kF32 is parsed so that backends can refuse it with
// their reason (CUDA: no f32 GEMM path). The CPU backend computes on the checkpoint's own types
// and refuses anything but kAuto.
enum class WeightDtype { kAuto, kBF16, kF16, kF32 };
std::string_view weight_dtype_name(WeightDtype t);  // "auto", "bfloat16", "float16", "float32"
// SGLang's names: "auto", "half" / "float16", "bfloat16", "float" / "float32"; also "f16", "fp16",
// "bf16", "f32", "fp32".
Result<WeightDtype> parse_weight_dtype(std::string_view name);

// One logits row to sample on the device (Backend::forward_sample), with the meaning of
// runtime::Sampler::sample: the same filters in the same order, and the draw that the host's
// RNG value `u` makes there (so a seeded request stays reproducible for given logits).
struct SampleRow {
  float temperature = 1.0f;  // < 1e-6: greedy (argmax, lowest id on ties); u is then unused
  int32_t top_k = -1;        // <= 0: all
  float top_p = 1.0f;        // (0, 1]
  float min_p = 0.0f;        // [0, 1]
  double u = 0.0;            // uniform in [0, 1), drawn on the host from the request's RNG
  // Grammar bitset (bit i = word i/32, bit i%32; as grammar::apply_mask): ids whose bit is clear
  // or that lie past mask_words * 32 are never sampled. Null: no mask. Read during the call only.
  const uint32_t* mask = nullptr;
  int32_t mask_words = 0;
  int32_t vocab_limit = 0;  // ids >= vocab_limit are never sampled; <= 0: the model's n_vocab
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual const model::ModelConfig& config() const = 0;
  // Number of token slots in the KV pool.
  virtual int64_t kv_capacity() const = 0;
  virtual Status forward(const ForwardBatch& batch, Logits* logits) = 0;

  // Optional: the same forward pass, then one token sampled per logit row on the device (rows[i]
  // for batch.logit_rows[i]), so no logits reach the host. Penalties, logit bias and logprobs
  // need the host path (forward + runtime::Sampler).
  virtual bool supports_sampling() const { return false; }
  virtual Status forward_sample(const ForwardBatch& batch, std::span<const SampleRow> rows,
                                std::vector<int32_t>* tokens);

  // The overlap scheduler's pair (runtime/engine.cpp): launch_sample enqueues what
  // forward_sample does and returns a ticket; collect(ticket) waits for that launch and returns
  // its tokens (one per logit row). Launches are collected in launch order, and at most
  // kMaxUncollected may be uncollected at a time.
  //
  // Future tokens: in a launch's batch.tokens, -(i + 1) stands for the token sampled for logit
  // row i of the previous launch, which need not be collected yet (so step n + 1 can be enqueued
  // before step n's tokens reach the host). Every launch runs after the previous one completes
  // its K/V writes (one in-order queue), so a batch may read any slot an earlier launch writes.
  //
  // The default implementation, for any backend that supports_sampling(), is synchronous:
  // launch_sample resolves the future tokens on the host and runs forward_sample at once.
  // supports_async() says whether launch_sample returns before the work is done (then it
  // reads nothing of `batch` or `rows` after returning).
  static constexpr int kMaxUncollected = 2;
  virtual bool supports_async() const { return false; }
  virtual Result<uint64_t> launch_sample(const ForwardBatch& batch,
                                         std::span<const SampleRow> rows);
  virtual Status collect(uint64_t ticket, std::vector<int32_t>* tokens);

 private:
  // The synchronous launch_sample's results, oldest first, and the last launch's tokens (what
  // the future ids of the next launch refer to).
  std::deque<std::vector<int32_t>> sync_results_;
  std::vector<int32_t> sync_last_;
  uint64_t sync_next_ticket_ = 1;
};

}  // namespace sgl::backend
