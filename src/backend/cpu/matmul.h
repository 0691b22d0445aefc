// Matrix multiply of f32 activations by weights in any GGUF storage type, on the CPU.
//
// y[t][r] = sum_i W[r][i] * x[t][i] for each token row t and weight row r. Weights stay in their
// file format (quantized blocks, f16, bf16, f32), addressed through a WeightView. For quantized
// weights each activation row is quantized once per call to int8 blocks (per 32 values for the
// 32-block formats, per 256 for the K formats) and multiplied with exact integer dot products
// (AVX-512 VNNI vpdpbusd, AVX-VNNI, or AVX2 maddubs), then scaled in f32. Weights are streamed
// once per call for the whole batch (tiles of weight rows x tokens), so decoding a batch of 16-64
// tokens costs little more memory bandwidth than one.
//
// Guarantees (on a given ISA path, see isa.h):
//   - batch invariance: y[t] is bit-identical whatever other rows are in x, however many tokens
//     there are, and whatever the thread count and the task split;
//   - no allocation per call in steady state (a MatmulWorkspace grows to the largest call and is
//     reused).
// Error: int8 activation quantization gives a relative error of order 1e-3 of |W| |x| per
// element compared with an exact f32 product of the dequantized weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "model/ggml_type.h"

namespace sgl {
class ThreadPool;
}

namespace sgl::backend::cpu {

// A weight matrix [n_out, n_in] in storage type `type`; row r starts at data + r * row_stride.
struct WeightView {
  model::GgmlType type = model::GgmlType::kF32;
  int64_t n_out = 0;  // rows (output features)
  int64_t n_in = 0;   // elements per row (input features)
  const void* data = nullptr;
  size_t row_stride = 0;  // bytes between rows; 0 means the packed row size
};

// Reusable scratch for activation quantization. Move-only; not shared between concurrent calls.
class MatmulWorkspace {
 public:
  MatmulWorkspace() = default;
  ~MatmulWorkspace();
  MatmulWorkspace(MatmulWorkspace&& other) noexcept;
  MatmulWorkspace& operator=(MatmulWorkspace&& other) noexcept;
  MatmulWorkspace(const MatmulWorkspace&) = delete;
  MatmulWorkspace& operator=(const MatmulWorkspace&) = delete;

  // A 64-byte aligned buffer of at least `bytes` for activation format `slot` (0..3); contents
  // are kept only until the next call for the same slot.
  uint8_t* buffer(int slot, size_t bytes);
  // Total bytes held.
  size_t capacity() const;

 private:
  static constexpr int kSlots = 4;
  uint8_t* buf_[kSlots] = {};
  size_t cap_[kSlots] = {};
};

// True iff matmul() accepts weights of `type` (F32, F16, BF16 and every quantized type that
// model::dequantize_row handles; Q2_K..Q6_K, Q4_0..Q8_1 have integer kernels).
bool matmul_supported(model::GgmlType type);

// y [n_tokens, w.n_out] = x [n_tokens, w.n_in] * W^T.
// REQUIRES: matmul_supported(w.type); w.n_in is a multiple of the type's block size;
// x and y do not overlap. pool may be null (runs on the caller); ws may be null (a thread-local
// workspace is used).
void matmul(const WeightView& w, const float* x, float* y, int n_tokens, ThreadPool* pool,
            MatmulWorkspace* ws = nullptr);

// One of several products of the same activations: y [n_tokens, ldy] gets w's n_out columns.
struct MatmulOutput {
  WeightView w;
  float* y = nullptr;
  size_t ldy = 0;  // floats between token rows of y; 0 means w.n_out
};

// Applies several weights with the same n_in to the same x (e.g. Q, K and V, or gate and up):
// the activations are quantized once per format and all products run in one parallel dispatch.
// x is [n_tokens, ldx] (ldx 0 = n_in). Each output is bit-identical to a matmul() call with it
// alone.
void matmul_multi(std::span<const MatmulOutput> outs, const float* x, size_t ldx, int n_tokens,
                  ThreadPool* pool, MatmulWorkspace* ws = nullptr);

}  // namespace sgl::backend::cpu
