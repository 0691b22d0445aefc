#include "backend/cuda/tp_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "backend/cuda/nccl.h"

namespace sgl::backend {

namespace {

// One persistent thread per rank. run(job) runs job(r) on thread r for every r and waits for all;
// a rank's CUDA calls thus always come from the same thread.
class RankThreads {
 public:
  explicit RankThreads(int n) : results_(n) {
    for (int r = 0; r < n; ++r) threads_.emplace_back([this, r] { loop(r); });
  }
  ~RankThreads() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    start_.notify_all();
    for (auto& t : threads_) t.join();
  }
  RankThreads(const RankThreads&) = delete;
  RankThreads& operator=(const RankThreads&) = delete;

  // The first failing rank's error (lowest rank), else ok.
  Status run(const std::function<Status(int)>& job) {
    std::unique_lock<std::mutex> lock(mu_);
    job_ = &job;
    pending_ = static_cast<int>(threads_.size());
    ++generation_;
    start_.notify_all();
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    for (Status& s : results_)
      if (!s.is_ok()) return s;
    return Status::ok();
  }

 private:
  void loop(int r) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<Status(int)>* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu_);
        start_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      Status s = (*job)(r);
      {
        std::lock_guard<std::mutex> lock(mu_);
        results_[r] = std::move(s);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<Status(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<Status> results_;
  std::vector<std::thread> threads_;
};

}  // namespace

struct TpCudaBackend::Impl {
  cuda::NcclComms comms;
  std::unique_ptr<RankThreads> threads;
};

TpCudaBackend::TpCudaBackend() : impl_(new Impl) {}

TpCudaBackend::~TpCudaBackend() {
  // The threads are idle between calls; stop them, free each rank (it synchronizes its stream),
  // then the communicators.
  impl_->threads.reset();
  ranks_.clear();
  impl_.reset();
}

const model::ModelConfig& TpCudaBackend::config() const { return ranks_[0]->config(); }

Result<std::unique_ptr<TpCudaBackend>> TpCudaBackend::build(const model::ModelConfig& config,
                                                            const models::LoadedModel* model,
                                                            const CudaBackendOptions& options,
                                                            int tp_size, uint64_t seed) {
  if (tp_size < 2) return invalid_argument("TpCudaBackend: --tp-size must be at least 2");
  // The split is checked before any GPU or NCCL work, so a bad one is a plain error anywhere.
  if (config.n_head % tp_size != 0 || config.n_head_kv % tp_size != 0 || config.n_ff % tp_size != 0)
    return invalid_argument(
        "--tp-size " + std::to_string(tp_size) + " must divide the model's attention heads (" +
        std::to_string(config.n_head) + "), KV heads (" + std::to_string(config.n_head_kv) +
        ") and MLP width (" + std::to_string(config.n_ff) + ")");
  int n_dev = 0;
  if (cudaGetDeviceCount(&n_dev) != cudaSuccess) {
    cudaGetLastError();
    n_dev = 0;
  }
  if (options.device < 0 || options.device + tp_size > n_dev)
    return invalid_argument("--tp-size " + std::to_string(tp_size) + " from GPU " +
                            std::to_string(options.device) + " needs GPUs " +
                            std::to_string(options.device) + ".." +
                            std::to_string(options.device + tp_size - 1) + ", but " +
                            std::to_string(n_dev) + " are visible");
  std::vector<int> devices(tp_size);
  for (int r = 0; r < tp_size; ++r) devices[r] = options.device + r;

  std::unique_ptr<TpCudaBackend> tp(new TpCudaBackend());
  SGL_ASSIGN_OR_RETURN(tp->impl_->comms, cuda::NcclComms::create(devices));
  tp->impl_->threads = std::make_unique<RankThreads>(tp_size);
  tp->ranks_.resize(tp_size);
  const char* genv = std::getenv("SGL_CUDA_TP_GRAPHS");
  const bool graphs = options.cuda_graphs && genv != nullptr && std::string(genv) == "1";
  const cuda::NcclComms* comms = &tp->impl_->comms;
  // The ranks load in parallel, each on its own thread (which stays its thread).
  SGL_RETURN_IF_ERROR(tp->impl_->threads->run([&](int r) -> Status {
    CudaBackendOptions o = options;
    o.device = devices[r];
    o.tp_rank = r;
    o.tp_size = tp_size;
    o.progress = options.progress && r == 0;
    o.cuda_graphs = graphs;
    o.all_reduce = [comms, r](float* data, size_t count, void* stream) {
      return comms->all_reduce_sum(r, data, count, cuda::NcclType::kFloat32, stream);
    };
    if (model != nullptr) {
      SGL_ASSIGN_OR_RETURN(tp->ranks_[r], CudaBackend::create(*model, o));
    } else {
      SGL_ASSIGN_OR_RETURN(tp->ranks_[r], CudaBackend::create_dummy(config, o, seed));
    }
    return Status::ok();
  }));
  tp->kv_capacity_ = tp->ranks_[0]->kv_capacity();
  for (const auto& b : tp->ranks_) tp->kv_capacity_ = std::min(tp->kv_capacity_, b->kv_capacity());
  return tp;
}

Result<std::unique_ptr<TpCudaBackend>> TpCudaBackend::create(const models::LoadedModel& model,
                                                             const CudaBackendOptions& options,
                                                             int tp_size) {
  return build(model.config, &model, options, tp_size, 0);
}

Result<std::unique_ptr<TpCudaBackend>> TpCudaBackend::create_dummy(
    const model::ModelConfig& config, const CudaBackendOptions& options, int tp_size,
    uint64_t seed) {
  return build(config, nullptr, options, tp_size, seed);
}

Status TpCudaBackend::run(const ForwardBatch& batch,
                          const std::function<Status(CudaBackend&)>& rank0) {
  if (!failed_.is_ok()) return failed_;
  // Checked here with the smallest pool, so that no rank refuses a batch the others run.
  SGL_RETURN_IF_ERROR(batch.validate(kv_capacity_, static_cast<int32_t>(config().n_vocab)));
  Status st = impl_->threads->run([&](int r) -> Status {
    Status s = r == 0 ? rank0(*ranks_[0]) : ranks_[r]->forward_no_output(batch);
    // A rank that stops mid-pass leaves the others waiting in an all-reduce it will never join:
    // aborting the communicators ends those waits (their passes then fail too).
    if (!s.is_ok()) impl_->comms.abort();
    return s;
  });
  if (!st.is_ok())
    failed_ = Status(st.code(), "tensor parallelism: a rank failed, the backend is stopped (" +
                                    st.message() + ")");
  return st;
}

Status TpCudaBackend::forward(const ForwardBatch& batch, Logits* logits) {
  return run(batch, [&](CudaBackend& b) { return b.forward(batch, logits); });
}

Status TpCudaBackend::forward_greedy(const ForwardBatch& batch, std::vector<int32_t>* tokens) {
  return run(batch, [&](CudaBackend& b) { return b.forward_greedy(batch, tokens); });
}

Status TpCudaBackend::forward_sample(const ForwardBatch& batch, std::span<const SampleRow> rows,
                                     std::vector<int32_t>* tokens) {
  SGL_RETURN_IF_ERROR(CudaBackend::check_sample_rows(batch, rows));
  return run(batch, [&](CudaBackend& b) { return b.forward_sample(batch, rows, tokens); });
}

}  // namespace sgl::backend
