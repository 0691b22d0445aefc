// Quantized block formats exactly as ggml stores them in GGUF files, plus scalar reference
// conversions: dequantize_row() for every float and quantized type we read, quantize_row() for
// the types tests and synthetic ("dummy") models need to create.
//
// The structs are byte-for-byte images of ggml's blocks (fp16 fields as raw uint16_t, no
// padding; static_asserts pin the sizes to ggml_type.h). The reference code is written for
// clarity, not speed: the fast paths live in backend/cpu and are tested against this file.
//
// Element order inside the blocks (see docs in each struct): every "32-block" format stores the
// low nibbles/bytes of elements 0..15 and the high nibbles of elements 16..31 in the same bytes;
// the K formats group 256 elements into sub-blocks with their own packed scales.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/ggml_type.h"

namespace sgl::model {

inline constexpr int kQK = 32;    // elements per block of the 32-block formats
inline constexpr int kQKK = 256;  // elements per super-block of the K formats

// value = (nibble - 8) * d; nibble of element j (j < 16) is qs[j] & 15, of element j + 16 is
// qs[j] >> 4.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// value = nibble * d + m, nibbles as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// value = (q - 16) * d, q = nibble | (bit j of qh) << 4 (qh is a little-endian u32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// value = q * d + m, q as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// value = qs[j] * d.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// As Q8_0 plus s = d * sum(qs) (used by ggml for activations).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};
// 16 groups of 16; scales[g]: low 4 bits scale, high 4 bits min;
// value = d * (sc & 15) * q - dmin * (sc >> 4), q = 2 bits. Element 128n + 32j + l is bits
// 2j..2j+1 of qs[32n + l]; its group is 8n + 2j + (l >= 16).
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};
// 16 groups of 16 with 6-bit scales (packed in 12 bytes, stored +32);
// value = d * (sc - 32) * (low2 + 4 * hbit - 4). Element 128n + 32j + l: low2 = bits 2j..2j+1 of
// qs[32n + l], hbit = bit 4n + j of hmask[l]; group 8n + 2j + (l >= 16).
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
// 8 groups of 32 with 6-bit scales and mins (packed in 12 bytes);
// value = d * sc * q - dmin * m. Element 64c + l (l < 32) is qs[32c + l] & 15 (group 2c),
// element 64c + 32 + l is qs[32c + l] >> 4 (group 2c + 1).
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
// As Q4_K with a fifth bit: element 64c + l takes bit 2c of qh[l], element 64c + 32 + l bit 2c+1.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// 16 groups of 16 with int8 scales; value = d * sc * (q - 32), q = 6 bits. Element
// 128n + 32k + l (k < 4, l < 32): low 4 bits from ql[64n + l + 32 * (k & 1)] (low nibble for
// k < 2, high nibble otherwise), high 2 bits = bits 2k..2k+1 of qh[32n + l]; group
// 8n + 2k + l / 16.
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
// value = qs[j] * d (d is f32); bsums[g] = sum of qs[16g .. 16g + 15].
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// True iff dequantize_row() handles `type`: F32, F16, BF16, F64 and every quantized type above.
bool can_dequantize(GgmlType type);
// True iff quantize_row() handles `type`: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
bool can_quantize(GgmlType type);

// Decodes `n` elements of `type` starting at `src` (a row of whole blocks) into `dst`.
// REQUIRES: can_dequantize(type); n is a multiple of the type's block size.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Encodes `n` floats into blocks of `type` at `dst` (ggml_row_size(type, n) bytes). Simple
// round-to-nearest quantizers (no importance weighting): good for tests and random-weight
// models, not a replacement for llama.cpp's quantize tool.
// REQUIRES: can_quantize(type); n is a multiple of the type's block size; finite inputs.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// The 6-bit scale and min of group j (0..7) of a Q4_K/Q5_K `scales` array.
inline void unpack_scale_min_k4(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// The 6-bit biased scale (0..63, value is this minus 32) of group i (0..15) of a Q3_K block.
inline int unpack_scale_q3_k(int i, const uint8_t* scales) {
  const int low = i < 8 ? (scales[i] & 0xF) : (scales[i - 8] >> 4);
  const int high = (scales[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
  return low | (high << 4);
}

}  // namespace sgl::model
