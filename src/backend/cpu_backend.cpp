#include "backend/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

#include "grammar/grammar.h"
#include "model/quant.h"
#include "runtime/sampler.h"

namespace sgl::backend {

namespace {

using model::GgmlType;

Result<cpu::WeightView> matrix_view(const models::WeightRef& w) {
  if (!cpu::matmul_supported(w.type))
    return unsupported("model: tensor '" + w.name + "' has type " +
                       std::string(model::ggml_type_name(w.type)) + ", which the CPU backend "
                       "cannot multiply");
  cpu::WeightView v;
  v.type = w.type;
  v.n_in = w.cols();
  v.n_out = w.rows();
  v.data = w.data;
  v.row_stride = w.row_bytes();
  return v;
}

// A small vector tensor (norm weight, bias, rope factors) converted to f32.
Result<std::vector<float>> vector_f32(const models::WeightRef& w) {
  if (!w.present()) return std::vector<float>{};
  std::vector<float> out(static_cast<size_t>(w.cols() * w.rows()));
  switch (w.type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
      model::dequantize_row(w.type, w.data, out.data(), static_cast<int64_t>(out.size()));
      return out;
    default:
      return unsupported("model: tensor '" + w.name + "' must be f32, f16 or bf16, got " +
                         std::string(model::ggml_type_name(w.type)));
  }
}

// Llama-3 RoPE frequency scaling expressed as per-pair divisors of the base frequencies.
std::vector<float> llama3_freq_factors(const model::ModelConfig& c) {
  const auto& s = c.rope_scaling;
  const int half = static_cast<int>(c.rope_dim / 2);
  std::vector<float> f(half, 1.0f);
  const double orig = s.original_context_length ? s.original_context_length : 8192;
  const double low_wavelen = orig / s.low_freq_factor;
  const double high_wavelen = orig / s.high_freq_factor;
  for (int i = 0; i < half; ++i) {
    const double inv_freq = std::pow(static_cast<double>(c.rope_freq_base), -2.0 * i / c.rope_dim);
    const double wavelen = 2 * std::numbers::pi / inv_freq;
    double scaled;
    if (wavelen < high_wavelen) {
      scaled = inv_freq;
    } else if (wavelen > low_wavelen) {
      scaled = inv_freq / s.factor;
    } else {
      const double smooth =
          (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      scaled = (1 - smooth) * inv_freq / s.factor + smooth * inv_freq;
    }
    f[i] = static_cast<float>(inv_freq / scaled);
  }
  return f;
}

// Drops this process's pages of [data, data + bytes) of a read-only file mapping (whole pages
// only). Harmless for later reads: they fault the pages back in from the file.
void release_pages(const void* data, uint64_t bytes) {
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return;
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t lo = (begin + page - 1) / page * page;
  const uintptr_t hi = (begin + bytes) / page * page;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

size_t kv_elem_size(GgmlType t) { return t == GgmlType::kF32 ? 4 : 2; }

void* aligned_zeroed(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p) std::memset(p, 0, bytes);
  return p;
}

}  // namespace

CpuBackend::CpuBackend(const model::ModelConfig& config, int n_threads)
    : config_(config), pool_(n_threads) {}

CpuBackend::~CpuBackend() {
  for (auto* p : k_cache_) std::free(p);
  for (auto* p : v_cache_) std::free(p);
}

Result<std::unique_ptr<CpuBackend>> CpuBackend::create(const models::LoadedModel& model,
                                                       const CpuBackendOptions& options) {
  if (options.n_threads < 0) return invalid_argument("threads must be >= 0");
  std::unique_ptr<CpuBackend> b(new CpuBackend(model.config, options.n_threads));
  SGL_RETURN_IF_ERROR(b->init(model, options));
  return b;
}

Status CpuBackend::init(const models::LoadedModel& model, const CpuBackendOptions& options) {
  const auto& c = config_;
  SGL_ASSIGN_OR_RETURN(models::LlamaWeights w, models::load_llama_weights(c, *model.weights));
  // Repacked matrices replace the file's bytes: once a tensor is packed, its pages of a mapped
  // GGUF are dropped from this process (they are clean file pages; a later read, e.g. an
  // embedding row of a tied LM head, maps them back in from the page cache).
  const bool mapped = model.format == models::ModelFormat::kGguf && model.gguf != nullptr &&
                      model.gguf->path() != "<buffer>";
  auto pack = [&](const models::WeightRef& ref, cpu::PackedWeights* out) -> Status {
    SGL_ASSIGN_OR_RETURN(const cpu::WeightView v, matrix_view(ref));
    *out = cpu::PackedWeights(v);
    if (out->packed() && mapped) release_pages(ref.data, ref.n_bytes);
    return Status::ok();
  };
  SGL_ASSIGN_OR_RETURN(tok_embd_, matrix_view(w.tok_embd));
  SGL_RETURN_IF_ERROR(pack(w.output, &output_));
  SGL_ASSIGN_OR_RETURN(output_norm_, vector_f32(w.output_norm));
  layers_.resize(c.n_layer);
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    const auto& lw = w.layers[i];
    Layer& l = layers_[i];
    SGL_RETURN_IF_ERROR(pack(lw.wq, &l.wq));
    SGL_RETURN_IF_ERROR(pack(lw.wk, &l.wk));
    SGL_RETURN_IF_ERROR(pack(lw.wv, &l.wv));
    SGL_RETURN_IF_ERROR(pack(lw.wo, &l.wo));
    SGL_RETURN_IF_ERROR(pack(lw.w_gate, &l.w_gate));
    SGL_RETURN_IF_ERROR(pack(lw.w_up, &l.w_up));
    SGL_RETURN_IF_ERROR(pack(lw.w_down, &l.w_down));
    SGL_ASSIGN_OR_RETURN(l.attn_norm, vector_f32(lw.attn_norm));
    SGL_ASSIGN_OR_RETURN(l.ffn_norm, vector_f32(lw.ffn_norm));
    SGL_ASSIGN_OR_RETURN(l.bq, vector_f32(lw.bq));
    SGL_ASSIGN_OR_RETURN(l.bk, vector_f32(lw.bk));
    SGL_ASSIGN_OR_RETURN(l.bv, vector_f32(lw.bv));
  }

