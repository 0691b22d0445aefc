// Matrix multiply of f32 activations by weights in any GGUF storage type, on the CPU.
//
// y[t][r] = sum_i W[r][i] * x[t][i] for each token row t and weight row r. Weights stay in their
// file format (quantized blocks, f16, bf16, f32), addressed through a WeightView, except that
// Q4_1 and Q8_0 matrices are repacked once at load (PackedWeights) into panels of 16 interleaved
// rows where the ISA has kernels for them (AVX-512 VNNI). For quantized weights each activation
// row is quantized once per call to int8 blocks (per 32 values for the 32-block formats, in
// llama.cpp's Q8_1 / Q8_0 block format for panels; per 256 for the K formats) and multiplied with
// exact integer dot products (AVX-512 VNNI vpdpbusd, AVX-VNNI, or AVX2 maddubs), then scaled in
// f32. Weights are streamed once per call for the whole batch (tiles of weight rows x tokens),
// so decoding a batch of 16-64 tokens costs little more memory bandwidth than one.
//
// Guarantees (on a given ISA path, see isa.h):
//   - batch invariance: y[t] is bit-identical whatever other rows are in x, however many tokens
//     there are, and whatever the thread count and the task split;
//   - panels: bit-identical on every ISA path (the portable reference defines the arithmetic);
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

// How a weight matrix is laid out in memory.
enum class WeightLayout : uint8_t {
  kRows,    // the file's layout: row r at data + r * row_stride
  kPanels,  // repacked by PackedWeights: 16 rows interleaved per panel (Q4_1, Q8_0)
};

// A weight matrix [n_out, n_in] in storage type `type`; row r starts at data + r * row_stride
// (kRows), or lies in panel r / 16 at data + (r / 16) * row_stride (kPanels).
struct WeightView {
  model::GgmlType type = model::GgmlType::kF32;
  int64_t n_out = 0;  // rows (output features)
  int64_t n_in = 0;   // elements per row (input features)
  const void* data = nullptr;
  size_t row_stride = 0;  // bytes between rows (panels); 0 means the packed row (panel) size
  WeightLayout layout = WeightLayout::kRows;
};

// Weights repacked at load into the panel layout that the fastest kernels read: 16 rows
// interleaved so that one vector operation scales and accumulates 16 rows' results at once,
// and one unpacking of the weights serves a tile of up to 8 tokens (see kernel_table.h for the
// byte layout). Owns the repacked copy (the same number of bytes as the original rows, the last
// panel padded to 16 rows), so the original tensor is no longer read. Move-only.
//
// Numerics: Q4_1 and Q8_0 panels take activations quantized like llama.cpp's Q8_1 / Q8_0 blocks
// (int8 q per 32 values, f16 d and f16 d * sum(q)): y = sum over blocks of
// d_w * d_x * sum(q_w * q_x) [+ m_w * s_x for Q4_1], each block's integer sum exact.
class PackedWeights {
 public:
  PackedWeights() = default;
  // Packs `w` (kRows) when the current ISA has its own panel kernel for w.type and n_in is a
  // multiple of 32; otherwise view() is `w` itself and nothing is allocated or copied.
  explicit PackedWeights(const WeightView& w);
  ~PackedWeights();
  PackedWeights(PackedWeights&& other) noexcept;
  PackedWeights& operator=(PackedWeights&& other) noexcept;
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;

  const WeightView& view() const { return view_; }
  bool packed() const { return data_ != nullptr; }
  // Bytes held by the repacked copy (0 when not packed).
  size_t bytes() const { return bytes_; }

  // Packs even when the current ISA would not (every ISA can read panels); for tests.
  static PackedWeights force(const WeightView& w);
  // True iff `type` has a panel layout.
  static bool has_panels(model::GgmlType type);

 private:
  WeightView view_;
  uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
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

  // A 64-byte aligned buffer of at least `bytes` for activation format `slot` (0..4); contents
  // are kept only until the next call for the same slot.
  uint8_t* buffer(int slot, size_t bytes);
  // Total bytes held.
  size_t capacity() const;

 private:
  static constexpr int kSlots = 5;
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
