#include "models/weights.h"

#include <charconv>
#include <map>

#include "model/gguf.h"
#include "model/safetensors.h"

namespace sgl::models {

int64_t WeightRef::rows() const {
  int64_t r = 1;
  for (size_t i = 1; i < ne.size(); ++i) r *= ne[i];
  return r;
}

uint64_t WeightRef::row_bytes() const {
  auto rb = model::ggml_row_size(type, static_cast<uint64_t>(cols()));
  return rb ? *rb : 0;
}

namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

class GgufWeightSource final : public WeightSource {
 public:
  explicit GgufWeightSource(const model::GgufFile& f) : file_(f) {}
  Result<std::optional<WeightRef>> find(std::string_view name) const override {
    const model::GgufTensorInfo* t = file_.find_tensor(name);
    if (!t) return std::optional<WeightRef>();
    WeightRef w;
    w.name = t->name;
    w.type = t->type;
    for (uint64_t d : t->shape) w.ne.push_back(static_cast<int64_t>(d));
    w.data = t->data;
    w.n_bytes = t->n_bytes;
    return std::optional<WeightRef>(std::move(w));
  }
  uint64_t total_bytes() const override {
    uint64_t n = 0;
    for (const auto& t : file_.tensors()) n += t.n_bytes;
    return n;
  }

 private:
  const model::GgufFile& file_;
};

// GGUF name -> Hugging Face name for the Llama family.
std::optional<std::string> hf_name(std::string_view g) {
  static const std::map<std::string, std::string, std::less<>> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string, std::less<>> kLayer = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  if (auto it = kGlobal.find(g); it != kGlobal.end()) return it->second;
  if (g.substr(0, 4) != "blk.") return std::nullopt;
  std::string_view rest = g.substr(4);
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  unsigned layer = 0;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + dot, layer);
  if (ec != std::errc() || p != rest.data() + dot) return std::nullopt;
  auto it = kLayer.find(rest.substr(dot + 1));
  if (it == kLayer.end()) return std::nullopt;
  return "model.layers." + std::to_string(layer) + "." + it->second;
}

class SafetensorsWeightSource final : public WeightSource {
 public:
  explicit SafetensorsWeightSource(const model::SafetensorsCheckpoint& c) : ckpt_(c) {}
  Result<std::optional<WeightRef>> find(std::string_view name) const override {
    auto hf = hf_name(name);
    if (!hf) return std::optional<WeightRef>();
    const model::SafetensorsTensor* t = ckpt_.find_tensor(*hf);
    if (!t) return std::optional<WeightRef>();
    WeightRef w;
    w.name = t->name;
    auto type = ggml_type_of(t->dtype);
    if (!type)
      return unsupported("model: tensor '" + t->name + "' has dtype " +
                         std::string(model::safetensors_dtype_name(t->dtype)) +
                         " (supported: F32, F16, BF16)");
    w.type = *type;
    for (auto it = t->shape.rbegin(); it != t->shape.rend(); ++it)
      w.ne.push_back(static_cast<int64_t>(*it));
    w.data = t->data;
    w.n_bytes = t->n_bytes;
    return std::optional<WeightRef>(std::move(w));
  }
  uint64_t total_bytes() const override {
    uint64_t n = 0;
    for (const auto& t : ckpt_.tensors()) n += t.n_bytes;
    return n;
  }

 private:
  static std::optional<model::GgmlType> ggml_type_of(model::SafetensorsDtype d) {
    switch (d) {
      case model::SafetensorsDtype::kF32: return model::GgmlType::kF32;
      case model::SafetensorsDtype::kF16: return model::GgmlType::kF16;
      case model::SafetensorsDtype::kBF16: return model::GgmlType::kBF16;
      default: return std::nullopt;
    }
  }
  const model::SafetensorsCheckpoint& ckpt_;
};

}  // namespace

std::unique_ptr<WeightSource> gguf_weight_source(const model::GgufFile& file) {
  return std::make_unique<GgufWeightSource>(file);
}
std::unique_ptr<WeightSource> safetensors_weight_source(const model::SafetensorsCheckpoint& c) {
  return std::make_unique<SafetensorsWeightSource>(c);
}

Result<WeightRef> optional_weight(const WeightSource& src, const std::string& name,
                                  std::vector<int64_t> expected_ne) {
  SGL_ASSIGN_OR_RETURN(std::optional<WeightRef> w, src.find(name));
  if (!w) return WeightRef{};
  if (w->ne != expected_ne)
    return invalid_argument("model: tensor '" + name + "' has shape " + shape_str(w->ne) +
                            ", expected " + shape_str(expected_ne));
  return *w;
}

Result<WeightRef> require_weight(const WeightSource& src, const std::string& name,
                                 std::vector<int64_t> expected_ne) {
  SGL_ASSIGN_OR_RETURN(WeightRef w, optional_weight(src, name, std::move(expected_ne)));
  if (!w.present()) return not_found("model: required tensor '" + name + "' is missing");
  return w;
}

}  // namespace sgl::models