  // RoPE.
  rope_.layout = c.rope_type == model::RopeType::kNeox ? cpu::RopeLayout::kNeox
                                                       : cpu::RopeLayout::kNorm;
  rope_.head_dim = static_cast<int>(c.head_dim);
  rope_.rope_dim = static_cast<int>(c.rope_dim ? c.rope_dim : c.head_dim);
  rope_.freq_base = c.rope_freq_base;
  switch (c.rope_scaling.type) {
    case model::RopeScalingType::kNone:
      break;
    case model::RopeScalingType::kLinear:
      rope_.freq_scale = 1.0f / c.rope_scaling.factor;
      break;
    case model::RopeScalingType::kLlama3:
      freq_factors_ = llama3_freq_factors(c);
      break;
    case model::RopeScalingType::kYarn:
      return unsupported("model: YaRN RoPE scaling is not supported by the CPU backend");
  }
  if (w.rope_freqs.present()) {
    SGL_ASSIGN_OR_RETURN(freq_factors_, vector_f32(w.rope_freqs));
  }
  rope_.freq_factors = freq_factors_.empty() ? nullptr : freq_factors_.data();

  // KV pool.
  if (kv_dtype_is_fp8(options.kv_dtype))
    return unsupported("the CPU backend has no fp8 KV cache (--kv-cache-dtype " +
                       std::string(kv_dtype_name(options.kv_dtype)) +
                       "); use f16, bf16 or f32, or --device cuda");
  kv_dtype_ = options.kv_dtype;
  kv_type_ = kv_dtype_ == KvDtype::kF32    ? GgmlType::kF32
             : kv_dtype_ == KvDtype::kBF16 ? GgmlType::kBF16
                                           : GgmlType::kF16;
  kv_capacity_ = options.kv_capacity > 0
                     ? options.kv_capacity
                     : std::min<int64_t>(c.context_length, CpuBackendOptions::kDefaultMaxKvTokens);
  if (kv_capacity_ <= 0 || kv_capacity_ > (int64_t{1} << 31) - 1)
    return invalid_argument("KV pool size must be in [1, 2^31) tokens");
  kv_row_bytes_ = static_cast<size_t>(c.n_head_kv) * c.head_dim * kv_elem_size(kv_type_);
  const size_t layer_bytes = kv_row_bytes_ * static_cast<size_t>(kv_capacity_);
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    void* k = aligned_zeroed(layer_bytes);
    void* v = aligned_zeroed(layer_bytes);
    if (!k || !v) {
      std::free(k);
      std::free(v);
      return Status(StatusCode::kResourceExhausted,
                    "cannot allocate the KV pool (" + std::to_string(kv_capacity_) +
                        " tokens); lower --max-total-tokens");
    }
    k_cache_.push_back(static_cast<uint8_t*>(k));
    v_cache_.push_back(static_cast<uint8_t*>(v));
  }
  return Status::ok();
}

