#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <string>

#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/sampling.h"
#include "model/quant.h"
#include "models/llama.h"
#include "support/fp16.h"

namespace sgl::backend {

namespace {

using model::GgmlType;

Status cuda_error(const std::string& what, cudaError_t e) {
  return internal_error("CUDA: " + what + ": " + cudaGetErrorString(e));
}

#define SGL_CUDA_OK(call, what)                           \
  do {                                                    \
    cudaError_t e_ = (call);                              \
    if (e_ != cudaSuccess) return cuda_error((what), e_); \
  } while (0)

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// Llama-3 RoPE frequency scaling as per-pair divisors of the base frequencies.
std::vector<double> llama3_factors(const model::ModelConfig& c, int rope_dim) {
  const auto& s = c.rope_scaling;
  std::vector<double> f(rope_dim / 2, 1.0);
  const double orig = s.original_context_length ? s.original_context_length : 8192;
  const double low_wavelen = orig / s.low_freq_factor;
  const double high_wavelen = orig / s.high_freq_factor;
  for (int i = 0; i < rope_dim / 2; ++i) {
    const double inv = std::pow(static_cast<double>(c.rope_freq_base), -2.0 * i / rope_dim);
    const double wavelen = 2 * std::numbers::pi / inv;
    double scaled = inv;
    if (wavelen > low_wavelen) {
      scaled = inv / s.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth =
          (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      scaled = (1 - smooth) * inv / s.factor + smooth * inv;
    }
    f[i] = inv / scaled;
  }
  return f;
}

}  // namespace

CudaBackend::CudaBackend(const model::ModelConfig& config)
    : config_(config), full_config_(config) {}

Status CudaBackend::init_shard(const CudaBackendOptions& o) {
  if (o.tp_size < 1 || o.tp_rank < 0 || o.tp_rank >= o.tp_size)
    return invalid_argument("CUDA: bad tensor-parallel rank " + std::to_string(o.tp_rank) + " of " +
                            std::to_string(o.tp_size));
  tp_rank_ = o.tp_rank;
  tp_size_ = o.tp_size;
  if (tp_size_ == 1) return Status::ok();
  if (!o.all_reduce) return invalid_argument("CUDA: tensor parallelism needs an all-reduce");
  all_reduce_ = o.all_reduce;
  const auto& f = full_config_;
  const uint32_t tp = static_cast<uint32_t>(tp_size_);
  if (f.n_head % tp != 0 || f.n_head_kv % tp != 0 || f.n_ff % tp != 0)
    return invalid_argument(
        "--tp-size " + std::to_string(tp) + " must divide the model's attention heads (" +
        std::to_string(f.n_head) + "), KV heads (" + std::to_string(f.n_head_kv) +
        ") and MLP width (" + std::to_string(f.n_ff) + ")");
  config_.n_head = f.n_head / tp;
  config_.n_head_kv = f.n_head_kv / tp;
  config_.n_ff = f.n_ff / tp;
  return Status::ok();
}

CudaBackend::~CudaBackend() {
  if (device_ >= 0) cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(as_stream(stream_));
  drop_graphs();
  if (gmeta_) cudaFree(gmeta_);
  gemm_.reset();
  for (void* p : allocations_) cudaFree(p);
  for (void* p :
       {static_cast<void*>(x_), static_cast<void*>(f_), static_cast<void*>(h_),
        static_cast<void*>(q_), static_cast<void*>(act_), static_cast<void*>(cos_sin_),
        static_cast<void*>(meta_), static_cast<void*>(head_x_), static_cast<void*>(logits_),
        static_cast<void*>(attn_ws_), static_cast<void*>(deq_k_), static_cast<void*>(deq_v_),
        argmax_ws_})
    if (p) cudaFree(p);
  if (pinned_) cudaFreeHost(pinned_);
  if (staging_event_) cudaEventDestroy(static_cast<cudaEvent_t>(staging_event_));
  if (stream_) cudaStreamDestroy(as_stream(stream_));
}

template <typename T>
Status CudaBackend::dev_alloc(T** p, size_t count, const char* what) {
  void* raw = nullptr;
  const size_t bytes = std::max<size_t>(count * sizeof(T), 16);
  if (cudaMalloc(&raw, bytes) != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return Status(StatusCode::kResourceExhausted,
                  std::string("CUDA: out of GPU memory allocating ") + what + " (" + gib(bytes) +
                      "; " + gib(free_b) + " free of " + gib(total_b) + ")");
  }
  allocations_.push_back(raw);
  *p = static_cast<T*>(raw);
  return Status::ok();
}

Status CudaBackend::init_device(const CudaBackendOptions& o) {
  const auto& c = config_;
  int n_dev = 0;
  const cudaError_t e = cudaGetDeviceCount(&n_dev);
  if (e != cudaSuccess || n_dev == 0) {
    cudaGetLastError();
    return unsupported("CUDA: no GPU available (" +
                       std::string(e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
  }
  if (o.device < 0 || o.device >= n_dev)
    return invalid_argument("CUDA: device " + std::to_string(o.device) + " does not exist (" +
                            std::to_string(n_dev) + " found)");
  device_ = o.device;
  SGL_CUDA_OK(cudaSetDevice(device_), "set device");
  cudaDeviceProp prop{};
  SGL_CUDA_OK(cudaGetDeviceProperties(&prop, device_), "device properties");
  n_sm_ = prop.multiProcessorCount;
  device_name_ = prop.name;
  cudaStream_t s = nullptr;
  SGL_CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream create");
  stream_ = s;
  if (o.dtype == WeightDtype::kF32)
    return unsupported(
        "CUDA backend: --dtype float32 is not supported (weights are bfloat16 or float16: use "
        "--dtype auto, bfloat16, half or float16)");
  weight_dtype_ = o.dtype == WeightDtype::kF16 ? WeightDtype::kF16 : WeightDtype::kBF16;
  SGL_ASSIGN_OR_RETURN(gemm_, cuda::Gemm::create(size_t{32} << 20, welem()));

  // What the kernels support.
  if (!cuda::attention_head_dim_supported(static_cast<int>(c.head_dim)))
    return unsupported("CUDA backend: head_dim " + std::to_string(c.head_dim) +
                       " is not supported (8, 16, 32, 64, 128 or 256)");
  if (c.n_embd % 8 != 0 || c.n_ff % 8 != 0)
    return unsupported("CUDA backend: n_embd and n_ff must be multiples of 8");
  if (c.sliding_window != 0)
    return unsupported("CUDA backend: sliding-window attention is not supported");
  if (c.rope_scaling.type == model::RopeScalingType::kYarn)
    return unsupported("CUDA backend: YaRN RoPE scaling is not supported");
  if (o.kv_dtype == KvDtype::kF32)
    return unsupported(
        "CUDA backend: the KV cache is bf16, f16, fp8_e4m3 or fp8_e5m2 (f32 is not supported)");
  kv_dtype_ = o.kv_dtype;
  const char* env = std::getenv("SGL_CUDA_PREFILL_TC");
  use_tc_ = o.prefill_tc && !(env != nullptr && std::string(env) == "0") &&
            cuda::prefill_tc_supported(static_cast<int>(c.head_dim), kv_elem());
  const char* genv = std::getenv("SGL_CUDA_GRAPHS");
  graphs_enabled_ = o.cuda_graphs && !(genv != nullptr && std::string(genv) == "0");
  const char* fenv = std::getenv("SGL_CUDA_FUSED");
  fused_decode_ = o.fused_decode;
  if (fenv != nullptr && std::string(fenv) == "0") fused_decode_ = FusedDecode::kOff;
  if (fenv != nullptr && std::string(fenv) == "2") fused_decode_ = FusedDecode::kAlways;
  if (o.mem_fraction_static <= 0.0 || o.mem_fraction_static > 1.0)
    return invalid_argument("--mem-fraction-static must be in (0, 1]");
  return Status::ok();
}

Status CudaBackend::alloc_weights() {
  const auto& c = config_;
  const size_t E = c.n_embd, F = c.n_ff, V = c.n_vocab;
  const size_t q_dim = static_cast<size_t>(c.n_head) * c.head_dim;
  const size_t kv_dim = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  const size_t qkv = q_dim + 2 * kv_dim;
  // Refuse early, with the numbers, when the weights cannot fit.
  size_t need = V * E * 2 * (c.tied_embeddings ? 1 : 2) +
                static_cast<size_t>(c.n_layer) * (qkv * E + E * q_dim + 2 * F * E + E * F) * 2;
  size_t free_b = 0, total_b = 0;
  SGL_CUDA_OK(cudaMemGetInfo(&free_b, &total_b), "memory info");
  if (need > free_b)
    return Status(StatusCode::kResourceExhausted,
                  "CUDA: the model's " + std::string(weight_dtype_name(weight_dtype_)) +
                      " weights need " + gib(need) + " of GPU memory but only " + gib(free_b) +
                      " of " + gib(total_b) + " are free");
  SGL_RETURN_IF_ERROR(dev_alloc(&tok_embd_, V * E, "token embeddings"));
  if (c.tied_embeddings) {
    output_ = tok_embd_;
  } else {
    SGL_RETURN_IF_ERROR(dev_alloc(&output_, V * E, "LM head"));
  }
  SGL_RETURN_IF_ERROR(dev_alloc(&output_norm_, E, "output norm"));
  layers_.resize(c.n_layer);
  for (auto& l : layers_) {
    SGL_RETURN_IF_ERROR(dev_alloc(&l.wqkv, qkv * E, "QKV weights"));
    if (c.attn_qkv_bias) SGL_RETURN_IF_ERROR(dev_alloc(&l.bqkv, qkv, "QKV bias"));
    SGL_RETURN_IF_ERROR(dev_alloc(&l.wo, E * q_dim, "attention output weights"));
    SGL_RETURN_IF_ERROR(dev_alloc(&l.wgu, 2 * F * E, "gate/up weights"));
    SGL_RETURN_IF_ERROR(dev_alloc(&l.wdown, E * F, "down weights"));
    SGL_RETURN_IF_ERROR(dev_alloc(&l.attn_norm, E, "attention norm"));
    SGL_RETURN_IF_ERROR(dev_alloc(&l.ffn_norm, E, "MLP norm"));
  }
  weight_bytes_ = need;
  return Status::ok();
}

namespace {

// The part of a weight matrix (rows = outputs, cols = inputs) a tensor-parallel rank holds:
// `parts` equal blocks of rows (or of columns), block `index`. parts == 1: all of it.
struct Shard {
  bool by_cols = false;
  int index = 0, parts = 1;
};

// Converts the shard's rows and columns of a weight (any dequantizable type) to bf16 or f16
// (round to nearest even) and copies them, dense, to `dst`, through a host staging buffer of a
// few MiB. f16 has no room above 65504: a weight that would round to infinity fails the load
// with its tensor's name rather than turning into inf (a bf16 checkpoint may hold such values;
// bf16 covers f32's range). NaN weights are copied as they are, in either type.
Status upload_matrix(const models::WeightRef& w, uint16_t* dst, bool f16, cudaStream_t stream,
                     std::vector<float>& f32, std::vector<uint16_t>& staging, Shard shard = {}) {
  if (!model::can_dequantize(w.type))
    return unsupported("model: tensor '" + w.name + "' has type " +
                       std::string(model::ggml_type_name(w.type)) +
                       ", which the CUDA backend cannot convert");
  const int64_t full_cols = w.cols();
  const int64_t cols = shard.by_cols ? full_cols / shard.parts : full_cols;
  const int64_t rows = shard.by_cols ? w.rows() : w.rows() / shard.parts;
  const int64_t row0 = shard.by_cols ? 0 : rows * shard.index;
  const int64_t col0 = shard.by_cols ? cols * shard.index : 0;
  const uint64_t rb = w.row_bytes();
  const int64_t chunk = std::max<int64_t>(1, (int64_t{4} << 20) / std::max<int64_t>(cols, 1));
  f32.resize(full_cols);
  staging.resize(static_cast<size_t>(std::min(chunk, rows)) * cols);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows - r0);
    // The previous chunk's copy must be done before the staging buffer is rewritten.
    SGL_CUDA_OK(cudaStreamSynchronize(stream), "upload");
    for (int64_t r = 0; r < nr; ++r) {
      // Quantized blocks span columns: the whole row is decoded, the shard's columns kept.
      model::dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + (row0 + r0 + r) * rb,
                            f32.data(), full_cols);
      uint16_t* out = staging.data() + r * cols;
      if (!f16) {
        for (int64_t i = 0; i < cols; ++i) out[i] = fp32_to_bf16(f32[col0 + i]);
        continue;
      }
      for (int64_t i = 0; i < cols; ++i) {
        const float v = f32[col0 + i];
        out[i] = fp32_to_fp16(v);
        // f16 +-inf (exponent all ones, mantissa 0) from a finite weight: out of range.
        if ((out[i] & 0x7fffu) == 0x7c00u && std::isfinite(v)) {
          char buf[64];
          std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(v));
          return invalid_argument("model: tensor '" + w.name + "' holds " + buf + " (row " +
                                  std::to_string(row0 + r0 + r) + "), beyond float16's range " +
                                  "(+-65504): load it with --dtype bfloat16 (or auto)");
        }
      }
    }
    SGL_CUDA_OK(cudaMemcpyAsync(dst + r0 * cols, staging.data(), nr * cols * sizeof(uint16_t),
                                cudaMemcpyHostToDevice, stream),
                "upload " + w.name);
  }
  return Status::ok();
}

// The whole vector, or block `shard.index` of `shard.parts` equal blocks.
Status upload_vector_f32(const models::WeightRef& w, float* dst, cudaStream_t stream,
                         Shard shard = {}) {
  if (w.type != GgmlType::kF32 && w.type != GgmlType::kF16 && w.type != GgmlType::kBF16)
    return unsupported("model: tensor '" + w.name + "' must be f32, f16 or bf16, got " +
                       std::string(model::ggml_type_name(w.type)));
  std::vector<float> v(static_cast<size_t>(w.cols() * w.rows()));
  model::dequantize_row(w.type, w.data, v.data(), static_cast<int64_t>(v.size()));
  const size_t part = v.size() / shard.parts;
  SGL_CUDA_OK(cudaMemcpyAsync(dst, v.data() + part * shard.index, part * sizeof(float),
                              cudaMemcpyHostToDevice, stream),
              "upload " + w.name);
  // v dies here: wait for the copy.
  SGL_CUDA_OK(cudaStreamSynchronize(stream), "upload");
  return Status::ok();
}

}  // namespace

