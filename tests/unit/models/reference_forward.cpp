#include "reference_forward.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "model/quant.h"

namespace sgl::models::testing {

Result<ReferenceModel::Matrix> ReferenceModel::matrix(const WeightSource& src,
                                                      const std::string& name) {
  SGL_ASSIGN_OR_RETURN(const std::optional<WeightRef> w, src.find(name));
  if (!w) return not_found("reference: tensor '" + name + "' is missing");
  if (!model::can_dequantize(w->type)) return unsupported("reference: cannot dequantize " + name);
  Matrix m;
  m.n_in = w->cols();
  m.n_out = w->rows();
  m.w.resize(static_cast<size_t>(m.n_in * m.n_out));
  std::vector<float> row(static_cast<size_t>(m.n_in));
  const auto* base = static_cast<const uint8_t*>(w->data);
  for (int64_t r = 0; r < m.n_out; ++r) {
    model::dequantize_row(w->type, base + static_cast<size_t>(r) * w->row_bytes(), row.data(),
                          m.n_in);
    for (int64_t i = 0; i < m.n_in; ++i) m.w[static_cast<size_t>(r * m.n_in + i)] = row[i];
  }
  return m;
}

Result<std::vector<double>> ReferenceModel::vec(const WeightSource& src, const std::string& name,
                                                bool optional) {
  if (optional) {
    auto present = src.find(name);
    if (present.is_ok() && !present->has_value()) return std::vector<double>{};
  }
  SGL_ASSIGN_OR_RETURN(Matrix m, matrix(src, name));
  return std::move(m.w);
}

Result<ReferenceModel> ReferenceModel::create(const LoadedModel& model,
                                              const ReferenceOptions& options) {
  ReferenceModel r;
  r.config_ = model.config;
  r.options_ = options;
  const auto& c = r.config_;
  const WeightSource& src = *model.weights;
  SGL_ASSIGN_OR_RETURN(r.tok_embd_, matrix(src, "token_embd.weight"));
  if (auto out = src.find("output.weight"); out.is_ok() && out->has_value()) {
    SGL_ASSIGN_OR_RETURN(r.output_, matrix(src, "output.weight"));
  } else {
    r.output_ = r.tok_embd_;
  }
  SGL_ASSIGN_OR_RETURN(r.output_norm_, vec(src, "output_norm.weight", false));
  SGL_ASSIGN_OR_RETURN(r.freq_factors_, vec(src, "rope_freqs.weight", true));
  if (r.freq_factors_.empty() || options.ignore_rope_freqs)
    r.freq_factors_.assign(c.rope_dim / 2, 1.0);
  switch (c.rope_scaling.type) {
    case model::RopeScalingType::kNone:
      break;
    case model::RopeScalingType::kLinear:
      r.freq_scale_ = 1.0 / c.rope_scaling.factor;
      break;
    default:
      return unsupported("reference: only rope_freqs tensors and linear scaling are modelled");
  }
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    Layer l;
    SGL_ASSIGN_OR_RETURN(l.attn_norm, vec(src, p + "attn_norm.weight", false));
    SGL_ASSIGN_OR_RETURN(l.ffn_norm, vec(src, p + "ffn_norm.weight", false));
    SGL_ASSIGN_OR_RETURN(l.bq, vec(src, p + "attn_q.bias", true));
    SGL_ASSIGN_OR_RETURN(l.bk, vec(src, p + "attn_k.bias", true));
    SGL_ASSIGN_OR_RETURN(l.bv, vec(src, p + "attn_v.bias", true));
    SGL_ASSIGN_OR_RETURN(l.wq, matrix(src, p + "attn_q.weight"));
    SGL_ASSIGN_OR_RETURN(l.wk, matrix(src, p + "attn_k.weight"));
    SGL_ASSIGN_OR_RETURN(l.wv, matrix(src, p + "attn_v.weight"));
    SGL_ASSIGN_OR_RETURN(l.wo, matrix(src, p + "attn_output.weight"));
    SGL_ASSIGN_OR_RETURN(l.w_gate, matrix(src, p + "ffn_gate.weight"));
    SGL_ASSIGN_OR_RETURN(l.w_up, matrix(src, p + "ffn_up.weight"));
    SGL_ASSIGN_OR_RETURN(l.w_down, matrix(src, p + "ffn_down.weight"));
    r.layers_.push_back(std::move(l));
  }
  return r;
}

std::vector<double> ReferenceModel::matvec(const Matrix& m, const std::vector<double>& x) {
  std::vector<double> y(static_cast<size_t>(m.n_out), 0.0);
  for (int64_t r = 0; r < m.n_out; ++r) {
    const double* w = m.w.data() + static_cast<size_t>(r * m.n_in);
    double s = 0;
    for (int64_t i = 0; i < m.n_in; ++i) s += w[i] * x[static_cast<size_t>(i)];
    y[static_cast<size_t>(r)] = s;
  }
  return y;
}