size_t CpuBackend::kv_bytes() const {
  return 2 * kv_row_bytes_ * static_cast<size_t>(kv_capacity_) * config_.n_layer;
}

void CpuBackend::ensure_scratch(int n) {
  if (n <= scratch_tokens_) return;
  const auto& c = config_;
  const size_t N = static_cast<size_t>(n);
  const size_t q_dim = static_cast<size_t>(c.n_head) * c.head_dim;
  const size_t kv_dim = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  x_.resize(N * c.n_embd);
  h_.resize(N * c.n_embd);
  q_.resize(N * q_dim);
  k_.resize(N * kv_dim);
  v_.resize(N * kv_dim);
  attn_.resize(N * q_dim);
  gate_.resize(N * c.n_ff);
  up_.resize(N * c.n_ff);
  cos_sin_.resize(N * static_cast<size_t>(rope_.rope_dim));
  scratch_tokens_ = n;
}

// Attention for every sequence of the batch at one layer. Work items are (sequence, KV head,
// block of queries); each runs attention_range on one thread with its own scratch, so the result
// of a query does not depend on how items were distributed.
void CpuBackend::attention_layer(const ForwardBatch& batch, int layer) {
  const auto& c = config_;
  constexpr int kQueryBlock = 16;
  std::vector<AttnItem>& items = attn_items_;
  if (layer == 0) {  // the work list depends on the batch only: build it once per forward
    items.clear();
    for (int s = 0; s < static_cast<int>(batch.seqs.size()); ++s) {
      const SequenceView& sv = batch.seqs[s];
      for (int qb = 0; qb < sv.n_new; qb += kQueryBlock)
        for (int h = 0; h < static_cast<int>(c.n_head_kv); ++h)
          items.push_back({s, h, qb, std::min(sv.n_new, qb + kQueryBlock)});
    }
  }
  const size_t q_dim = static_cast<size_t>(c.n_head) * c.head_dim;
  auto params_for = [&](int s) {
    const SequenceView& sv = batch.seqs[s];
    cpu::AttentionParams p;
    p.q = q_.data() + static_cast<size_t>(sv.token_begin) * q_dim;
    p.positions = batch.positions.data() + sv.token_begin;
    p.n_tokens = sv.n_new;
    p.n_head = static_cast<int>(c.n_head);
    p.n_head_kv = static_cast<int>(c.n_head_kv);
    p.head_dim = static_cast<int>(c.head_dim);
    p.k_cache = k_cache_[layer];
    p.v_cache = v_cache_[layer];
    p.kv_type = kv_type_;
    p.slots = sv.slots;
    p.n_kv = sv.n_past + sv.n_new;
    p.out = attn_.data() + static_cast<size_t>(sv.token_begin) * q_dim;
    return p;
  };
  if (layer == 0) {  // the scratch size depends on the batch, not on the layer
    size_t need = 0;
    for (int s = 0; s < static_cast<int>(batch.seqs.size()); ++s)
      need = std::max(need, cpu::attention_scratch_size(params_for(s)));
    need = (need + 15) / 16 * 16;
    if (need > attn_scratch_floats_) {
      attn_scratch_floats_ = need;
      attn_scratch_.assign(attn_scratch_floats_ * pool_.n_threads(), 0.0f);
    }
  }
  pool_.parallel_for(static_cast<int>(items.size()), [&](int i, int thread) {
    const AttnItem& it = items[i];
    cpu::AttentionParams p = params_for(it.seq);
    cpu::attention_range(p, it.kv_head, it.q_begin, it.q_end,
                         attn_scratch_.data() + attn_scratch_floats_ * thread);
  });
}