Status CudaBackend::load_weights(const models::LoadedModel& model) {
  const auto& c = config_;
  SGL_ASSIGN_OR_RETURN(models::LlamaWeights w,
                       models::load_llama_weights(full_config_, *model.weights));
  cudaStream_t s = as_stream(stream_);
  std::vector<float> f32;
  std::vector<uint16_t> staging;
  const bool f16 = weight_dtype_ == WeightDtype::kF16;
  auto upload = [&](const models::WeightRef& ref, uint16_t* dst, Shard shard = {}) {
    return upload_matrix(ref, dst, f16, s, f32, staging, shard);
  };
  const size_t E = c.n_embd, F = c.n_ff;
  const size_t q_dim = static_cast<size_t>(c.n_head) * c.head_dim;
  const size_t kv_dim = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  SGL_RETURN_IF_ERROR(upload(w.tok_embd, tok_embd_));
  if (!c.tied_embeddings) {
    SGL_RETURN_IF_ERROR(upload(w.output, output_));
  } else if (w.output.data != w.tok_embd.data) {
    return internal_error("model: tied embeddings but a separate output.weight");
  }
  SGL_RETURN_IF_ERROR(upload_vector_f32(w.output_norm, output_norm_, s));
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    const auto& lw = w.layers[i];
    Layer& l = layers_[i];
    // Under tensor parallelism (q_dim, kv_dim, F are this rank's): its heads' rows of Q, K, V
    // (heads are contiguous row blocks) and columns of O; its rows of gate and up, columns of
    // down.
    const Shard rows{false, tp_rank_, tp_size_}, cols{true, tp_rank_, tp_size_};
    SGL_RETURN_IF_ERROR(upload(lw.wq, l.wqkv, rows));
    SGL_RETURN_IF_ERROR(upload(lw.wk, l.wqkv + q_dim * E, rows));
    SGL_RETURN_IF_ERROR(upload(lw.wv, l.wqkv + (q_dim + kv_dim) * E, rows));
    if (c.attn_qkv_bias) {
      SGL_RETURN_IF_ERROR(upload_vector_f32(lw.bq, l.bqkv, s, rows));
      SGL_RETURN_IF_ERROR(upload_vector_f32(lw.bk, l.bqkv + q_dim, s, rows));
      SGL_RETURN_IF_ERROR(upload_vector_f32(lw.bv, l.bqkv + q_dim + kv_dim, s, rows));
    }
    SGL_RETURN_IF_ERROR(upload(lw.wo, l.wo, cols));
    SGL_RETURN_IF_ERROR(upload(lw.w_gate, l.wgu, rows));
    SGL_RETURN_IF_ERROR(upload(lw.w_up, l.wgu + F * E, rows));
    SGL_RETURN_IF_ERROR(upload(lw.w_down, l.wdown, cols));
    SGL_RETURN_IF_ERROR(upload_vector_f32(lw.attn_norm, l.attn_norm, s));
    SGL_RETURN_IF_ERROR(upload_vector_f32(lw.ffn_norm, l.ffn_norm, s));
    if (progress_) {
      std::fprintf(stderr, "\rcuda: loading weights: layer %u/%u", i + 1, c.n_layer);
      if (i + 1 == c.n_layer) std::fprintf(stderr, "\n");
    }
  }
  std::vector<double> factors;
  if (w.rope_freqs.present()) {
    std::vector<float> f(static_cast<size_t>(w.rope_freqs.cols()));
    model::dequantize_row(w.rope_freqs.type, w.rope_freqs.data, f.data(),
                          static_cast<int64_t>(f.size()));
    factors.assign(f.begin(), f.end());
  }
  SGL_RETURN_IF_ERROR(init_rope(factors));
  SGL_CUDA_OK(cudaStreamSynchronize(s), "weight upload");
  return Status::ok();
}