std::vector<double> ReferenceModel::rms_norm(const std::vector<double>& x,
                                             const std::vector<double>& w) const {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + config_.rms_eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

void ReferenceModel::rope(std::vector<double>& x, int n_heads, int32_t pos) const {
  const int hd = static_cast<int>(config_.head_dim);
  const int rd = static_cast<int>(config_.rope_dim);
  const bool neox = (config_.rope_type == model::RopeType::kNeox) != options_.swap_rope_layout;
  for (int h = 0; h < n_heads; ++h) {
    double* v = x.data() + static_cast<size_t>(h) * hd;
    for (int i = 0; i < rd / 2; ++i) {
      const double theta = pos * freq_scale_ *
                           std::pow(static_cast<double>(config_.rope_freq_base), -2.0 * i / rd) /
                           freq_factors_[static_cast<size_t>(i)];
      const double cs = std::cos(theta), sn = std::sin(theta);
      // kNorm rotates (2i, 2i+1); kNeox rotates (i, i + rope_dim/2).
      const int a = neox ? i : 2 * i;
      const int b = neox ? i + rd / 2 : 2 * i + 1;
      const double x0 = v[a], x1 = v[b];
      v[a] = x0 * cs - x1 * sn;
      v[b] = x0 * sn + x1 * cs;
    }
  }
}

std::vector<std::vector<double>> ReferenceModel::forward(const std::vector<int32_t>& tokens) const {
  const auto& c = config_;
  const size_t n = tokens.size();
  const int hd = static_cast<int>(c.head_dim);
  const int group = static_cast<int>(c.n_head / c.n_head_kv);
  std::vector<std::vector<double>> x(n);
  for (size_t t = 0; t < n; ++t) {
    const double* e = tok_embd_.w.data() + static_cast<size_t>(tokens[t]) * tok_embd_.n_in;
    x[t].assign(e, e + tok_embd_.n_in);
  }
  auto add_bias = [](std::vector<double>& v, const std::vector<double>& b) {
    for (size_t i = 0; i < b.size(); ++i) v[i] += b[i];
  };
  for (const Layer& L : layers_) {
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (size_t t = 0; t < n; ++t) {
      const std::vector<double> h = rms_norm(x[t], L.attn_norm);
      q[t] = matvec(L.wq, h);
      k[t] = matvec(L.wk, h);
      v[t] = matvec(L.wv, h);
      add_bias(q[t], L.bq);
      add_bias(k[t], L.bk);
      add_bias(v[t], L.bv);
      rope(q[t], static_cast<int>(c.n_head), static_cast<int32_t>(t));
      rope(k[t], static_cast<int>(c.n_head_kv), static_cast<int32_t>(t));
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (size_t t = 0; t < n; ++t) {
      std::vector<double> attn(static_cast<size_t>(c.n_head) * hd, 0.0);
      for (int h = 0; h < static_cast<int>(c.n_head); ++h) {
        const int kvh = h / group;
        const double* qh = q[t].data() + static_cast<size_t>(h) * hd;
        std::vector<double> s(t + 1);
        double mx = -INFINITY;
        for (size_t j = 0; j <= t; ++j) {
          const double* kj = k[j].data() + static_cast<size_t>(kvh) * hd;
          double d = 0;
          for (int i = 0; i < hd; ++i) d += qh[i] * kj[i];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        double* out = attn.data() + static_cast<size_t>(h) * hd;
        for (size_t j = 0; j <= t; ++j) {
          const double* vj = v[j].data() + static_cast<size_t>(kvh) * hd;
          for (int i = 0; i < hd; ++i) out[i] += s[j] / z * vj[i];
        }
      }
      const std::vector<double> o = matvec(L.wo, attn);
      for (size_t i = 0; i < o.size(); ++i) x[t][i] += o[i];
    }
    for (size_t t = 0; t < n; ++t) {
      const std::vector<double> h = rms_norm(x[t], L.ffn_norm);
      std::vector<double> g = matvec(L.w_gate, h);
      const std::vector<double> u = matvec(L.w_up, h);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      const std::vector<double> d = matvec(L.w_down, g);
      for (size_t i = 0; i < d.size(); ++i) x[t][i] += d[i];
    }
  }
  std::vector<std::vector<double>> logits(n);
  for (size_t t = 0; t < n; ++t) logits[t] = matvec(output_, rms_norm(x[t], output_norm_));
  return logits;
}

}  // namespace sgl::models::testing
