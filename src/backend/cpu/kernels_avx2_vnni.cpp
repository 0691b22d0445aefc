// AVX2 + AVX-VNNI kernels (vpdpbusd on 256-bit vectors); otherwise identical to kernels_avx2.cpp.
// The code lives in kernels_avx2_body.h; this file fixes the target and the variant.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backend/cpu/kernel_table.h"
#include "model/quant.h"
#include "support/fp16.h"

#if defined(__x86_64__)

#include <immintrin.h>

#pragma GCC push_options
// GCC 12 intrinsic headers read _mm*_undefined_*() values and warn about it (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx2,fma,f16c,bmi,bmi2,avxvnni")

namespace sgl::backend::cpu::detail {
namespace {

constexpr bool kVnni = true;

#include "backend/cpu/kernels_avx2_body.h"

}  // namespace

const KernelTable& avx2_vnni_kernels() {
  static const KernelTable table = make_table();
  return table;
}

}  // namespace sgl::backend::cpu::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif  // __x86_64__