Status CudaBackend::fill_dummy(uint64_t seed) {
  const auto& c = config_;
  cudaStream_t s = as_stream(stream_);
  const size_t E = c.n_embd, F = c.n_ff, V = c.n_vocab;
  const size_t q_dim = static_cast<size_t>(c.n_head) * c.head_dim;
  const size_t kv_dim = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  const size_t qkv = q_dim + 2 * kv_dim;
  uint64_t k = seed * 1000003 + static_cast<uint64_t>(tp_rank_) * 7919;
  // The same draws for either weight type, rounded to it.
  const cuda::WeightElem we = welem();
  auto fill = [&](uint16_t* p, size_t count, float scale) {
    cuda::launch_fill_uniform_weight(p, count, we, scale, ++k, s);
  };
  fill(tok_embd_, V * E, 1.0f);
  if (!c.tied_embeddings) fill(output_, V * E, 1.0f / std::sqrt(float(E)));
  cuda::launch_fill_f32(output_norm_, E, 1.0f, s);
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    Layer& l = layers_[i];
    fill(l.wqkv, qkv * E, 1.0f / std::sqrt(float(E)));
    if (l.bqkv) cuda::launch_fill_f32(l.bqkv, qkv, 0.01f, s);
    // The scales of the full matrices' inputs (the same distribution under tensor parallelism;
    // a rank's values are its own draws, not a slice of the tp = 1 tensors).
    const float full_q = float(full_config_.n_head) * float(c.head_dim);
    fill(l.wo, E * q_dim, 1.0f / std::sqrt(full_q));
    fill(l.wgu, 2 * F * E, 1.0f / std::sqrt(float(E)));
    fill(l.wdown, E * F, 1.0f / std::sqrt(float(full_config_.n_ff)));
    cuda::launch_fill_f32(l.attn_norm, E, 1.0f, s);
    cuda::launch_fill_f32(l.ffn_norm, E, 1.0f, s);
  }
  SGL_CUDA_OK(cudaGetLastError(), "dummy weights");
  SGL_RETURN_IF_ERROR(init_rope({}));
  SGL_CUDA_OK(cudaStreamSynchronize(s), "dummy weights");
  return Status::ok();
}

Status CudaBackend::init_rope(const std::vector<double>& file_factors) {
  const auto& c = config_;
  rope_dim_ = static_cast<int>(c.rope_dim ? c.rope_dim : c.head_dim);
  std::vector<double> factors = file_factors;
  double freq_scale = 1.0;
  if (c.rope_scaling.type == model::RopeScalingType::kLinear)
    freq_scale = 1.0 / c.rope_scaling.factor;
  if (factors.empty() && c.rope_scaling.type == model::RopeScalingType::kLlama3)
    factors = llama3_factors(c, rope_dim_);
  std::vector<double> inv(rope_dim_ / 2);
  for (int i = 0; i < rope_dim_ / 2; ++i) {
    inv[i] = freq_scale * std::pow(static_cast<double>(c.rope_freq_base),
                                   -2.0 * i / static_cast<double>(rope_dim_));
    if (!factors.empty()) inv[i] /= factors[i];
  }
  SGL_RETURN_IF_ERROR(dev_alloc(&inv_freq_, inv.size(), "RoPE table"));
  SGL_CUDA_OK(
      cudaMemcpy(inv_freq_, inv.data(), inv.size() * sizeof(double), cudaMemcpyHostToDevice),
      "RoPE table");
  return Status::ok();
}

cuda::WeightElem CudaBackend::welem() const {
  return weight_dtype_ == WeightDtype::kF16 ? cuda::WeightElem::kF16 : cuda::WeightElem::kBF16;
}

cuda::KvElem CudaBackend::kv_elem() const {
  switch (kv_dtype_) {
    case KvDtype::kF16:
      return cuda::KvElem::kF16;
    case KvDtype::kFp8E4M3:
      return cuda::KvElem::kFp8E4M3;
    case KvDtype::kFp8E5M2:
      return cuda::KvElem::kFp8E5M2;
    default:
      return cuda::KvElem::kBF16;
  }
}

