#include "backend/cpu/ops.h"

#include <cmath>

#include "backend/cpu/kernel_table.h"
#include "model/quant.h"
#include "support/check.h"

namespace sgl::backend::cpu {

void rms_norm(const float* x, const float* w, float* y, int n_rows, int64_t n, float eps) {
  const auto& kt = detail::kernels();
  for (int r = 0; r < n_rows; ++r) {
    kt.rms_norm(x + static_cast<size_t>(r) * n, w, y + static_cast<size_t>(r) * n, n, eps);
  }
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  detail::kernels().silu_mul(gate, up, y, n);
}

void softmax(float* x, int64_t n) { detail::kernels().softmax(x, n); }

void add(const float* a, const float* b, float* y, int64_t n) { detail::kernels().add(a, b, y, n); }

namespace {
int rope_dim_of(const RopeParams& p) {
  const int d = p.rope_dim == 0 ? p.head_dim : p.rope_dim;
  SGL_CHECK(d > 0 && d % 2 == 0 && d <= p.head_dim, "rope: rope_dim must be even and <= head_dim");
  return d;
}
}  // namespace

void rope_table(const RopeParams& p, const int32_t* positions, int n_tokens, float* cos_sin) {
  const int d = rope_dim_of(p);
  const int half = d / 2;
  constexpr int kMaxHalf = 1024;
  SGL_CHECK(half <= kMaxHalf, "rope: rope_dim too large");
  double inv_freq[kMaxHalf];
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = static_cast<double>(p.freq_scale) *
                  std::pow(static_cast<double>(p.freq_base), -2.0 * i / static_cast<double>(d));
    if (p.freq_factors != nullptr) inv_freq[i] /= static_cast<double>(p.freq_factors[i]);
  }
  for (int t = 0; t < n_tokens; ++t) {
    float* cs = cos_sin + static_cast<size_t>(t) * d;
    const double pos = static_cast<double>(positions[t]);
    for (int i = 0; i < half; ++i) {
      const double theta = pos * inv_freq[i];
      cs[i] = static_cast<float>(std::cos(theta));
      cs[half + i] = static_cast<float>(std::sin(theta));
    }
  }
}

void rope_apply(const RopeParams& p, const float* cos_sin, float* x, int n_tokens, int n_heads,
                int64_t token_stride) {
  detail::RopeApplyArgs a;
  a.x = x;
  a.token_stride = token_stride != 0 ? token_stride : static_cast<int64_t>(n_heads) * p.head_dim;
  a.n_tokens = n_tokens;
  a.n_heads = n_heads;
  a.head_dim = p.head_dim;
  a.rope_dim = rope_dim_of(p);
  a.neox = p.layout == RopeLayout::kNeox;
  a.cos_sin = cos_sin;
  detail::kernels().rope_apply(a);
}

void embedding_lookup(const WeightView& table, int64_t row, float* out) {
  SGL_CHECK(row >= 0 && row < table.n_out, "embedding_lookup: row out of range");
  const auto bytes = model::ggml_row_size(table.type, static_cast<uint64_t>(table.n_in));
  SGL_CHECK(bytes.has_value(), "embedding_lookup: bad row length");
  const size_t stride = table.row_stride != 0 ? table.row_stride : static_cast<size_t>(*bytes);
  model::dequantize_row(table.type, static_cast<const uint8_t*>(table.data) + stride * row, out,
                        table.n_in);
}

}  // namespace sgl::backend::cpu
