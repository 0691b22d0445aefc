// Instruction-set selection for the CPU kernels.
//
// Every kernel exists in up to four variants: scalar (portable C++), AVX2+FMA+F16C, the same
// with AVX-VNNI, and AVX-512 (F/BW/VL/DQ + VNNI). Each x86 variant is compiled with function
// target pragmas, so one binary runs on any x86-64 CPU; the best variant the CPU supports is
// picked once (CPUID via __builtin_cpu_supports), unless the environment variable
// SGL_CPU_ISA=scalar|avx2|avx2vnni|avx512 or set_isa() says otherwise. On other architectures
// only the scalar variant exists.
//
// Results within one ISA are deterministic and batch invariant; results differ slightly between
// ISAs for the 32-block quantized matmuls and float ops (different float summation orders). The
// K-quant matmuls, the panel matmuls (Q4_1 / Q8_0 weights repacked at load, see matmul.h) and
// the activation quantization are bit-identical across ISAs, and avx2 and avx2vnni always agree
// bit for bit (the integer dot products are exact either way). Weights are repacked into panels
// only when the ISA chosen at load has its own panel kernels (AVX-512), so a backend created on
// another ISA keeps the row kernels and their arithmetic.
#pragma once

#include <optional>
#include <string_view>

namespace sgl::backend::cpu {

enum class Isa : int {
  kScalar = 0,
  kAvx2 = 1,      // AVX2 + FMA + F16C
  kAvx2Vnni = 2,  // the above + AVX-VNNI (vpdpbusd on ymm)
  kAvx512 = 3,    // AVX-512 F/BW/VL/DQ + VNNI
};

std::string_view isa_name(Isa isa);
std::optional<Isa> parse_isa(std::string_view name);

// True iff this CPU (and this build) can run `isa`.
bool isa_supported(Isa isa);
// The best ISA this CPU supports.
Isa best_isa();

// The ISA the kernels use now: set_isa()'s choice, else SGL_CPU_ISA (if supported; an
// unsupported or unknown value is logged and ignored), else best_isa().
Isa current_isa();
// Switches every kernel to `isa`. Returns false (and changes nothing) if it is not supported.
// Not thread-safe with respect to kernels running concurrently: call it between forward passes
// (tests use it to run each path).
bool set_isa(Isa isa);

}  // namespace sgl::backend::cpu