Status CudaBackend::init_kv(const CudaBackendOptions& o) {
  const auto& c = config_;
  kv_row_elems_ = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  const size_t elem_bytes = static_cast<size_t>(cuda::kv_elem_bytes(kv_elem()));
  const size_t slot_bytes = 2 * kv_row_elems_ * elem_bytes * c.n_layer;  // K and V
  if (o.kv_capacity > 0) {
    kv_capacity_ = o.kv_capacity;
  } else {
    size_t free_b = 0, total_b = 0;
    SGL_CUDA_OK(cudaMemGetInfo(&free_b, &total_b), "memory info");
    const double used = static_cast<double>(total_b - free_b);  // context + weights
    const double budget = o.mem_fraction_static * static_cast<double>(total_b) - used;
    if (budget < static_cast<double>(slot_bytes) * 16)
      return Status(StatusCode::kResourceExhausted,
                    "CUDA: --mem-fraction-static " + std::to_string(o.mem_fraction_static) +
                        " leaves no room for the KV pool (" + gib(used) + " of " + gib(total_b) +
                        " already used); raise it");
    kv_capacity_ = static_cast<int64_t>(budget / static_cast<double>(slot_bytes));
  }
  kv_capacity_ = std::min<int64_t>(kv_capacity_, (int64_t{1} << 31) - 2);
  // One slot more than the pool's capacity: the K/V sink of the decode graphs' padding rows.
  const size_t layer_bytes = kv_row_elems_ * elem_bytes * (static_cast<size_t>(kv_capacity_) + 1);
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    uint8_t *k = nullptr, *v = nullptr;
    SGL_RETURN_IF_ERROR(dev_alloc(&k, layer_bytes, "the KV pool (lower the KV pool size)"));
    SGL_RETURN_IF_ERROR(dev_alloc(&v, layer_bytes, "the KV pool (lower the KV pool size)"));
    // Slots never written are never read (contract), but keep the pool finite anyway.
    SGL_CUDA_OK(cudaMemsetAsync(k, 0, layer_bytes, as_stream(stream_)), "KV pool");
    SGL_CUDA_OK(cudaMemsetAsync(v, 0, layer_bytes, as_stream(stream_)), "KV pool");
    k_cache_.push_back(k);
    v_cache_.push_back(v);
  }
  SGL_CUDA_OK(cudaStreamSynchronize(as_stream(stream_)), "KV pool");
  return Status::ok();
}

size_t CudaBackend::kv_bytes() const {
  return 2 * kv_row_elems_ * static_cast<size_t>(cuda::kv_elem_bytes(kv_elem())) *
         static_cast<size_t>(kv_capacity_) * config_.n_layer;
}

namespace {

// --dtype auto: f16 where every weight matrix of the checkpoint is f16 (an f16 checkpoint stays
// exact, as SGLang's auto keeps a float16 model in float16), bf16 otherwise (bf16, f32 and
// quantized checkpoints; unlike SGLang, f32 ones do not go to f16: bf16 cannot overflow).
WeightDtype resolve_auto_dtype(const models::LoadedModel& model) {
  if (model.weights == nullptr) return WeightDtype::kBF16;
  auto w = models::load_llama_weights(model.config, *model.weights);
  if (!w.is_ok()) return WeightDtype::kBF16;  // load_weights reports the error
  auto f16 = [](const models::WeightRef& r) {
    return !r.present() || r.type == model::GgmlType::kF16;
  };
  bool all = f16(w->tok_embd) && f16(w->output);
  for (const auto& l : w->layers)
    all = all && f16(l.wq) && f16(l.wk) && f16(l.wv) && f16(l.wo) && f16(l.w_gate) &&
          f16(l.w_up) && f16(l.w_down);
  return all && !w->layers.empty() ? WeightDtype::kF16 : WeightDtype::kBF16;
}

}  // namespace

Result<std::unique_ptr<CudaBackend>> CudaBackend::create(const models::LoadedModel& model,
                                                         const CudaBackendOptions& options) {
  std::unique_ptr<CudaBackend> b(new CudaBackend(model.config));
  b->progress_ = options.progress;
  CudaBackendOptions o = options;
  if (o.dtype == WeightDtype::kAuto) o.dtype = resolve_auto_dtype(model);
  SGL_RETURN_IF_ERROR(b->init_shard(o));
  SGL_RETURN_IF_ERROR(b->init_device(o));
  SGL_RETURN_IF_ERROR(b->alloc_weights());
  SGL_RETURN_IF_ERROR(b->load_weights(model));
  SGL_RETURN_IF_ERROR(b->init_kv(o));
  return b;
}

Result<std::unique_ptr<CudaBackend>> CudaBackend::create_dummy(const model::ModelConfig& config,
                                                               const CudaBackendOptions& options,
                                                               uint64_t seed) {
  std::unique_ptr<CudaBackend> b(new CudaBackend(config));
  b->progress_ = options.progress;
  SGL_RETURN_IF_ERROR(b->init_shard(options));
  SGL_RETURN_IF_ERROR(b->init_device(options));
  SGL_RETURN_IF_ERROR(b->alloc_weights());
  SGL_RETURN_IF_ERROR(b->fill_dummy(seed));
  SGL_RETURN_IF_ERROR(b->init_kv(options));
  return b;
}

namespace {

// Frees *p and allocates `bytes` (rounded up) when the current block is smaller; sets *moved
// when it did (captured CUDA graphs hold the old address).
Status grow(void** p, size_t* cap, size_t bytes, const char* what, bool* moved) {
  if (bytes <= *cap && *p != nullptr) return Status::ok();
  *moved = true;
  // An asynchronous launch (launch_sample) may still be running on the old block.
  if (*p) cudaDeviceSynchronize();
  if (*p) cudaFree(*p);
  *p = nullptr;
  *cap = 0;
  const size_t want = std::max<size_t>(bytes + bytes / 4, 256);
  if (cudaMalloc(p, want) != cudaSuccess) {
    cudaGetLastError();
    *p = nullptr;
    return Status(StatusCode::kResourceExhausted,
                  std::string("CUDA: out of GPU memory for the activations (") + what + ", " +
                      gib(want) + "); lower --mem-fraction-static or the batch size");
  }
  *cap = want;
  return Status::ok();
}

}  // namespace

Status CudaBackend::ensure_scratch(int n, int n_logits, int max_kv, size_t meta_elems,
                                   int attn_splits) {
  const auto& c = config_;
  bool moved = false;
  bool meta_moved = false;  // meta_ is the eager path's alone: graphs do not hold it
  const size_t N = static_cast<size_t>(n);
  const size_t q_dim = static_cast<size_t>(c.n_head) * c.head_dim;
  const size_t qkv = q_dim + 2 * kv_row_elems_;
  const size_t f_w =
      std::max({qkv, 2 * static_cast<size_t>(c.n_ff), static_cast<size_t>(c.n_embd)});
  const size_t h_w = std::max({static_cast<size_t>(c.n_embd), static_cast<size_t>(c.n_ff), q_dim});
  SGL_RETURN_IF_ERROR(grow(reinterpret_cast<void**>(&x_), &cap_x_, N * c.n_embd * 4, "x", &moved));
  SGL_RETURN_IF_ERROR(grow(reinterpret_cast<void**>(&f_), &cap_f_, N * f_w * 4, "f", &moved));
  SGL_RETURN_IF_ERROR(grow(reinterpret_cast<void**>(&h_), &cap_h_, N * h_w * 2, "h", &moved));
  SGL_RETURN_IF_ERROR(grow(reinterpret_cast<void**>(&q_), &cap_q_, N * q_dim * 2, "q", &moved));
  SGL_RETURN_IF_ERROR(grow(reinterpret_cast<void**>(&act_), &cap_act_,
                           std::min<size_t>(N, cuda::kGemvMaxRows) * c.n_ff * 2, "act", &moved));
  SGL_RETURN_IF_ERROR(
      grow(reinterpret_cast<void**>(&cos_sin_), &cap_cs_, N * rope_dim_ * 4, "rope", &moved));
  SGL_RETURN_IF_ERROR(
      grow(reinterpret_cast<void**>(&meta_), &cap_meta_, meta_elems * 4, "meta", &meta_moved));
  const size_t L = static_cast<size_t>(std::max(n_logits, 1));
  SGL_RETURN_IF_ERROR(
      grow(reinterpret_cast<void**>(&head_x_), &cap_head_x_, L * c.n_embd * 2, "head", &moved));
  SGL_RETURN_IF_ERROR(
      grow(reinterpret_cast<void**>(&logits_), &cap_logits_, L * c.n_vocab * 4, "logits", &moved));
  const size_t ws =
      cuda::attention_workspace_floats(n, static_cast<int>(c.n_head), static_cast<int>(c.n_head_kv),
                                       static_cast<int>(c.head_dim), max_kv, n_sm_, attn_splits);
  SGL_RETURN_IF_ERROR(
      grow(reinterpret_cast<void**>(&attn_ws_), &cap_ws_, ws * 4, "attention", &moved));
  if (moved) drop_graphs();
  return ensure_pinned(meta_elems);
}

