// Helpers shared by the CPU kernel tests: deterministic random data, random weight matrices in
// every storage type, and a scope guard that runs a test body on one ISA path.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/isa.h"
#include "backend/cpu/matmul.h"
#include "model/ggml_type.h"
#include "model/quant.h"
#include "support/fp16.h"

namespace sgl::backend::cpu::testing {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline size_t row_bytes(model::GgmlType type, int64_t n) {
  return static_cast<size_t>(*model::ggml_row_size(type, static_cast<uint64_t>(n)));
}

// A weight matrix [n_out, n_in] of `type`, made by quantizing random floats row by row.
struct Weights {
  model::GgmlType type;
  int64_t n_out = 0, n_in = 0;
  size_t stride = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> dequant;  // [n_out, n_in] exact f32 value of each stored weight

  const void* data() const { return bytes.data(); }
};

inline WeightView view(const Weights& w) { return {w.type, w.n_out, w.n_in, w.data(), w.stride}; }

inline void fill_dequant(Weights* w) {
  w->dequant.resize(static_cast<size_t>(w->n_out * w->n_in));
  for (int64_t r = 0; r < w->n_out; ++r)
    model::dequantize_row(w->type, w->bytes.data() + r * w->stride, w->dequant.data() + r * w->n_in,
                          w->n_in);
}

// `pad` extra bytes after each row exercise row_stride > row size.
inline Weights make_weights(model::GgmlType type, int64_t n_out, int64_t n_in, uint32_t seed,
                            size_t pad = 0) {
  Weights w{type, n_out, n_in, row_bytes(type, n_in) + pad, {}, {}};
  w.bytes.assign(w.stride * static_cast<size_t>(n_out), 0xAB);
  const auto src = random_floats(static_cast<size_t>(n_out * n_in), seed);
  for (int64_t r = 0; r < n_out; ++r)
    model::quantize_row(type, src.data() + r * n_in, w.bytes.data() + r * w.stride, n_in);
  fill_dequant(&w);
  return w;
}

// Random block payloads (every bit pattern of the quants, incl. Q8_0's -128 and Q6_K's -128
// scales) with sane positive fp16 scales, so kernels see inputs quantize_row never makes.
inline Weights make_random_payload_weights(model::GgmlType type, int64_t n_out, int64_t n_in,
                                           uint32_t seed) {
  using model::GgmlType;
  Weights w{type, n_out, n_in, row_bytes(type, n_in), {}, {}};
  std::mt19937 rng(seed);
  w.bytes.resize(w.stride * static_cast<size_t>(n_out));
  for (auto& b : w.bytes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  const auto& tr = model::ggml_type_traits(type);
  auto put_h = [&](uint8_t* p) {
    const uint16_t h = fp32_to_fp16(scale(rng));
    std::memcpy(p, &h, 2);
  };
  const int64_t nb_total = static_cast<int64_t>(w.bytes.size()) / tr.type_size;
  for (int64_t i = 0; i < nb_total; ++i) {
    uint8_t* b = w.bytes.data() + i * tr.type_size;
    switch (type) {
      case GgmlType::kQ4_0:
      case GgmlType::kQ5_0:
      case GgmlType::kQ8_0:
        put_h(b);
        break;
      case GgmlType::kQ4_1:
      case GgmlType::kQ5_1:
      case GgmlType::kQ8_1:
        put_h(b);
        put_h(b + 2);
        break;
      case GgmlType::kQ2_K:
        put_h(b + 80);
        put_h(b + 82);
        break;
      case GgmlType::kQ3_K:
        put_h(b + 108);
        break;
      case GgmlType::kQ4_K:
      case GgmlType::kQ5_K:
        put_h(b);
        put_h(b + 2);
        break;
      case GgmlType::kQ6_K:
        put_h(b + 208);
        break;
      case GgmlType::kQ8_K: {
        const float d = scale(rng);
        std::memcpy(b, &d, 4);
        break;
      }
      default:
        break;
    }
  }
  fill_dequant(&w);
  return w;
}

// Runs the enclosing scope on `isa`, restoring the previous ISA at exit.
class IsaScope {
 public:
  explicit IsaScope(Isa isa) : prev_(current_isa()) { ok_ = set_isa(isa); }
  ~IsaScope() { set_isa(prev_); }
  bool ok() const { return ok_; }

 private:
  Isa prev_;
  bool ok_ = false;
};

inline std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512})
    if (isa_supported(isa)) v.push_back(isa);
  return v;
}

inline std::string isa_str(Isa isa) { return std::string(isa_name(isa)); }

}  // namespace sgl::backend::cpu::testing
