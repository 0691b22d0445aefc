#include "backend/cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "backend/cpu/kernel_table.h"
#include "support/log.h"

#if defined(__x86_64__) && defined(__clang__) && __clang_major__ < 15
#include <cpuid.h>
// clang 14 (the fuzz/sanitizer toolchain, scripts/fuzz.sh) does not know "f16c" and "avxvnni" in
// __builtin_cpu_supports; read the CPUID bits instead (leaf 1 ECX[29]; leaf 7.1 EAX[4]).
static bool sgl_cpuid_bit(unsigned leaf, unsigned sub, int reg, int bit) {
  unsigned r[4] = {0, 0, 0, 0};
  if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1;
}
#define SGL_CPU_HAS_F16C() sgl_cpuid_bit(1, 0, 2, 29)
#define SGL_CPU_HAS_AVXVNNI() sgl_cpuid_bit(7, 1, 0, 4)
#else
#define SGL_CPU_HAS_F16C() __builtin_cpu_supports("f16c")
#define SGL_CPU_HAS_AVXVNNI() __builtin_cpu_supports("avxvnni")
#endif

namespace sgl::backend::cpu {
namespace {

bool cpu_has(Isa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    SGL_CPU_HAS_F16C();
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvx2Vnni:
      return avx2 && SGL_CPU_HAS_AVXVNNI();
    case Isa::kAvx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

const detail::KernelTable& table_for(Isa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case Isa::kAvx2:
      return detail::avx2_kernels();
    case Isa::kAvx2Vnni:
      return detail::avx2_vnni_kernels();
    case Isa::kAvx512:
      return detail::avx512_kernels();
    case Isa::kScalar:
      break;
  }
#endif
  return detail::scalar_kernels();
}

Isa initial_isa() {
  if (const char* env = std::getenv("SGL_CPU_ISA"); env != nullptr && *env != '\0') {
    const auto isa = parse_isa(env);
    if (!isa) {
      SGL_LOG(kWarn, std::string("SGL_CPU_ISA=") + env +
                         " is not one of scalar|avx2|avx2vnni|avx512; ignored");
    } else if (!isa_supported(*isa)) {
      SGL_LOG(kWarn, std::string("SGL_CPU_ISA=") + env + " is not supported by this CPU; ignored");
    } else {
      return *isa;
    }
  }
  return best_isa();
}

std::atomic<const detail::KernelTable*>& table_ptr() {
  static std::atomic<const detail::KernelTable*> ptr{&table_for(initial_isa())};
  return ptr;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx2Vnni:
      return "avx2vnni";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

std::optional<Isa> parse_isa(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512})
    if (name == isa_name(isa)) return isa;
  return std::nullopt;
}

bool isa_supported(Isa isa) {
  static const bool supported[4] = {cpu_has(Isa::kScalar), cpu_has(Isa::kAvx2),
                                    cpu_has(Isa::kAvx2Vnni), cpu_has(Isa::kAvx512)};
  const int i = static_cast<int>(isa);
  return i >= 0 && i < 4 && supported[i];
}

Isa best_isa() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2Vnni, Isa::kAvx2})
    if (isa_supported(isa)) return isa;
  return Isa::kScalar;
}

Isa current_isa() { return table_ptr().load(std::memory_order_acquire)->isa; }

bool set_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  table_ptr().store(&table_for(isa), std::memory_order_release);
  return true;
}

namespace detail {
const KernelTable& kernels() { return *table_ptr().load(std::memory_order_acquire); }
}  // namespace detail

}  // namespace sgl::backend::cpu