Status CudaBackend::ensure_pinned(size_t elems) {
  if (pinned_elems_ >= elems) return Status::ok();
  if (pinned_) cudaFreeHost(pinned_);
  pinned_ = nullptr;
  pinned_elems_ = 0;
  const size_t want = elems + elems / 4;
  SGL_CUDA_OK(cudaMallocHost(reinterpret_cast<void**>(&pinned_), want * 4), "pinned staging");
  pinned_elems_ = want;
  return Status::ok();
}

Status CudaBackend::staging_ready() {
  if (staging_event_)
    SGL_CUDA_OK(cudaEventSynchronize(static_cast<cudaEvent_t>(staging_event_)), "staging wait");
  return Status::ok();
}

Status CudaBackend::after_upload(int32_t* tokens_dev, const ForwardBatch& batch, int n) {
  cudaStream_t s = as_stream(stream_);
  if (!staging_event_) {
    cudaEvent_t e = nullptr;
    SGL_CUDA_OK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "staging event");
    staging_event_ = e;
  }
  SGL_CUDA_OK(cudaEventRecord(static_cast<cudaEvent_t>(staging_event_), s), "staging event");
  if (future_src_ == nullptr) return Status::ok();
  bool any = false;
  for (int32_t t : batch.tokens) any = any || t < 0;
  if (any) {
    cuda::launch_resolve_futures(tokens_dev, n, future_src_, s);
    SGL_CUDA_OK(cudaGetLastError(), "future tokens");
  }
  return Status::ok();
}

Status CudaBackend::prepare_eager(const ForwardBatch& batch, StepInputs* in) {
  cudaStream_t s = as_stream(stream_);
  // An asynchronous launch's upload may still be reading the pinned staging.
  SGL_RETURN_IF_ERROR(staging_ready());
  const int n = batch.n_tokens();
  const int n_seqs = static_cast<int>(batch.seqs.size());
  const int n_out = static_cast<int>(batch.logit_rows.size());
  size_t n_slots = 0;
  int max_kv = 1;
  for (const auto& sv : batch.seqs) {
    n_slots += static_cast<size_t>(sv.n_past) + sv.n_new;
    max_kv = std::max(max_kv, sv.n_past + sv.n_new);
  }
  // Prefill chunks of at least kTcMinRows tokens go to the tensor-core kernel, in tiles of 64
  // queries, the tiles with the most keys first.
  constexpr int kTcMinRows = 32;
  std::vector<std::array<int32_t, 3>>& tiles = tc_tiles_;  // (keys, first token, rows)
  tiles.clear();
  if (use_tc_)
    for (const auto& sv : batch.seqs)
      if (sv.n_new >= kTcMinRows)
        for (int q = 0; q < sv.n_new; q += cuda::kPrefillTcRows) {
          const int rows = std::min(cuda::kPrefillTcRows, sv.n_new - q);
          tiles.push_back({sv.n_past + q + rows, sv.token_begin + q, rows});
        }
  std::sort(tiles.begin(), tiles.end(), [](const auto& x, const auto& y) { return x[0] > y[0]; });
  const int n_tiles = static_cast<int>(tiles.size());
  // fp8 KV: the prefill kernels read bf16, so every K/V row of a sequence with tiles is first
  // converted into deq_k_/deq_v_ (compact rows, one run per sequence, read through an identity
  // slot list).
  size_t n_deq = 0;
  const bool deq = n_tiles > 0 && cuda::kv_elem_bytes(kv_elem()) == 1;
  if (deq)
    for (const auto& sv : batch.seqs)
      if (sv.n_new >= kTcMinRows) n_deq += static_cast<size_t>(sv.n_past) + sv.n_new;
  const size_t meta_elems = 5 * static_cast<size_t>(n) + n_seqs + n_out + 2 * tiles.size() +
                            n_slots + n_out + (deq ? n_seqs + 2 * n_deq : 0);
  SGL_RETURN_IF_ERROR(ensure_scratch(n, n_out, max_kv, meta_elems));
  if (deq) {
    bool moved = false;  // graphs never read these
    const size_t bytes = n_deq * kv_row_elems_ * 2;
    SGL_RETURN_IF_ERROR(
        grow(reinterpret_cast<void**>(&deq_k_), &cap_deq_k_, bytes, "fp8 K", &moved));
    SGL_RETURN_IF_ERROR(
        grow(reinterpret_cast<void**>(&deq_v_), &cap_deq_v_, bytes, "fp8 V", &moved));
  }

  // Batch description: tokens | positions | out_slots | token_seq | token_skip | seq begins |
  // logit rows | tiles | slots | (argmax output).
  int32_t* hm = pinned_;
  std::memcpy(hm, batch.tokens.data(), n * 4);
  std::memcpy(hm + n, batch.positions.data(), n * 4);
  std::memcpy(hm + 2 * n, batch.out_slots.data(), n * 4);
  int32_t* token_seq = hm + 3 * n;
  int32_t* token_skip = hm + 4 * n;
  int32_t* seq_begin = hm + 5 * n;
  int32_t* rows = seq_begin + n_seqs;
  int32_t* tile_data = rows + n_out;
  int32_t* slots = tile_data + 2 * n_tiles;
  std::memcpy(rows, batch.logit_rows.data(), n_out * 4);
  std::memset(token_skip, 0, n * 4);
  for (int i = 0; i < n_tiles; ++i) {
    tile_data[2 * i] = tiles[i][1];
    tile_data[2 * i + 1] = tiles[i][2];
    for (int r = 0; r < tiles[i][2]; ++r) token_skip[tiles[i][1] + r] = 1;
  }
  size_t off = 0;
  for (int si = 0; si < n_seqs; ++si) {
    const SequenceView& sv = batch.seqs[si];
    for (int t = 0; t < sv.n_new; ++t) token_seq[sv.token_begin + t] = si;
    seq_begin[si] = static_cast<int32_t>(off);
    const size_t len = static_cast<size_t>(sv.n_past) + sv.n_new;
    std::memcpy(slots + off, sv.slots, len * 4);
    off += len;
  }
  // fp8 prefill rows, after the argmax output: seq begins (compact) | source slots | identity.
  int32_t* deq_meta = slots + n_slots + n_out;
  if (deq) {
    int32_t* d_begin = deq_meta;
    int32_t* d_src = d_begin + n_seqs;
    int32_t* d_iota = d_src + n_deq;
    size_t row = 0;
    for (int si = 0; si < n_seqs; ++si) {
      const SequenceView& sv = batch.seqs[si];
      d_begin[si] = static_cast<int32_t>(row);
      if (sv.n_new < kTcMinRows) continue;
      const size_t len = static_cast<size_t>(sv.n_past) + sv.n_new;
      std::memcpy(d_src + row, sv.slots, len * 4);
      row += len;
    }
    for (size_t i = 0; i < n_deq; ++i) d_iota[i] = static_cast<int32_t>(i);
  }
  const size_t upload = static_cast<size_t>(slots - hm) + n_slots;
  SGL_CUDA_OK(cudaMemcpyAsync(meta_, hm, upload * 4, cudaMemcpyHostToDevice, s), "batch upload");
  if (deq) {
    const size_t at = static_cast<size_t>(deq_meta - hm);
    SGL_CUDA_OK(
        cudaMemcpyAsync(meta_ + at, deq_meta, (n_seqs + 2 * n_deq) * 4, cudaMemcpyHostToDevice, s),
        "batch upload");
    in->deq_seq_begin = meta_ + at;
    in->deq_src = in->deq_seq_begin + n_seqs;
    in->deq_slots = in->deq_src + n_deq;
    in->n_deq = static_cast<int>(n_deq);
  }
  // After every upload from the staging buffer (it records the event that frees the staging).
  SGL_RETURN_IF_ERROR(after_upload(meta_, batch, n));
  in->tokens = meta_;
  in->pos = meta_ + n;
  in->out_slots = meta_ + 2 * n;
  in->token_seq = meta_ + 3 * n;
  in->token_skip = meta_ + 4 * n;
  in->seq_begin = meta_ + 5 * n;
  in->rows = meta_ + 5 * n + n_seqs;
  in->tiles = in->rows + n_out;
  in->slots = in->tiles + 2 * n_tiles;
  in->argmax = meta_ + upload;  // n_out entries after the uploaded part
  in->n = n;
  in->n_out = n_out;
  in->n_tiles = n_tiles;
  in->max_kv = max_kv;
  in->attn_splits = 0;
  return Status::ok();
}

