// Helpers of the CUDA tests: device buffers, bf16 conversions, the normalized error, and the skip
// rule (no CUDA in the build, or no GPU on the machine: GTEST_SKIP).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#ifdef SGL_WITH_CUDA
#include <cuda_runtime.h>
#endif

#include "support/fp16.h"

namespace sgl::cuda_test {

#ifdef SGL_WITH_CUDA
inline bool have_gpu() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

#define SGL_REQUIRE_GPU()                                             \
  do {                                                                \
    if (!::sgl::cuda_test::have_gpu()) GTEST_SKIP() << "no CUDA GPU"; \
  } while (0)

#define SGL_CUDA_ASSERT(call) \
  ASSERT_EQ((call), cudaSuccess) << cudaGetErrorString(cudaGetLastError())

// A device copy of a host vector (or an uninitialized buffer of n elements), freed on scope exit.
template <typename T>
class DevBuf {
 public:
  explicit DevBuf(size_t n) : n_(n) {
    if (cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) p_ = nullptr;
    // Poison: every output the kernels must write is checked, so 0xFF bytes (NaN) show omissions.
    if (p_) cudaMemset(p_, 0xFF, std::max<size_t>(n, 1) * sizeof(T));
  }
  explicit DevBuf(const std::vector<T>& v) : DevBuf(v.size()) {
    if (p_ && !v.empty()) cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  T* get() const { return static_cast<T*>(p_); }
  std::vector<T> host() const {
    std::vector<T> v(n_);
    cudaDeviceSynchronize();
    if (n_) cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};
#endif

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = fp32_to_bf16(v[i]);
  return o;
}
inline std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = bf16_to_fp32(v[i]);
  return o;
}
// Values exactly representable in bf16 (so CPU and GPU see the same inputs).
inline std::vector<float> bf16_round(const std::vector<float>& v) { return from_bf16(to_bf16(v)); }

// ||a - b|| / ||b|| (L2); +inf when any value of a is not finite.
inline double norm_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace sgl::cuda_test
