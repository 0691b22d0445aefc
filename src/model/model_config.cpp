#include "model/model_config.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "model/gguf.h"
#include "support/mapped_file.h"

namespace sgl::model {
namespace {

using nlohmann::json;

std::string num(uint64_t v) { return std::to_string(v); }

std::string fmt_float(float v) {
  char buf[32];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

bool is_supported_arch(const std::string& arch) { return arch == "llama" || arch == "qwen2"; }

// ---------------------------------------------------------------------------------------------
// config.json field readers. Absent and null mean "use the default"; a present value of the
// wrong kind is an error naming the key.

Status bad_field(const std::string& key, const std::string& expected, const json& v) {
  std::string shown = v.dump();
  if (shown.size() > 80) shown = shown.substr(0, 80) + "...";
  return invalid_argument("config.json: '" + key + "' must be " + expected + ", got " + shown);
}

const json* field(const json& obj, const std::string& key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::optional<uint32_t>> opt_uint(const json& obj, const std::string& key) {
  const json* v = field(obj, key);
  if (v == nullptr) return std::optional<uint32_t>();
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > std::numeric_limits<uint32_t>::max())
      return out_of_range("config.json: '" + key + "' = " + num(u) + " is too large");
    return std::optional<uint32_t>(static_cast<uint32_t>(u));
  }
  if (v->is_number_integer() && v->get<int64_t>() >= 0) {  // defensive: nlohmann uses unsigned
    return std::optional<uint32_t>(static_cast<uint32_t>(v->get<int64_t>()));
  }
  return bad_field(key, "a non-negative integer", *v);
}

Result<uint32_t> req_uint(const json& obj, const std::string& key) {
  SGL_ASSIGN_OR_RETURN(std::optional<uint32_t> v, opt_uint(obj, key));
  if (!v) return not_found("config.json: required key '" + key + "' is missing");
  return *v;
}

Result<uint32_t> uint_or(const json& obj, const std::string& key, uint32_t def) {
  SGL_ASSIGN_OR_RETURN(std::optional<uint32_t> v, opt_uint(obj, key));
  return v ? *v : def;
}

Result<float> float_or(const json& obj, const std::string& key, float def) {
  const json* v = field(obj, key);
  if (v == nullptr) return def;
  if (!v->is_number()) return bad_field(key, "a number", *v);
  const double d = v->get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    return bad_field(key, "a finite number in float range", *v);
  return static_cast<float>(d);
}

Result<bool> bool_or(const json& obj, const std::string& key, bool def) {
  const json* v = field(obj, key);
  if (v == nullptr) return def;
  if (!v->is_boolean()) return bad_field(key, "true or false", *v);
  return v->get<bool>();
}

Result<std::string> string_or(const json& obj, const std::string& key, std::string def) {
  const json* v = field(obj, key);
  if (v == nullptr) return def;
  if (!v->is_string()) return bad_field(key, "a string", *v);
  return v->get<std::string>();
}

Result<int32_t> token_id(const std::string& key, const json& v) {
  if (v.is_number_integer()) {
    const int64_t id = v.get<int64_t>();
    if (id >= 0 && id <= std::numeric_limits<int32_t>::max()) return static_cast<int32_t>(id);
  }
  return bad_field(key, "a token id (non-negative integer)", v);
}

Status parse_hf_rope_scaling(const json& config, ModelConfig* c) {
  const json* rs = field(config, "rope_scaling");
  if (rs == nullptr) return Status::ok();
  if (!rs->is_object()) return bad_field("rope_scaling", "an object or null", *rs);
  std::string type;
  if (const json* t = field(*rs, "rope_type")) {
    if (!t->is_string()) return bad_field("rope_scaling.rope_type", "a string", *t);
    type = t->get<std::string>();
  } else if (const json* t2 = field(*rs, "type")) {
    if (!t2->is_string()) return bad_field("rope_scaling.type", "a string", *t2);
    type = t2->get<std::string>();
  } else {
    return invalid_argument("config.json: 'rope_scaling' has neither 'rope_type' nor 'type'");
  }
  RopeScaling& s = c->rope_scaling;
  auto factor = [&]() -> Status {
    const json* f = field(*rs, "factor");
    if (f == nullptr)
      return not_found("config.json: rope_scaling of type '" + type + "' needs 'factor'");
    SGL_ASSIGN_OR_RETURN(s.factor, float_or(*rs, "factor", 1.0f));
    return Status::ok();
  };
  if (type == "default") {
    s = RopeScaling{};
  } else if (type == "linear") {
    s.type = RopeScalingType::kLinear;
    SGL_RETURN_IF_ERROR(factor());
  } else if (type == "llama3") {
    s.type = RopeScalingType::kLlama3;
    SGL_RETURN_IF_ERROR(factor());
    SGL_ASSIGN_OR_RETURN(s.low_freq_factor, float_or(*rs, "low_freq_factor", 1.0f));
    SGL_ASSIGN_OR_RETURN(s.high_freq_factor, float_or(*rs, "high_freq_factor", 4.0f));
    SGL_ASSIGN_OR_RETURN(s.original_context_length,
                         req_uint(*rs, "original_max_position_embeddings"));
  } else if (type == "yarn") {
    s.type = RopeScalingType::kYarn;
    SGL_RETURN_IF_ERROR(factor());
    SGL_ASSIGN_OR_RETURN(s.original_context_length,
                         uint_or(*rs, "original_max_position_embeddings", c->context_length));
    SGL_ASSIGN_OR_RETURN(s.beta_fast, float_or(*rs, "beta_fast", 32.0f));
    SGL_ASSIGN_OR_RETURN(s.beta_slow, float_or(*rs, "beta_slow", 1.0f));
  } else {
    return unsupported("config.json: rope_scaling type '" + type +
                       "' is not supported (default, linear, llama3, yarn)");
  }
  return Status::ok();
}

}  // namespace

const char* rope_type_name(RopeType type) { return type == RopeType::kNorm ? "norm" : "neox"; }

const char* rope_scaling_type_name(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kNone:
      return "none";
    case RopeScalingType::kLinear:
      return "linear";
    case RopeScalingType::kYarn:
      return "yarn";
    case RopeScalingType::kLlama3:
      return "llama3";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// GGUF

Result<ModelConfig> ModelConfig::from_gguf(const GgufFile& file) {
  ModelConfig c;
  c.source = "gguf";
  c.arch = file.architecture();
  if (c.arch.empty())
    return not_found("gguf: key 'general.architecture' is missing or not a string");
  if (!is_supported_arch(c.arch))
    return unsupported("model: architecture '" + c.arch +
                       "' is not supported (supported: llama, qwen2)");
  const std::string p = c.arch + ".";
  SGL_ASSIGN_OR_RETURN(c.context_length, file.get_u32(p + "context_length"));
  SGL_ASSIGN_OR_RETURN(c.n_embd, file.get_u32(p + "embedding_length"));
  SGL_ASSIGN_OR_RETURN(c.n_layer, file.get_u32(p + "block_count"));
  SGL_ASSIGN_OR_RETURN(c.n_ff, file.get_u32(p + "feed_forward_length"));
  SGL_ASSIGN_OR_RETURN(c.n_head, file.get_u32(p + "attention.head_count"));
  SGL_ASSIGN_OR_RETURN(c.n_head_kv, file.get_u32_or(p + "attention.head_count_kv", c.n_head));
  if (c.n_head == 0) return invalid_argument("gguf: " + p + "attention.head_count is 0");
  if (file.find(p + "attention.key_length") != nullptr) {
    SGL_ASSIGN_OR_RETURN(c.head_dim, file.get_u32(p + "attention.key_length"));
  } else {
    if (c.n_embd % c.n_head != 0)
      return invalid_argument("gguf: embedding_length " + num(c.n_embd) +
                              " is not a multiple of head_count " + num(c.n_head));
    c.head_dim = c.n_embd / c.n_head;
  }
  SGL_ASSIGN_OR_RETURN(const uint32_t value_length,
                       file.get_u32_or(p + "attention.value_length", c.head_dim));
  if (value_length != c.head_dim)
    return unsupported("gguf: attention.value_length " + num(value_length) +
                       " differs from key_length " + num(c.head_dim));
  SGL_ASSIGN_OR_RETURN(c.rope_dim, file.get_u32_or(p + "rope.dimension_count", c.head_dim));
  SGL_ASSIGN_OR_RETURN(c.rope_freq_base, file.get_f32_or(p + "rope.freq_base", 10000.0f));
  SGL_ASSIGN_OR_RETURN(c.rms_eps, file.get_f32(p + "attention.layer_norm_rms_epsilon"));

  // RoPE scaling: rope.scaling.type (none/linear/yarn) + factor, or the legacy scale_linear.
  SGL_ASSIGN_OR_RETURN(const std::string scaling, file.get_string_or(p + "rope.scaling.type", ""));
  SGL_ASSIGN_OR_RETURN(const float factor, file.get_f32_or(p + "rope.scaling.factor", 0.0f));
  SGL_ASSIGN_OR_RETURN(const float scale_linear, file.get_f32_or(p + "rope.scale_linear", 1.0f));
  RopeScaling& s = c.rope_scaling;
  if (scaling.empty() || scaling == "none") {
    if (scale_linear != 1.0f) {
      s.type = RopeScalingType::kLinear;
      s.factor = scale_linear;
    }
  } else if (scaling == "linear") {
    s.type = RopeScalingType::kLinear;
    s.factor = factor != 0.0f ? factor : scale_linear;
  } else if (scaling == "yarn") {
    s.type = RopeScalingType::kYarn;
    s.factor = factor;
    SGL_ASSIGN_OR_RETURN(s.original_context_length,
                         file.get_u32_or(p + "rope.scaling.original_context_length", 0));
    SGL_ASSIGN_OR_RETURN(s.beta_fast, file.get_f32_or(p + "rope.scaling.yarn_beta_fast", 32.0f));
    SGL_ASSIGN_OR_RETURN(s.beta_slow, file.get_f32_or(p + "rope.scaling.yarn_beta_slow", 1.0f));
  } else {
    return unsupported("gguf: " + p + "rope.scaling.type '" + scaling +
                       "' is not supported (none, linear, yarn)");
  }

  // Vocabulary size: explicit, else the tokenizer's token list, else the embedding's rows.
  if (file.find(p + "vocab_size") != nullptr) {
    SGL_ASSIGN_OR_RETURN(c.n_vocab, file.get_u32(p + "vocab_size"));
  } else if (const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
             tokens != nullptr && tokens->is_array()) {
    if (tokens->size() > kMaxVocab)
      return out_of_range("gguf: tokenizer.ggml.tokens has " + num(tokens->size()) + " entries");
    c.n_vocab = static_cast<uint32_t>(tokens->size());
  } else if (const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
             embd != nullptr && embd->shape.size() >= 2) {
    if (embd->shape[1] > kMaxVocab)
      return out_of_range("gguf: token_embd.weight has " + num(embd->shape[1]) + " rows");
    c.n_vocab = static_cast<uint32_t>(embd->shape[1]);
  } else {
    return not_found("gguf: cannot tell the vocabulary size (no " + p +
                     "vocab_size, tokenizer.ggml.tokens or token_embd.weight)");
  }

  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  c.attn_qkv_bias = c.arch == "qwen2" || file.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.rope_type = c.arch == "llama" ? RopeType::kNorm : RopeType::kNeox;

  auto read_token = [&](const char* key, int32_t* out) -> Status {
    if (file.find(key) == nullptr) return Status::ok();
    SGL_ASSIGN_OR_RETURN(const uint32_t id, file.get_u32(key));
    if (id > static_cast<uint32_t>(std::numeric_limits<int32_t>::max()))
      return out_of_range(std::string("gguf: ") + key + " = " + num(id) + " is too large");
    *out = static_cast<int32_t>(id);
    return Status::ok();
  };
  SGL_RETURN_IF_ERROR(read_token("tokenizer.ggml.bos_token_id", &c.bos_token_id));
  int32_t eos = -1, eot = -1;
  SGL_RETURN_IF_ERROR(read_token("tokenizer.ggml.eos_token_id", &eos));
  SGL_RETURN_IF_ERROR(read_token("tokenizer.ggml.eot_token_id", &eot));
  if (eos >= 0) c.eos_token_ids.push_back(eos);
  if (eot >= 0 && eot != eos) c.eos_token_ids.push_back(eot);

  SGL_RETURN_IF_ERROR(c.validate());
  return c;
}

// ---------------------------------------------------------------------------------------------
// Hugging Face config.json

Result<ModelConfig> ModelConfig::from_hf_config_json(const nlohmann::json& config) {
  if (!config.is_object())
    return invalid_argument(std::string("config.json: expected a JSON object, got ") +
                            config.type_name());
  std::string architecture;
  if (const json* archs = field(config, "architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      return bad_field("architectures", "a non-empty array of strings", *archs);
    architecture = (*archs)[0].get<std::string>();
  } else {
    SGL_ASSIGN_OR_RETURN(const std::string model_type, string_or(config, "model_type", ""));
    if (model_type == "llama") architecture = "LlamaForCausalLM";
    if (model_type == "mistral") architecture = "MistralForCausalLM";
    if (model_type == "qwen2") architecture = "Qwen2ForCausalLM";
    if (architecture.empty())
      return not_found("config.json: no 'architectures' and model_type '" + model_type +
                       "' is not one of llama, mistral, qwen2");
  }
  ModelConfig c;
  c.source = "hf";
  c.rope_type = RopeType::kNeox;  // HF checkpoints are never permuted
  const bool is_qwen2 = architecture == "Qwen2ForCausalLM";
  const bool is_mistral = architecture == "MistralForCausalLM";
  if (architecture == "LlamaForCausalLM" || is_mistral) {
    c.arch = "llama";
  } else if (is_qwen2) {
    c.arch = "qwen2";
  } else {
    return unsupported("config.json: architecture '" + architecture +
                       "' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                       "Qwen2ForCausalLM)");
  }

  SGL_ASSIGN_OR_RETURN(const std::string act, string_or(config, "hidden_act", "silu"));
  if (act != "silu")
    return unsupported("config.json: hidden_act '" + act + "' is not supported (silu)");

  SGL_ASSIGN_OR_RETURN(c.n_embd, req_uint(config, "hidden_size"));
  SGL_ASSIGN_OR_RETURN(c.n_layer, req_uint(config, "num_hidden_layers"));
  SGL_ASSIGN_OR_RETURN(c.n_ff, req_uint(config, "intermediate_size"));
  SGL_ASSIGN_OR_RETURN(c.n_head, req_uint(config, "num_attention_heads"));
  SGL_ASSIGN_OR_RETURN(c.n_head_kv, uint_or(config, "num_key_value_heads", c.n_head));
  SGL_ASSIGN_OR_RETURN(c.n_vocab, req_uint(config, "vocab_size"));
  SGL_ASSIGN_OR_RETURN(c.context_length, req_uint(config, "max_position_embeddings"));
  if (c.n_head == 0) return invalid_argument("config.json: 'num_attention_heads' is 0");
  SGL_ASSIGN_OR_RETURN(const std::optional<uint32_t> head_dim, opt_uint(config, "head_dim"));
  if (head_dim) {
    c.head_dim = *head_dim;
  } else {
    if (c.n_embd % c.n_head != 0)
      return invalid_argument("config.json: hidden_size " + num(c.n_embd) +
                              " is not a multiple of num_attention_heads " + num(c.n_head) +
                              " (and no head_dim is given)");
    c.head_dim = c.n_embd / c.n_head;
  }
  c.rope_dim = c.head_dim;
  SGL_ASSIGN_OR_RETURN(c.rope_freq_base, float_or(config, "rope_theta", 10000.0f));
  SGL_ASSIGN_OR_RETURN(c.rms_eps, float_or(config, "rms_norm_eps", 1e-6f));
  SGL_ASSIGN_OR_RETURN(c.tied_embeddings, bool_or(config, "tie_word_embeddings", false));
  if (is_qwen2) {
    c.attn_qkv_bias = true;  // Qwen2 always has Q/K/V biases
    SGL_ASSIGN_OR_RETURN(const bool swa, bool_or(config, "use_sliding_window", false));
    if (swa) return unsupported("config.json: Qwen2 use_sliding_window=true is not supported");
  } else if (is_mistral) {
    SGL_ASSIGN_OR_RETURN(c.sliding_window, uint_or(config, "sliding_window", 0));
  } else {
    SGL_ASSIGN_OR_RETURN(c.attn_qkv_bias, bool_or(config, "attention_bias", false));
  }
  SGL_RETURN_IF_ERROR(parse_hf_rope_scaling(config, &c));

  SGL_ASSIGN_OR_RETURN(c.torch_dtype, string_or(config, "torch_dtype", ""));
  if (c.torch_dtype.empty()) {  // newer transformers write "dtype"
    SGL_ASSIGN_OR_RETURN(c.torch_dtype, string_or(config, "dtype", ""));
  }
  if (const json* bos = field(config, "bos_token_id")) {
    SGL_ASSIGN_OR_RETURN(c.bos_token_id, token_id("bos_token_id", *bos));
  }
  if (const json* eos = field(config, "eos_token_id")) {
    if (eos->is_array()) {
      for (const json& e : *eos) {
        SGL_ASSIGN_OR_RETURN(const int32_t id, token_id("eos_token_id", e));
        c.eos_token_ids.push_back(id);
      }
    } else {
      SGL_ASSIGN_OR_RETURN(const int32_t id, token_id("eos_token_id", *eos));
      c.eos_token_ids.push_back(id);
    }
  }
  SGL_RETURN_IF_ERROR(c.validate());
  return c;
}

Result<ModelConfig> ModelConfig::from_hf_config_file(const std::string& path) {
  Result<MappedFile> f = MappedFile::open(path);
  if (!f.is_ok()) return Status(f.status().code(), "config.json: " + f.status().message());
  constexpr size_t kMaxConfigSize = 16u << 20;
  if (f->size() > kMaxConfigSize)
    return out_of_range("config.json: '" + path + "' is " + num(f->size()) +
                        " bytes, larger than any model config");
  json config;
  try {
    const char* p = reinterpret_cast<const char*>(f->data());
    config = json::parse(p, p + f->size());
  } catch (const std::exception& e) {
    return invalid_argument("config.json: '" + path + "' is not valid JSON: " + e.what());
  }
  Result<ModelConfig> c = from_hf_config_json(config);
  if (!c.is_ok()) return Status(c.status().code(), c.status().message() + " (in '" + path + "')");
  return c;
}

// ---------------------------------------------------------------------------------------------
// Validation and reporting

Status ModelConfig::validate() const {
  auto range = [](const char* name, uint64_t v, uint64_t lo, uint64_t hi) -> Status {
    if (v >= lo && v <= hi) return Status::ok();
    return out_of_range(std::string("model config: ") + name + " = " + num(v) + " is outside [" +
                        num(lo) + ", " + num(hi) + "]");
  };
  if (!is_supported_arch(arch))
    return unsupported("model config: architecture '" + arch + "' is not supported");
  SGL_RETURN_IF_ERROR(range("n_embd", n_embd, 1, kMaxEmbd));
  SGL_RETURN_IF_ERROR(range("n_layer", n_layer, 1, kMaxLayers));
  SGL_RETURN_IF_ERROR(range("n_ff", n_ff, 1, kMaxFf));
  SGL_RETURN_IF_ERROR(range("n_head", n_head, 1, kMaxHeads));
  SGL_RETURN_IF_ERROR(range("n_head_kv", n_head_kv, 1, n_head));
  if (n_head % n_head_kv != 0)
    return invalid_argument("model config: n_head " + num(n_head) +
                            " is not a multiple of n_head_kv " + num(n_head_kv));
  SGL_RETURN_IF_ERROR(range("head_dim", head_dim, 2, kMaxHeadDim));
  if (head_dim % 2 != 0)
    return invalid_argument("model config: head_dim " + num(head_dim) + " is odd");
  SGL_RETURN_IF_ERROR(range("rope_dim", rope_dim, 2, head_dim));
  if (rope_dim % 2 != 0)
    return invalid_argument("model config: rope_dim " + num(rope_dim) + " is odd");
  SGL_RETURN_IF_ERROR(range("n_vocab", n_vocab, 1, kMaxVocab));
  SGL_RETURN_IF_ERROR(range("context_length", context_length, 1, kMaxContext));
  if (!std::isfinite(rope_freq_base) || rope_freq_base <= 0.0f)
    return out_of_range("model config: rope_freq_base " + fmt_float(rope_freq_base) +
                        " must be positive");
  if (!std::isfinite(rms_eps) || rms_eps <= 0.0f || rms_eps >= 1.0f)
    return out_of_range("model config: rms_eps " + fmt_float(rms_eps) + " must be in (0, 1)");
  const RopeScaling& s = rope_scaling;
  if (s.type != RopeScalingType::kNone) {
    const std::string t = rope_scaling_type_name(s.type);
    if (!std::isfinite(s.factor) || s.factor <= 0.0f || s.factor > 1024.0f)
      return out_of_range("model config: rope scaling (" + t + ") factor " + fmt_float(s.factor) +
                          " must be in (0, 1024]");
    if (s.type == RopeScalingType::kLlama3) {
      if (s.original_context_length == 0)
        return invalid_argument("model config: llama3 rope scaling needs original_context_length");
      if (!(s.low_freq_factor > 0.0f) || !(s.high_freq_factor > s.low_freq_factor) ||
          !std::isfinite(s.high_freq_factor))
        return out_of_range("model config: llama3 rope scaling needs 0 < low_freq_factor (" +
                            fmt_float(s.low_freq_factor) + ") < high_freq_factor (" +
                            fmt_float(s.high_freq_factor) + ")");
    }
    if (s.type == RopeScalingType::kYarn &&
        (!std::isfinite(s.beta_fast) || !std::isfinite(s.beta_slow)))
      return out_of_range("model config: yarn beta_fast/beta_slow must be finite");
  }
  if (bos_token_id < -1 || (bos_token_id >= 0 && static_cast<uint32_t>(bos_token_id) >= n_vocab))
    return out_of_range("model config: bos_token_id " + std::to_string(bos_token_id) +
                        " is outside the vocabulary (" + num(n_vocab) + ")");
  for (int32_t id : eos_token_ids) {
    if (id < 0 || static_cast<uint32_t>(id) >= n_vocab)
      return out_of_range("model config: eos token id " + std::to_string(id) +
                          " is outside the vocabulary (" + num(n_vocab) + ")");
  }
  if (source != "gguf" && source != "hf")
    return invalid_argument("model config: source '" + source + "' (expected gguf or hf)");
  return Status::ok();
}

std::string ModelConfig::summary() const {
  std::string out;
  out += "architecture:   " + arch + " (from " + source + ")\n";
  out += "layers:         " + num(n_layer) + "\n";
  out += "embedding:      " + num(n_embd) + "\n";
  out += "feed-forward:   " + num(n_ff) + "\n";
  out += "heads:          " + num(n_head) + " (kv " + num(n_head_kv) + ", head_dim " +
         num(head_dim) + ")\n";
  out += "vocabulary:     " + num(n_vocab) + "\n";
  out += "context:        " + num(context_length) + "\n";
  out += "rope:           " + std::string(rope_type_name(rope_type)) + ", base " +
         fmt_float(rope_freq_base) + ", dims " + num(rope_dim) + ", scaling " +
         rope_scaling_type_name(rope_scaling.type);
  if (rope_scaling.type != RopeScalingType::kNone) {
    out += " (factor " + fmt_float(rope_scaling.factor);
    if (rope_scaling.original_context_length)
      out += ", original context " + num(rope_scaling.original_context_length);
    out += ")";
  }
  out += "\n";
  out += "rms_eps:        " + fmt_float(rms_eps) + "\n";
  out += "tied embedding: " + std::string(tied_embeddings ? "yes" : "no") + "\n";
  out += "qkv bias:       " + std::string(attn_qkv_bias ? "yes" : "no") + "\n";
  if (sliding_window) out += "sliding window: " + num(sliding_window) + "\n";
  return out;
}

nlohmann::json ModelConfig::to_json() const {
  json j;
  j["arch"] = arch;
  j["source"] = source;
  j["context_length"] = context_length;
  j["n_embd"] = n_embd;
  j["n_layer"] = n_layer;
  j["n_ff"] = n_ff;
  j["n_head"] = n_head;
  j["n_head_kv"] = n_head_kv;
  j["head_dim"] = head_dim;
  j["n_vocab"] = n_vocab;
  j["rope_freq_base"] = rope_freq_base;
  j["rope_dim"] = rope_dim;
  j["rope_type"] = rope_type_name(rope_type);
  json s;
  s["type"] = rope_scaling_type_name(rope_scaling.type);
  if (rope_scaling.type != RopeScalingType::kNone) {
    s["factor"] = rope_scaling.factor;
    s["original_context_length"] = rope_scaling.original_context_length;
    if (rope_scaling.type == RopeScalingType::kLlama3) {
      s["low_freq_factor"] = rope_scaling.low_freq_factor;
      s["high_freq_factor"] = rope_scaling.high_freq_factor;
    }
    if (rope_scaling.type == RopeScalingType::kYarn) {
      s["beta_fast"] = rope_scaling.beta_fast;
      s["beta_slow"] = rope_scaling.beta_slow;
    }
  }
  j["rope_scaling"] = std::move(s);
  j["rms_eps"] = rms_eps;
  j["tied_embeddings"] = tied_embeddings;
  j["attn_qkv_bias"] = attn_qkv_bias;
  j["sliding_window"] = sliding_window;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_ids"] = eos_token_ids;
  if (!torch_dtype.empty()) j["torch_dtype"] = torch_dtype;
  return j;
}

}  // namespace sgl::model