Result<bool> CudaBackend::use_fused(int n) {
  const auto& c = config_;
  if (fused_decode_ == FusedDecode::kOff || tp_size_ > 1 || n > cuda::kGemvMaxRows ||
      layers_.empty())
    return false;
  const int E = static_cast<int>(c.n_embd), F = static_cast<int>(c.n_ff);
  const int q_dim = static_cast<int>(c.n_head * c.head_dim);
  const int qkv = q_dim + 2 * static_cast<int>(kv_row_elems_);
  cuda::QkvRopeArgs probe;
  probe.n = n;
  probe.n_head = static_cast<int>(c.n_head);
  probe.n_head_kv = static_cast<int>(c.n_head_kv);
  probe.head_dim = static_cast<int>(c.head_dim);
  probe.rope_dim = rope_dim_;
  if (!cuda::gemv_norm_qkv_rope_supported(probe, E) || !cuda::gemv_norm_supported(n, 2 * F, E) ||
      !cuda::gemv_supported(n, E, q_dim) || !cuda::gemv_supported(n, E, F))
    return false;
  if (fused_decode_ == FusedDecode::kAlways) return true;
  // One token: the fused GEMVs, without asking the planner. Its timing (median of 5 runs over the
  // same, L2-resident weights) now and then picked cuBLASLt for one shape at n = 1, which made
  // the whole step unfused: 6.11 instead of 5.72 ms a token on the H100 in about a third of the
  // sgl-bench runs (docs/cuda.md, "Batch-1 decode: persistent kernels").
  if (n == 1) return true;
  // Where cuBLASLt beat the plain GEMV on a shape (it can at n = 8), the unfused path keeps it.
  // The shapes are the same in every layer: layer 0's weights stand for all in the timing.
  cudaStream_t s = as_stream(stream_);
  const Layer& L = layers_[0];
  struct Shape {
    const uint16_t *x, *w;
    int m, k;
  };
  for (const Shape& sh : {Shape{h_, L.wqkv, qkv, E}, Shape{h_, L.wo, E, q_dim},
                          Shape{h_, L.wgu, 2 * F, E}, Shape{act_, L.wdown, E, F}}) {
    SGL_ASSIGN_OR_RETURN(const bool gemv, gemm_->prefers_gemv(sh.x, sh.w, f_, n, sh.m, sh.k, s));
    if (!gemv) return false;
  }
  return true;
}

