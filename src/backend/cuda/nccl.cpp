#include "backend/cuda/nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <shared_mutex>
#include <string>

namespace sgl::backend::cuda {

namespace {

// nccl.h's signatures, with ncclResult_t / ncclDataType_t / ncclRedOp_t as int and ncclComm_t /
// cudaStream_t as void* (the same ABI: C enums are int, both handles pointers).
using GetErrorStringFn = const char* (*)(int);
using GetVersionFn = int (*)(int*);
using CommInitAllFn = int (*)(void** comms, int ndev, const int* devlist);
using CommDestroyFn = int (*)(void* comm);
using CommAbortFn = int (*)(void* comm);
using AllReduceFn = int (*)(const void* send, void* recv, size_t count, int type, int op,
                            void* comm, void* stream);
constexpr int kNcclSuccess = 0;
constexpr int kNcclSum = 0;

struct Api {
  void* lib = nullptr;
  GetErrorStringFn get_error_string = nullptr;
  GetVersionFn get_version = nullptr;
  CommInitAllFn comm_init_all = nullptr;
  CommDestroyFn comm_destroy = nullptr;
  CommAbortFn comm_abort = nullptr;
  AllReduceFn all_reduce = nullptr;
  std::string error;  // why loading failed; empty when it worked
};

const Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("SGL_NCCL_LIBRARY");
    const std::string name = env != nullptr && *env != '\0' ? env : "libnccl.so.2";
    a.lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (a.lib == nullptr) {
      const char* why = dlerror();
      a.error = "tensor parallelism needs NCCL (libnccl.so.2), which could not be loaded (" +
                std::string(why ? why : name) +
                "); put its directory on LD_LIBRARY_PATH or set SGL_NCCL_LIBRARY=/path/to/"
                "libnccl.so.2 (pip's nvidia-nccl-cu13 has it under nvidia/nccl/lib)";
      return;
    }
    auto sym = [&](const char* s) { return dlsym(a.lib, s); };
    a.get_error_string = reinterpret_cast<GetErrorStringFn>(sym("ncclGetErrorString"));
    a.get_version = reinterpret_cast<GetVersionFn>(sym("ncclGetVersion"));
    a.comm_init_all = reinterpret_cast<CommInitAllFn>(sym("ncclCommInitAll"));
    a.comm_destroy = reinterpret_cast<CommDestroyFn>(sym("ncclCommDestroy"));
    a.comm_abort = reinterpret_cast<CommAbortFn>(sym("ncclCommAbort"));
    a.all_reduce = reinterpret_cast<AllReduceFn>(sym("ncclAllReduce"));
    if (!a.get_error_string || !a.get_version || !a.comm_init_all || !a.comm_destroy ||
        !a.comm_abort || !a.all_reduce)
      a.error = "tensor parallelism: " + name + " lacks an NCCL function this build needs";
  });
  return a;
}

Status nccl_error(const char* what, int r) {
  return internal_error(std::string("NCCL: ") + what + ": " + api().get_error_string(r));
}

}  // namespace

Result<int> nccl_version() {
  const Api& a = api();
  if (!a.error.empty()) return unsupported(a.error);
  int v = 0;
  if (int r = a.get_version(&v); r != kNcclSuccess) return nccl_error("version", r);
  return v;
}

struct NcclComms::State {
  std::vector<void*> comms;  // ncclComm_t
  // Shared by all_reduce_sum (which only enqueues), exclusive in abort(): a communicator is never
  // aborted under a call that is using it.
  mutable std::shared_mutex mu;
  bool aborted = false;
};

NcclComms::NcclComms() : s_(new State) {}
NcclComms::NcclComms(NcclComms&& o) noexcept : s_(std::move(o.s_)) { o.s_.reset(new State); }
NcclComms& NcclComms::operator=(NcclComms&& o) noexcept {
  if (this != &o) {
    release();
    s_ = std::move(o.s_);
    o.s_.reset(new State);
  }
  return *this;
}

NcclComms::~NcclComms() { release(); }

void NcclComms::release() {
  if (s_ == nullptr) return;
  if (!s_->aborted)
    for (void* c : s_->comms)
      if (c != nullptr) api().comm_destroy(c);
  s_->comms.clear();
}

Result<NcclComms> NcclComms::create(const std::vector<int>& devices) {
  const Api& a = api();
  if (!a.error.empty()) return unsupported(a.error);
  if (devices.empty()) return invalid_argument("NCCL: no devices");
  NcclComms c;
  c.s_->comms.assign(devices.size(), nullptr);
  if (int r = a.comm_init_all(c.s_->comms.data(), static_cast<int>(devices.size()), devices.data());
      r != kNcclSuccess) {
    c.s_->comms.clear();
    return nccl_error("communicator init", r);
  }
  return c;
}

int NcclComms::size() const { return static_cast<int>(s_->comms.size()); }

Status NcclComms::all_reduce_sum(int rank, void* data, size_t count, NcclType type,
                                 void* stream) const {
  std::shared_lock<std::shared_mutex> lock(s_->mu);
  if (s_->aborted) return internal_error("NCCL: the communicators were aborted after an error");
  if (rank < 0 || rank >= size()) return internal_error("NCCL: bad rank");
  if (int r = api().all_reduce(data, data, count, static_cast<int>(type), kNcclSum, s_->comms[rank],
                               stream);
      r != kNcclSuccess)
    return nccl_error("all-reduce", r);
  return Status::ok();
}

void NcclComms::abort() {
  std::unique_lock<std::shared_mutex> lock(s_->mu);
  if (s_->aborted) return;
  s_->aborted = true;
  for (void* c : s_->comms)
    if (c != nullptr) api().comm_abort(c);
}

}  // namespace sgl::backend::cuda
