#include "backend/factory.h"

#include <charconv>

#include "backend/cpu_backend.h"
#ifdef SGL_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/tp_backend.h"
#endif

namespace sgl::backend {

namespace {

// "cuda" -> 0, "cuda:N" -> N; nullopt-like -1 for anything else.
int cuda_index(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) != 0) return -1;
  int i = -1;
  const char* b = device.data() + 5;
  const char* e = device.data() + device.size();
  auto [p, ec] = std::from_chars(b, e, i);
  return ec == std::errc() && p == e && b != e ? i : -1;
}

#ifndef SGL_WITH_CUDA
Status no_cuda() {
  return unsupported(
      "--device cuda: this build has no CUDA backend (built without CUDA; configure with "
      "-DSGL_CUDA=ON)");
}
#endif

#ifdef SGL_WITH_CUDA
CudaBackendOptions cuda_options(const BackendOptions& o, int index) {
  CudaBackendOptions c;
  c.device = index;
  c.kv_dtype = o.kv_dtype;
  c.dtype = o.dtype;
  c.kv_capacity = o.kv_capacity;
  c.mem_fraction_static = o.mem_fraction_static;
  c.progress = o.progress;
  return c;
}
#endif

Status check_tp(const BackendOptions& o) {
  if (o.tp_size < 1)
    return invalid_argument("--tp-size must be at least 1, got " + std::to_string(o.tp_size));
  if (o.tp_size > 1 && o.device == "cpu")
    return invalid_argument("--tp-size " + std::to_string(o.tp_size) +
                            ": tensor parallelism needs --device cuda (the CPU backend runs on "
                            "one process's threads: use --tp-size 1)");
  return Status::ok();
}

}  // namespace

bool cuda_compiled() {
#ifdef SGL_WITH_CUDA
  return true;
#else
  return false;
#endif
}

Result<std::unique_ptr<Backend>> create_backend(const models::LoadedModel& model,
                                                const BackendOptions& options) {
  SGL_RETURN_IF_ERROR(check_tp(options));
  if (options.device == "cpu") {
    if (options.dtype != WeightDtype::kAuto)
      return invalid_argument("--dtype " + std::string(weight_dtype_name(options.dtype)) +
                              ": the CPU backend computes on the checkpoint's own weight types "
                              "and takes only --dtype auto (--dtype is for --device cuda)");
    CpuBackendOptions c;
    c.n_threads = options.n_threads;
    c.kv_dtype = options.kv_dtype;
    c.kv_capacity = options.kv_capacity;
    SGL_ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> b, CpuBackend::create(model, c));
    return std::unique_ptr<Backend>(std::move(b));
  }
  const int index = cuda_index(options.device);
  if (index < 0)
    return invalid_argument("unknown device '" + options.device +
                            "' (expected cpu, cuda or cuda:N)");
#ifdef SGL_WITH_CUDA
  if (options.tp_size > 1) {
    SGL_ASSIGN_OR_RETURN(
        std::unique_ptr<TpCudaBackend> tp,
        TpCudaBackend::create(model, cuda_options(options, index), options.tp_size));
    return std::unique_ptr<Backend>(std::move(tp));
  }
  SGL_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b,
                       CudaBackend::create(model, cuda_options(options, index)));
  return std::unique_ptr<Backend>(std::move(b));
#else
  return no_cuda();
#endif
}

Result<std::unique_ptr<Backend>> create_dummy_backend(const model::ModelConfig& config,
                                                      const BackendOptions& options,
                                                      uint64_t seed) {
  SGL_RETURN_IF_ERROR(check_tp(options));
  const int index = cuda_index(options.device);
  if (index < 0)
    return invalid_argument("--load-format dummy needs --device cuda (got '" + options.device +
                            "')");
#ifdef SGL_WITH_CUDA
  if (options.tp_size > 1) {
    SGL_ASSIGN_OR_RETURN(
        std::unique_ptr<TpCudaBackend> tp,
        TpCudaBackend::create_dummy(config, cuda_options(options, index), options.tp_size, seed));
    return std::unique_ptr<Backend>(std::move(tp));
  }
  SGL_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b,
                       CudaBackend::create_dummy(config, cuda_options(options, index), seed));
  return std::unique_ptr<Backend>(std::move(b));
#else
  (void)config;
  (void)seed;
  return no_cuda();
#endif
}

}  // namespace sgl::backend