Status CudaBackend::enqueue_layers(const StepInputs& in) {
  const auto& c = config_;
  cudaStream_t s = as_stream(stream_);
  const int n = in.n;
  const int n_tiles = in.n_tiles;
  const int E = static_cast<int>(c.n_embd), F = static_cast<int>(c.n_ff);
  const int D = static_cast<int>(c.head_dim);
  const int q_dim = static_cast<int>(c.n_head) * D;
  const int qkv = q_dim + 2 * static_cast<int>(kv_row_elems_);
  // Fused decode: no norm kernels and no residual-add kernels; x_ is updated in place by the O
  // and down GEMVs, and each consumer (QKV, gate|up, the LM head) normalizes it itself.
  SGL_ASSIGN_OR_RETURN(step_fused_, use_fused(n));
  if (step_fused_) ++fused_steps_;
  // Every kernel that reads a weight matrix or writes a GEMM input takes the weight type.
  const cuda::WeightElem we = welem();
  cuda::launch_embedding(tok_embd_, in.tokens, n, E, x_, s, we);
  cuda::launch_rope_table(inv_freq_, rope_dim_, in.pos, n, cos_sin_, s);
  if (!step_fused_) cuda::launch_rms_norm(x_, layers_[0].attn_norm, h_, n, E, c.rms_eps, s, we);
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const Layer& L = layers_[il];
    cuda::QkvRopeArgs qa;
    qa.qkv = f_;
    qa.bias = L.bqkv;
    qa.cos_sin = cos_sin_;
    qa.out_slots = in.out_slots;
    qa.n = n;
    qa.n_head = static_cast<int>(c.n_head);
    qa.n_head_kv = static_cast<int>(c.n_head_kv);
    qa.head_dim = D;
    qa.rope_dim = rope_dim_;
    qa.neox = c.rope_type == model::RopeType::kNeox;
    qa.q_out = q_;
    qa.k_cache = k_cache_[il];
    qa.v_cache = v_cache_[il];
    qa.kv_elem = kv_elem();
    if (step_fused_) {
      cuda::GemvNormIn ni;
      ni.x = x_;
      ni.weight = L.attn_norm;
      ni.eps = c.rms_eps;
      cuda::launch_gemv_norm_qkv_rope(ni, L.wqkv, qa, E, s, we);
    } else {
      SGL_RETURN_IF_ERROR(gemm_->run(h_, L.wqkv, f_, cuda::GemmOut::kF32, n, qkv, E, s));
      cuda::launch_qkv_rope_store(qa, s);
    }
    cuda::AttentionArgs aa;
    aa.q = q_;
    aa.k_cache = k_cache_[il];
    aa.v_cache = v_cache_[il];
    aa.kv_elem = qa.kv_elem;
    aa.positions = in.pos;
    aa.token_seq = in.token_seq;
    aa.seq_slots_begin = in.seq_begin;
    aa.slots = in.slots;
    aa.n_tokens = n;
    aa.n_head = qa.n_head;
    aa.n_head_kv = qa.n_head_kv;
    aa.head_dim = D;
    aa.max_kv = in.max_kv;
    aa.fixed_splits = in.attn_splits;
    aa.scale = 1.0f / std::sqrt(static_cast<float>(D));
    aa.out = h_;
    aa.workspace = attn_ws_;
    aa.n_sm = n_sm_;
    if (n_tiles > 0) {
      aa.token_skip = in.token_skip;
      aa.bf16_rows = in.n_deq;
      aa.bf16_src = in.deq_src;
      aa.bf16_seq_begin = in.deq_seq_begin;
      aa.bf16_slots = in.deq_slots;
      aa.bf16_k = deq_k_;
      aa.bf16_v = deq_v_;
      if (!cuda::launch_attention_prefill_tc(aa, in.tiles, n_tiles, s))
        return internal_error("CUDA: the tensor-core prefill attention could not be launched");
    }
    cuda::launch_attention(aa, s);
    // The attention kernels write bf16: f16 weights take their output converted (in place).
    if (we == cuda::WeightElem::kF16)
      cuda::launch_bf16_to_f16(h_, h_, static_cast<size_t>(n) * q_dim, s);
    if (step_fused_) {
      cuda::launch_gemv_add(h_, L.wo, x_, n, E, q_dim, s, we);
      cuda::GemvNormIn ni;
      ni.x = x_;
      ni.weight = L.ffn_norm;
      ni.eps = c.rms_eps;
      cuda::launch_gemv_norm_gate_up_silu(ni, L.wgu, act_, n, F, E, s, we);
      cuda::launch_gemv_add(act_, L.wdown, x_, n, E, F, s, we);
      SGL_CUDA_OK(cudaGetLastError(), "layer " + std::to_string(il));
      continue;
    }
    SGL_RETURN_IF_ERROR(gemm_->run(h_, L.wo, f_, cuda::GemmOut::kF32, n, E, q_dim, s));
    if (tp_size_ > 1) SGL_RETURN_IF_ERROR(all_reduce_(f_, static_cast<size_t>(n) * E, s));
    cuda::launch_add_rms_norm(x_, f_, L.ffn_norm, h_, n, E, c.rms_eps, s, we);
    // Where the plain GEMV beat cuBLASLt on the gate|up shape, its gated form computes
    // SiLU(gate) * up in the epilogue: one launch, and no f32 [n, 2 n_ff] round trip.
    SGL_ASSIGN_OR_RETURN(const bool gated_gemv, gemm_->prefers_gemv(h_, L.wgu, f_, n, 2 * F, E, s));
    if (gated_gemv) {
      cuda::launch_gemv_gate_up_silu(h_, L.wgu, act_, n, F, E, s, 0, we);
      SGL_RETURN_IF_ERROR(gemm_->run(act_, L.wdown, f_, cuda::GemmOut::kF32, n, E, F, s));
    } else {
      SGL_RETURN_IF_ERROR(gemm_->run(h_, L.wgu, f_, cuda::GemmOut::kF32, n, 2 * F, E, s));
      cuda::launch_silu_mul(f_, n, F, h_, s, we);
      SGL_RETURN_IF_ERROR(gemm_->run(h_, L.wdown, f_, cuda::GemmOut::kF32, n, E, F, s));
    }
    if (tp_size_ > 1) SGL_RETURN_IF_ERROR(all_reduce_(f_, static_cast<size_t>(n) * E, s));
    // The residual add fused with the next layer's attention norm (the last layer's output
    // norm result in h_ goes unused: the head norms only the requested rows).
    const float* next_norm = il + 1 < c.n_layer ? layers_[il + 1].attn_norm : output_norm_;
    cuda::launch_add_rms_norm(x_, f_, next_norm, h_, n, E, c.rms_eps, s, we);
    SGL_CUDA_OK(cudaGetLastError(), "layer " + std::to_string(il));
  }
  return Status::ok();
}

Status CudaBackend::enqueue_head(const StepInputs& in) {
  const auto& c = config_;
  cudaStream_t s = as_stream(stream_);
  const int n_out = in.n_out;
  if (n_out == 0) return Status::ok();
  const int E = static_cast<int>(c.n_embd), V = static_cast<int>(c.n_vocab);
  if (step_fused_ && cuda::gemv_norm_supported(n_out, V, E)) {
    // The final norm of the requested rows in the LM head GEMV's prologue, where the GEMV wins.
    bool gemv = fused_decode_ == FusedDecode::kAlways;
    if (!gemv) {
      SGL_ASSIGN_OR_RETURN(gemv, gemm_->prefers_gemv(head_x_, output_, logits_, n_out, V, E, s));
    }
    if (gemv) {
      cuda::GemvNormIn ni;
      ni.x = x_;
      ni.rows = in.rows;
      ni.weight = output_norm_;
      ni.eps = c.rms_eps;
      cuda::launch_gemv_norm(ni, output_, logits_, n_out, V, E, s, welem());
      SGL_CUDA_OK(cudaGetLastError(), "LM head");
      return Status::ok();
    }
  }
  cuda::launch_gather_rms_norm(x_, in.rows, n_out, E, output_norm_, c.rms_eps, head_x_, s, welem());
  SGL_RETURN_IF_ERROR(gemm_->run(head_x_, output_, logits_, cuda::GemmOut::kF32, n_out,
                                 static_cast<int>(c.n_vocab), E, s));
  SGL_CUDA_OK(cudaGetLastError(), "LM head");
  return Status::ok();
}

Status CudaBackend::forward_device(const ForwardBatch& batch) {
  if (graph_eligible(batch)) return forward_graph(batch);
  StepInputs in;
  SGL_RETURN_IF_ERROR(prepare_eager(batch, &in));
  argmax_ = in.argmax;
  SGL_RETURN_IF_ERROR(enqueue_layers(in));
  return enqueue_head(in);
}

namespace {

// Padded batch sizes of the decode graphs: every decode batch runs on the smallest that holds it.
constexpr int kGraphSizes[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256};
constexpr int kGraphMaxBatch = 256;
// Fixed-address header of the graph inputs, kGraphMaxBatch entries each: tokens | positions |
// out_slots | token_seq | seq begins | logit rows | argmax output; the slot lists follow.
constexpr int kGraphHeaderFields = 7;
constexpr size_t kGraphHeader = size_t{kGraphHeaderFields} * kGraphMaxBatch;

int graph_size(int n) {
  for (int p : kGraphSizes)
    if (n <= p) return p;
  return 0;
}

}  // namespace

bool CudaBackend::graph_eligible(const ForwardBatch& batch) const {
  const int n = batch.n_tokens();
  if (!graphs_enabled_ || n == 0 || n > kGraphMaxBatch) return false;
  if (static_cast<int>(batch.seqs.size()) != n || static_cast<int>(batch.logit_rows.size()) != n)
    return false;
  for (int i = 0; i < n; ++i)
    if (batch.seqs[i].n_new != 1 || batch.seqs[i].token_begin != i || batch.logit_rows[i] != i)
      return false;
  return true;
}