Status CpuBackend::forward(const ForwardBatch& batch, Logits* logits) {
  const auto& c = config_;
  SGL_RETURN_IF_ERROR(batch.validate(kv_capacity_, static_cast<int32_t>(c.n_vocab)));
  const int n = batch.n_tokens();
  logits->n_rows = static_cast<int32_t>(batch.logit_rows.size());
  logits->n_vocab = static_cast<int32_t>(c.n_vocab);
  logits->data.resize(static_cast<size_t>(logits->n_rows) * c.n_vocab);
  if (n == 0) return Status::ok();
  ensure_scratch(n);

  const int64_t E = c.n_embd;
  const int64_t q_dim = static_cast<int64_t>(c.n_head) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  const int64_t F = c.n_ff;
  float* x = x_.data();
  float* h = h_.data();

  for (int t = 0; t < n; ++t) cpu::embedding_lookup(tok_embd_, batch.tokens[t], x + t * E);
  cpu::rope_table(rope_, batch.positions.data(), n, cos_sin_.data());

  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const Layer& L = layers_[il];
    // Attention block.
    cpu::rms_norm(x, L.attn_norm.data(), h, n, E, c.rms_eps);
    const cpu::MatmulOutput qkv[3] = {
        {L.wq.view(), q_.data(), 0}, {L.wk.view(), k_.data(), 0}, {L.wv.view(), v_.data(), 0}};
    cpu::matmul_multi(qkv, h, 0, n, &pool_, &mm_ws_);
    if (!L.bq.empty()) {
      for (int t = 0; t < n; ++t) {
        cpu::add(q_.data() + t * q_dim, L.bq.data(), q_.data() + t * q_dim, q_dim);
        cpu::add(k_.data() + t * kv_dim, L.bk.data(), k_.data() + t * kv_dim, kv_dim);
        cpu::add(v_.data() + t * kv_dim, L.bv.data(), v_.data() + t * kv_dim, kv_dim);
      }
    }
    cpu::rope_apply(rope_, cos_sin_.data(), q_.data(), n, static_cast<int>(c.n_head));
    cpu::rope_apply(rope_, cos_sin_.data(), k_.data(), n, static_cast<int>(c.n_head_kv));
    cpu::store_kv(kv_type_, k_cache_[il], v_cache_[il], kv_dim, k_.data(), v_.data(),
                  batch.out_slots.data(), n);
    attention_layer(batch, static_cast<int>(il));
    cpu::matmul(L.wo.view(), attn_.data(), h, n, &pool_, &mm_ws_);
    cpu::add(x, h, x, n * E);

    // MLP block.
    cpu::rms_norm(x, L.ffn_norm.data(), h, n, E, c.rms_eps);
    const cpu::MatmulOutput gu[2] = {{L.w_gate.view(), gate_.data(), 0},
                                     {L.w_up.view(), up_.data(), 0}};
    cpu::matmul_multi(gu, h, 0, n, &pool_, &mm_ws_);
    cpu::silu_mul(gate_.data(), up_.data(), gate_.data(), n * F);
    cpu::matmul(L.w_down.view(), gate_.data(), h, n, &pool_, &mm_ws_);
    cpu::add(x, h, x, n * E);
  }

  // LM head for the requested rows only.
  const int n_out = logits->n_rows;
  if (n_out == 0) return Status::ok();
  head_x_.resize(static_cast<size_t>(n_out) * E);
  for (int i = 0; i < n_out; ++i)
    std::memcpy(head_x_.data() + i * E, x + static_cast<int64_t>(batch.logit_rows[i]) * E,
                E * sizeof(float));
  cpu::rms_norm(head_x_.data(), output_norm_.data(), head_x_.data(), n_out, E, c.rms_eps);
  cpu::matmul(output_.view(), head_x_.data(), logits->data.data(), n_out, &pool_, &mm_ws_);
  return Status::ok();
}

Status CpuBackend::forward_sample(const ForwardBatch& batch, std::span<const SampleRow> rows,
                                  std::vector<int32_t>* tokens) {
  if (rows.size() != batch.logit_rows.size())
    return invalid_argument("forward_sample: " + std::to_string(rows.size()) +
                            " sampling rows for " + std::to_string(batch.logit_rows.size()) +
                            " logit rows");
  for (const SampleRow& r : rows)
    if (!(r.u >= 0.0 && r.u < 1.0))
      return invalid_argument("forward_sample: u must be in [0, 1), got " + std::to_string(r.u));
  SGL_RETURN_IF_ERROR(forward(batch, &sample_logits_));
  const int32_t n_vocab = static_cast<int32_t>(config_.n_vocab);
  tokens->assign(rows.size(), 0);
  std::vector<std::pair<float, int32_t>> scratch;
  for (size_t i = 0; i < rows.size(); ++i) {
    const SampleRow& r = rows[i];
    std::span<float> lg(sample_logits_.row(static_cast<int32_t>(i)), static_cast<size_t>(n_vocab));
    if (r.vocab_limit > 0 && r.vocab_limit < n_vocab)
      std::fill(lg.begin() + r.vocab_limit, lg.end(), -INFINITY);
    if (r.mask != nullptr)
      grammar::apply_mask(lg, std::span<const uint32_t>(r.mask, static_cast<size_t>(
                                                                    std::max(r.mask_words, 0))));
    runtime::SamplingParams sp;
    sp.temperature = r.temperature;
    sp.top_k = r.top_k;
    sp.top_p = r.top_p;
    sp.min_p = r.min_p;
    (*tokens)[i] = runtime::Sampler::sample_u(lg, sp, r.u, scratch);
  }
  return Status::ok();
}

}  // namespace sgl::backend
