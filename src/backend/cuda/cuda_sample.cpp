// CudaBackend::forward_sample: the forward pass, then sampling on the GPU (sampling.cu); only the
// sampled tokens are copied back.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/sampling.h"

namespace sgl::backend {

// Grown-on-demand buffers of forward_sample / launch_sample: the upload (row parameters, then the
// bitsets) in pinned host memory and its device copy, and per token slot (launches alternate
// between the two) the sampled tokens on the device and in pinned memory, with the event that
// marks the copy done.
struct CudaBackend::SampleBuffers {
  void* host = nullptr;  // pinned
  void* dev = nullptr;
  size_t bytes = 0;
  struct Slot {
    int32_t* tokens_dev = nullptr;
    int32_t* tokens_host = nullptr;  // pinned
    size_t n_tokens = 0;
    cudaEvent_t done = nullptr;
    int32_t n_out = 0;  // the launch's rows
  };
  Slot slots[kMaxUncollected];
  uint64_t next_ticket = 1;
  uint64_t oldest = 1;       // the oldest uncollected ticket (== next_ticket: none)
  int32_t last_n_out = 0;    // rows of the previous launch: the valid future ids
};

namespace {

Status cuda_fail(const char* what, cudaError_t e) {
  return Status(StatusCode::kInternal,
                std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

#define SGL_SAMPLE_CUDA_OK(call, what)                   \
  do {                                                   \
    cudaError_t e_ = (call);                             \
    if (e_ != cudaSuccess) return cuda_fail((what), e_); \
  } while (0)

}  // namespace

void CudaBackend::SampleBuffersDeleter::operator()(SampleBuffers* b) const {
  if (b == nullptr) return;
  if (b->host) cudaFreeHost(b->host);
  if (b->dev) cudaFree(b->dev);
  for (auto& sl : b->slots) {
    if (sl.done) cudaEventDestroy(sl.done);
    if (sl.tokens_host) cudaFreeHost(sl.tokens_host);
    if (sl.tokens_dev) cudaFree(sl.tokens_dev);
  }
  delete b;
}

Status CudaBackend::check_sample_rows(const ForwardBatch& batch, std::span<const SampleRow> rows) {
  const size_t n_out = batch.logit_rows.size();
  if (rows.size() != n_out)
    return invalid_argument("forward_sample: " + std::to_string(rows.size()) +
                            " sampling rows for " + std::to_string(n_out) + " logit rows");
  for (const SampleRow& r : rows) {
    if (r.mask != nullptr && r.mask_words < 0)
      return invalid_argument("forward_sample: negative mask_words");
    if (!(r.u >= 0.0 && r.u < 1.0))
      return invalid_argument("forward_sample: u must be in [0, 1), got " + std::to_string(r.u));
  }
  return Status::ok();
}

Status CudaBackend::forward_sample(const ForwardBatch& batch, std::span<const SampleRow> rows,
                                   std::vector<int32_t>* tokens) {
  SGL_ASSIGN_OR_RETURN(const uint64_t ticket, launch(batch, rows, /*allow_futures=*/false));
  return collect(ticket, tokens);
}

Result<uint64_t> CudaBackend::launch_sample(const ForwardBatch& batch,
                                            std::span<const SampleRow> rows) {
  return launch(batch, rows, /*allow_futures=*/true);
}

Result<uint64_t> CudaBackend::launch(const ForwardBatch& batch, std::span<const SampleRow> rows,
                                     bool allow_futures) {
  const auto& c = config_;
  if (!sample_) sample_.reset(new SampleBuffers());
  SampleBuffers& b = *sample_;
  if (b.next_ticket - b.oldest >= static_cast<uint64_t>(kMaxUncollected))
    return invalid_argument("launch_sample: " + std::to_string(kMaxUncollected) +
                            " launches are still uncollected");
  SGL_RETURN_IF_ERROR(batch.validate(kv_capacity_, static_cast<int32_t>(c.n_vocab),
                                     allow_futures ? b.last_n_out : 0));
  SGL_RETURN_IF_ERROR(check_sample_rows(batch, rows));
  const size_t n_out = batch.logit_rows.size();
  SGL_SAMPLE_CUDA_OK(cudaSetDevice(device_), "set device");
  cudaStream_t s = static_cast<cudaStream_t>(stream_);
  const uint64_t ticket = b.next_ticket;
  SampleBuffers::Slot& slot = b.slots[ticket % kMaxUncollected];
  const SampleBuffers::Slot& prev = b.slots[(ticket - 1) % kMaxUncollected];

  // The previous launch's uploads must have read the pinned staging before it is rewritten
  // (and before any buffer is regrown).
  SGL_RETURN_IF_ERROR(staging_ready());
  const int32_t n_vocab = static_cast<int32_t>(c.n_vocab);
  const size_t max_words = (static_cast<size_t>(n_vocab) + 31) / 32;
  size_t words = 0;
  for (const SampleRow& r : rows)
    if (r.mask != nullptr) words += std::min<size_t>(static_cast<size_t>(r.mask_words), max_words);
  const size_t params_bytes = n_out * sizeof(cuda::SampleParams);
  const size_t bytes = params_bytes + words * 4;
  // Regrowth waits for the launch in flight: its kernels may still read the old blocks.
  if (b.bytes < bytes || slot.n_tokens < n_out)
    SGL_SAMPLE_CUDA_OK(cudaStreamSynchronize(s), "sampling buffers");
  if (b.bytes < bytes) {
    const size_t want = std::max(bytes, 2 * b.bytes) + 4096;
    if (b.host) cudaFreeHost(b.host);
    if (b.dev) cudaFree(b.dev);
    b.host = b.dev = nullptr;
    b.bytes = 0;
    SGL_SAMPLE_CUDA_OK(cudaMallocHost(&b.host, want), "sampling staging (pinned)");
    SGL_SAMPLE_CUDA_OK(cudaMalloc(&b.dev, want), "sampling staging (device)");
    b.bytes = want;
  }
  if (slot.n_tokens < n_out) {
    if (slot.tokens_host) cudaFreeHost(slot.tokens_host);
    if (slot.tokens_dev) cudaFree(slot.tokens_dev);
    slot.tokens_host = slot.tokens_dev = nullptr;
    slot.n_tokens = 0;
    const size_t want = std::max<size_t>(n_out, 256);
    SGL_SAMPLE_CUDA_OK(cudaMallocHost(&slot.tokens_host, want * 4), "sampled tokens (pinned)");
    SGL_SAMPLE_CUDA_OK(cudaMalloc(&slot.tokens_dev, want * 4), "sampled tokens (device)");
    slot.n_tokens = want;
  }
  if (!slot.done)
    SGL_SAMPLE_CUDA_OK(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming), "event");

  // One upload, before the forward pass (so that it is done when the batch upload is): the
  // parameter array, then every row's bitset (words past n_vocab are not sent).
  auto* params = static_cast<cuda::SampleParams*>(b.host);
  auto* mask_words = reinterpret_cast<uint32_t*>(static_cast<char*>(b.host) + params_bytes);
  size_t at = 0;
  for (size_t i = 0; i < n_out; ++i) {
    const SampleRow& r = rows[i];
    cuda::SampleParams p;
    p.u = r.u;
    p.temperature = r.temperature;
    p.top_p = r.top_p;
    p.min_p = r.min_p;
    p.top_k = r.top_k;
    p.vocab_limit = r.vocab_limit > 0 ? std::min(r.vocab_limit, n_vocab) : n_vocab;
    if (r.mask != nullptr) {
      const size_t nw = std::min<size_t>(static_cast<size_t>(r.mask_words), max_words);
      std::memcpy(mask_words + at, r.mask, nw * 4);
      p.mask_offset = static_cast<int32_t>(at);
      // Ids past the sent words stay masked: past mask_words by the contract, past n_vocab anyway.
      p.mask_words = static_cast<int32_t>(nw);
      at += nw;
    }
    params[i] = p;
  }
  if (bytes > 0)
    SGL_SAMPLE_CUDA_OK(cudaMemcpyAsync(b.dev, b.host, bytes, cudaMemcpyHostToDevice, s),
                       "sampling upload");
  if (batch.n_tokens() > 0) {
    future_src_ = allow_futures && b.last_n_out > 0 ? prev.tokens_dev : nullptr;
    const Status st = forward_device(batch);
    future_src_ = nullptr;
    SGL_RETURN_IF_ERROR(st);
  }
  if (n_out > 0) {
    const auto* dev_params = static_cast<const cuda::SampleParams*>(b.dev);
    const auto* dev_masks =
        reinterpret_cast<const uint32_t*>(static_cast<const char*>(b.dev) + params_bytes);
    cuda::launch_sample(logits_, logits_, static_cast<int>(n_out), n_vocab, dev_params, dev_masks,
                        slot.tokens_dev, s);
    SGL_SAMPLE_CUDA_OK(cudaGetLastError(), "sampling kernel");
    SGL_SAMPLE_CUDA_OK(cudaMemcpyAsync(slot.tokens_host, slot.tokens_dev, n_out * 4,
                                       cudaMemcpyDeviceToHost, s),
                       "sampled tokens download");
  }
  SGL_SAMPLE_CUDA_OK(cudaEventRecord(slot.done, s), "launch event");
  slot.n_out = static_cast<int32_t>(n_out);
  b.last_n_out = static_cast<int32_t>(n_out);
  ++b.next_ticket;
  return ticket;
}

Status CudaBackend::collect(uint64_t ticket, std::vector<int32_t>* tokens) {
  if (!sample_ || sample_->oldest == sample_->next_ticket || ticket != sample_->oldest)
    return invalid_argument("collect: ticket " + std::to_string(ticket) +
                            " is not the oldest uncollected launch");
  SampleBuffers& b = *sample_;
  SampleBuffers::Slot& slot = b.slots[ticket % kMaxUncollected];
  ++b.oldest;  // collected, whatever the outcome
  SGL_SAMPLE_CUDA_OK(cudaEventSynchronize(slot.done), "forward_sample");
  tokens->assign(slot.tokens_host, slot.tokens_host + slot.n_out);
  return Status::ok();
}

}  // namespace sgl::backend