void CudaBackend::drop_graphs() {
  for (auto& [size, exec] : graphs_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
  graphs_.clear();
}

// A decode-only batch of n sequences runs as the graph of the padded size P: rows n..P-1 are
// padding (token 0 at position 0, K/V written to the reserved slot kv_capacity_, attending to
// that slot alone; their logits rows are computed and ignored). Every input the graph reads
// lives at a fixed address in gmeta_, rewritten by one upload per step; the attention splits
// each token's own keys into a split count fixed per P, so nothing in the launches depends on
// the step's lengths. The first step of a size runs eagerly in this same layout (which plans the
// GEMMs of n = P: their timing cannot run inside a capture); the second captures the graph.
Status CudaBackend::forward_graph(const ForwardBatch& batch) {
  const auto& c = config_;
  cudaStream_t s = as_stream(stream_);
  const int n = batch.n_tokens();
  const int P = graph_size(n);
  SGL_RETURN_IF_ERROR(staging_ready());
  size_t n_slots = 1;  // + the padding rows' single shared slot
  for (const auto& sv : batch.seqs) n_slots += static_cast<size_t>(sv.n_past) + 1;
  const size_t total = kGraphHeader + n_slots;
  if (total > gmeta_cap_) {
    drop_graphs();
    if (gmeta_) SGL_CUDA_OK(cudaStreamSynchronize(s), "graph inputs");  // a launch may read it
    if (gmeta_) cudaFree(gmeta_);
    gmeta_ = nullptr;
    gmeta_cap_ = 0;
    const size_t want = total + total / 2 + 4096;
    SGL_CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&gmeta_), want * 4), "graph inputs");
    gmeta_cap_ = want;
  }
  const int splits = cuda::attention_fixed_splits(P, static_cast<int>(c.n_head),
                                                  static_cast<int>(c.n_head_kv), n_sm_);
  SGL_RETURN_IF_ERROR(ensure_scratch(P, P, 1, 0, splits));
  SGL_RETURN_IF_ERROR(ensure_pinned(total));

  int32_t* hm = pinned_;
  int32_t* tokens = hm;
  int32_t* pos = hm + kGraphMaxBatch;
  int32_t* out_slots = hm + 2 * kGraphMaxBatch;
  int32_t* token_seq = hm + 3 * kGraphMaxBatch;
  int32_t* seq_begin = hm + 4 * kGraphMaxBatch;
  int32_t* rows = hm + 5 * kGraphMaxBatch;
  int32_t* slots = hm + kGraphHeader;
  const int32_t scratch_slot = static_cast<int32_t>(kv_capacity_);
  size_t off = 0;
  for (int i = 0; i < P; ++i) {
    token_seq[i] = i;
    rows[i] = i;
    if (i < n) {
      const SequenceView& sv = batch.seqs[i];
      tokens[i] = batch.tokens[i];
      pos[i] = batch.positions[i];
      out_slots[i] = batch.out_slots[i];
      seq_begin[i] = static_cast<int32_t>(off);
      std::memcpy(slots + off, sv.slots, (static_cast<size_t>(sv.n_past) + 1) * 4);
      off += static_cast<size_t>(sv.n_past) + 1;
    } else {
      tokens[i] = 0;
      pos[i] = 0;
      out_slots[i] = scratch_slot;
      seq_begin[i] = static_cast<int32_t>(n_slots - 1);
    }
  }
  slots[n_slots - 1] = scratch_slot;
  SGL_CUDA_OK(cudaMemcpyAsync(gmeta_, hm, total * 4, cudaMemcpyHostToDevice, s), "batch upload");
  // Future ids are resolved in place at the graph's fixed token address, before the replay.
  SGL_RETURN_IF_ERROR(after_upload(gmeta_, batch, n));

  StepInputs in;
  in.tokens = gmeta_;
  in.pos = gmeta_ + kGraphMaxBatch;
  in.out_slots = gmeta_ + 2 * kGraphMaxBatch;
  in.token_seq = gmeta_ + 3 * kGraphMaxBatch;
  in.seq_begin = gmeta_ + 4 * kGraphMaxBatch;
  in.rows = gmeta_ + 5 * kGraphMaxBatch;
  in.argmax = gmeta_ + 6 * kGraphMaxBatch;
  in.slots = gmeta_ + kGraphHeader;
  in.n = P;
  in.n_out = P;
  in.max_kv = 0;  // unused with fixed splits
  in.attn_splits = splits;
  argmax_ = in.argmax;

  if (auto it = graphs_.find(P); it != graphs_.end()) {
    SGL_CUDA_OK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(it->second), s), "graph launch");
    return Status::ok();
  }
  if (!graph_planned_.count(P)) {
    graph_planned_.insert(P);
    SGL_RETURN_IF_ERROR(enqueue_layers(in));
    return enqueue_head(in);
  }
  SGL_CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "graph capture");
  Status st = enqueue_layers(in);
  if (st.is_ok()) st = enqueue_head(in);
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(s, &graph);
  if (!st.is_ok()) {
    if (graph) cudaGraphDestroy(graph);
    return st;
  }
  if (end != cudaSuccess) return cuda_error("graph capture", end);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (inst != cudaSuccess) return cuda_error("graph instantiate", inst);
  graphs_[P] = exec;
  SGL_CUDA_OK(cudaGraphLaunch(exec, s), "graph launch");
  return Status::ok();
}

Status CudaBackend::forward(const ForwardBatch& batch, Logits* logits) {
  const auto& c = config_;
  SGL_RETURN_IF_ERROR(batch.validate(kv_capacity_, static_cast<int32_t>(c.n_vocab)));
  SGL_CUDA_OK(cudaSetDevice(device_), "set device");
  logits->n_rows = static_cast<int32_t>(batch.logit_rows.size());
  logits->n_vocab = static_cast<int32_t>(c.n_vocab);
  logits->data.resize(static_cast<size_t>(logits->n_rows) * c.n_vocab);
  if (batch.n_tokens() == 0) return Status::ok();
  SGL_RETURN_IF_ERROR(forward_device(batch));
  cudaStream_t s = as_stream(stream_);
  if (!logits->data.empty())
    SGL_CUDA_OK(cudaMemcpyAsync(logits->data.data(), logits_, logits->data.size() * 4,
                                cudaMemcpyDeviceToHost, s),
                "logits download");
  SGL_CUDA_OK(cudaStreamSynchronize(s), "forward");
  return Status::ok();
}

Status CudaBackend::forward_no_output(const ForwardBatch& batch) {
  const auto& c = config_;
  SGL_RETURN_IF_ERROR(batch.validate(kv_capacity_, static_cast<int32_t>(c.n_vocab)));
  SGL_CUDA_OK(cudaSetDevice(device_), "set device");
  if (batch.n_tokens() == 0) return Status::ok();
  SGL_RETURN_IF_ERROR(forward_device(batch));
  SGL_CUDA_OK(cudaStreamSynchronize(as_stream(stream_)), "forward");
  return Status::ok();
}

Status CudaBackend::forward_greedy(const ForwardBatch& batch, std::vector<int32_t>* tokens) {
  const auto& c = config_;
  SGL_RETURN_IF_ERROR(batch.validate(kv_capacity_, static_cast<int32_t>(c.n_vocab)));
  SGL_CUDA_OK(cudaSetDevice(device_), "set device");
  const int n_out = static_cast<int>(batch.logit_rows.size());
  tokens->assign(n_out, 0);
  if (batch.n_tokens() == 0) return Status::ok();
  SGL_RETURN_IF_ERROR(forward_device(batch));
  cudaStream_t s = as_stream(stream_);
  if (n_out > 0) {
    // Many blocks per row (one block took ~30 us at batch 1); its scratch is not in any graph.
    const int V = static_cast<int>(c.n_vocab);
    bool unused = false;
    SGL_RETURN_IF_ERROR(grow(&argmax_ws_, &cap_argmax_ws_, cuda::argmax_workspace_bytes(n_out, V),
                             "argmax", &unused));
    cuda::launch_argmax_split(logits_, n_out, V, argmax_ws_, argmax_, s);
    SGL_CUDA_OK(cudaGetLastError(), "argmax");
    SGL_CUDA_OK(cudaMemcpyAsync(tokens->data(), argmax_, n_out * 4, cudaMemcpyDeviceToHost, s),
                "argmax download");
  }
  SGL_CUDA_OK(cudaStreamSynchronize(s), "forward");
  return Status::ok();
}

}  // namespace sgl::backend
