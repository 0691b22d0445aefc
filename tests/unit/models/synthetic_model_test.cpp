// The CPU backend on small random-weight models written to disk in the formats users bring
// (GGUF via GgufWriter, Hugging Face safetensors + config.json + tokenizer.json), compared with
// the double-precision reference forward of reference_forward.h over the same weights
// (dequantized by model::dequantize_row, which tests/unit/backend checks on its own):
//   (a) Qwen2 style: arch qwen2, NEOX RoPE, Q/K/V biases, untied LM head, f32/f16/bf16 weights;
//       the same weights as a Hugging Face checkpoint give bit-identical logits;
//   (b) Llama-3 style: arch llama, untied LM head, a rope_freqs tensor, f32/f16 weights;
//   (c) llama with every weight format mixed per tensor (F16, BF16, F32, Q8_0, Q4_0, Q4_1, Q5_0,
//       Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and a tied Q8_0 embedding.
//   (d) a LlamaForCausalLM checkpoint (Q/K rows in Hugging Face order, halves RoPE) computes the
//       same logits as the llama-arch GGUF of the same weights (permuted rows, pairs RoPE);
//   (e) each format alone.
// Every model runs three prompts in one mixed batch (logits for all positions), then decodes a
// few tokens one at a time over the KV cache; each row is checked against the reference.
//
// Measured on the development machine (AVX-512 VNNI path), NMSE mean / max over 100 rows:
//   float weights, KV f32: (a) 1.8e-13 / 1.2e-12, (b) 3.3e-13 / 1.9e-12, f32/f16/bf16 alone
//     ~2.5e-13 / 1e-12; HF vs GGUF llama 1.1e-12 max; Qwen2 HF vs GGUF bit-identical;
//   (b) with KV f16: 4.9e-7 / 6.1e-6; KV bf16: 3.8e-5 / 1.6e-4;
//   (c) 7.3e-4 / 1.9e-3; alone: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 ~5.6e-4 / 2-5e-3, Q2_K..Q6_K
//     ~1.1e-3 / 3-6e-3 (int8 activation noise, no format stands out).
// Negative controls (the wrong RoPE layout, ignoring rope_freqs) give NMSE 0.55-0.81, so the
// tolerances below separate a correct forward from a subtly wrong one.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "model/gguf_writer.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "models/loader.h"
#include "sgl/engine.h"
#include "reference_forward.h"
#include "test_util.h"

namespace sgl::models {
namespace {

using model::GgmlType;
using testing::argmax;
using testing::iota_slots;
using testing::ReferenceModel;
using testing::ReferenceOptions;
using testing::run_forward;
using testing::SeqRequest;

// ---------------------------------------------------------------------------------------------
// A minimal byte-level BPE vocabulary: the 256 byte symbols of GPT-2's alphabet, 41 merges of
// common English letter pairs, and three control tokens. 300 tokens.

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the others for
// U+0100 onwards in byte order.
std::vector<std::string> gpt2_byte_symbols() {
  std::vector<std::string> sym(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    sym[b] = utf8_of(printable ? b : next++);
  }
  return sym;
}

struct TinyVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;       // GGUF token types: 1 normal, 3 control
  std::vector<std::string> merges;  // "a b"
  int32_t eos = -1;
};

TinyVocab tiny_vocab() {
  TinyVocab v;
  v.tokens = gpt2_byte_symbols();
  v.types.assign(256, 1);
  const char* const kPairs[] = {"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti",
                                "es", "or", "te", "of", "ed", "is", "it", "al", "ar", "st", "to",
                                "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co", "me",
                                "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra"};
  for (const char* p : kPairs) {
    v.tokens.push_back(p);
    v.types.push_back(1);
    v.merges.push_back(std::string(1, p[0]) + " " + std::string(1, p[1]));
  }
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    v.tokens.push_back(s);
    v.types.push_back(3);
  }
  v.eos = static_cast<int32_t>(v.tokens.size()) - 3;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Random models

struct TinySpec {
  std::string arch = "llama";
  uint32_t n_embd = 64, n_layer = 2, n_ff = 128, n_head = 4, n_head_kv = 2, head_dim = 16;
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied = false;
  bool qkv_bias = false;
  bool rope_freqs = false;
  uint32_t seed = 1;
  // config.json's vocab_size when the embedding has more rows than the tokenizer has tokens
  // (0 = the tokenizer's size), as Qwen2 checkpoints pad theirs.
  uint32_t padded_vocab = 0;
  // The KV cache the backend runs with (not part of the file). With f32, float weights leave
  // only f32 rounding between the backend and the reference.
  backend::KvDtype kv_dtype = backend::KvDtype::kF16;
  // Storage type of each matrix (token_embd.weight, output.weight, blk.N.*.weight).
  std::function<GgmlType(const std::string&)> type_of = [](const std::string&) {
    return GgmlType::kF32;
  };
};

struct TinyTensor {
  std::string name;
  std::vector<uint64_t> shape;  // ggml order
  GgmlType type;
  std::vector<uint8_t> data;
};

std::vector<uint8_t> encode(GgmlType type, const std::vector<float>& v, uint64_t n_in) {
  const uint64_t rows = v.size() / n_in;
  const uint64_t row_bytes = *model::ggml_row_size(type, n_in);
  std::vector<uint8_t> out(rows * row_bytes);
  for (uint64_t r = 0; r < rows; ++r)
    model::quantize_row(type, v.data() + r * n_in, out.data() + r * row_bytes,
                        static_cast<int64_t>(n_in));
  return out;
}

std::vector<TinyTensor> make_tensors(const TinySpec& s, uint32_t n_vocab) {
  std::mt19937 rng(s.seed);
  auto normal = [&](size_t n, double mean, double stddev) {
    std::normal_distribution<float> d(static_cast<float>(mean), static_cast<float>(stddev));
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  std::vector<TinyTensor> ts;
  auto matrix = [&](const std::string& name, uint64_t n_in, uint64_t n_out, double scale) {
    const GgmlType type = s.type_of(name);
    const auto v = normal(n_in * n_out, 0.0, scale / std::sqrt(static_cast<double>(n_in)));
    ts.push_back({name, {n_in, n_out}, type, encode(type, v, n_in)});
  };
  auto vector = [&](const std::string& name, std::vector<float> v) {
    const uint64_t n = v.size();
    ts.push_back({name, {n}, GgmlType::kF32, encode(GgmlType::kF32, v, n)});
  };
  const uint64_t E = s.n_embd, F = s.n_ff, Q = uint64_t{s.n_head} * s.head_dim,
                 KV = uint64_t{s.n_head_kv} * s.head_dim;
  matrix("token_embd.weight", E, n_vocab, std::sqrt(static_cast<double>(E)));
  vector("output_norm.weight", normal(E, 1.0, 0.2));
  if (!s.tied) matrix("output.weight", E, n_vocab, 4.0);
  if (s.rope_freqs) {
    // Arbitrary per-pair divisors in [e^-1.4, e^1.4], so dividing by them, multiplying by them
    // or ignoring them give visibly different results.
    std::uniform_real_distribution<float> u(-1.4f, 1.4f);
    std::vector<float> f(s.head_dim / 2);
    for (float& x : f) x = std::exp(u(rng));
    vector("rope_freqs.weight", f);
  }
  for (uint32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    vector(p + "attn_norm.weight", normal(E, 1.0, 0.2));
    matrix(p + "attn_q.weight", E, Q, 2.0);
    matrix(p + "attn_k.weight", E, KV, 2.0);
    matrix(p + "attn_v.weight", E, KV, 1.0);
    if (s.qkv_bias) {
      vector(p + "attn_q.bias", normal(Q, 0.0, 0.5));
      vector(p + "attn_k.bias", normal(KV, 0.0, 0.5));
      vector(p + "attn_v.bias", normal(KV, 0.0, 0.5));
    }
    matrix(p + "attn_output.weight", Q, E, 1.0);
    vector(p + "ffn_norm.weight", normal(E, 1.0, 0.2));
    matrix(p + "ffn_gate.weight", E, F, 1.5);
    matrix(p + "ffn_up.weight", E, F, 1.0);
    matrix(p + "ffn_down.weight", F, E, 1.0);
  }
  return ts;
}

Status write_gguf(const std::string& path, const TinySpec& s, const TinyVocab& v,
                  const std::vector<TinyTensor>& ts) {
  model::GgufWriter w;
  const std::string a = s.arch + ".";
  w.add_string("general.architecture", s.arch)
      .add_string("general.name", "tiny-" + s.arch)
      .add_u32(a + "context_length", 512)
      .add_u32(a + "embedding_length", s.n_embd)
      .add_u32(a + "block_count", s.n_layer)
      .add_u32(a + "feed_forward_length", s.n_ff)
      .add_u32(a + "attention.head_count", s.n_head)
      .add_u32(a + "attention.head_count_kv", s.n_head_kv)
      .add_u32(a + "attention.key_length", s.head_dim)
      .add_u32(a + "attention.value_length", s.head_dim)
      .add_u32(a + "rope.dimension_count", s.head_dim)
      .add_f32(a + "rope.freq_base", s.rope_base)
      .add_f32(a + "attention.layer_norm_rms_epsilon", s.rms_eps)
      .add_string("tokenizer.ggml.model", "gpt2")
      .add_string("tokenizer.ggml.pre", s.arch == "qwen2" ? "qwen2" : "default")
      .add_string_array("tokenizer.ggml.tokens", v.tokens)
      .add_i32_array("tokenizer.ggml.token_type", v.types)
      .add_string_array("tokenizer.ggml.merges", v.merges)
      .add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos))
      .add_bool("tokenizer.ggml.add_bos_token", false);
  for (const TinyTensor& t : ts) w.add_tensor(t.name, t.shape, t.type, t.data);
  return w.write_file(path);
}

// The Hugging Face name of a GGUF tensor name (Llama/Qwen2 layout).
std::string hf_name(const std::string& g) {
  static const std::map<std::string, std::string> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  static const std::map<std::string, std::string> kLayer = {
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
      {"ffn_down.weight", "mlp.down_proj.weight"}};
  if (auto it = kGlobal.find(g); it != kGlobal.end()) return it->second;
  const size_t dot = g.find('.', 4);
  return "model.layers." + g.substr(4, dot - 4) + "." + kLayer.at(g.substr(dot + 1));
}

// The Hugging Face row order of a llama-arch GGUF Q or K matrix. llama.cpp's converter permutes
// each head's rows so that RoPE rotates adjacent pairs: GGUF row h*hd + 2i + j holds Hugging Face
// row h*hd + j*hd/2 + i (i < hd/2, j in {0, 1}). This undoes it.
std::vector<uint8_t> unpermute_rows(const std::vector<uint8_t>& data, uint64_t n_rows,
                                    uint32_t head_dim) {
  const size_t row = data.size() / n_rows;
  std::vector<uint8_t> out(data.size());
  for (uint64_t h = 0; h < n_rows / head_dim; ++h)
    for (uint32_t i = 0; i < head_dim / 2; ++i)
      for (uint32_t j = 0; j < 2; ++j) {
        const uint64_t gguf_row = h * head_dim + 2 * i + j;
        const uint64_t hf_row = h * head_dim + j * (head_dim / 2) + i;
        std::memcpy(out.data() + hf_row * row, data.data() + gguf_row * row, row);
      }
  return out;
}

// A Hugging Face directory with the same weights (Qwen2ForCausalLM or LlamaForCausalLM):
// config.json, model.safetensors (PyTorch order = the reversed ggml shape, same bytes; for llama
// the Q/K rows in Hugging Face order) and tokenizer.json.
Status write_hf(const std::string& dir, const TinySpec& s, const TinyVocab& v,
                const std::vector<TinyTensor>& ts) {
  std::filesystem::create_directories(dir);
  const bool qwen2 = s.arch == "qwen2";
  nlohmann::json config = {
      {"architectures", {qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
      {"model_type", s.arch},
      {"hidden_size", s.n_embd},
      {"intermediate_size", s.n_ff},
      {"num_hidden_layers", s.n_layer},
      {"num_attention_heads", s.n_head},
      {"num_key_value_heads", s.n_head_kv},
      {"vocab_size", s.padded_vocab > 0 ? size_t{s.padded_vocab} : v.tokens.size()},
      {"max_position_embeddings", 512},
      {"rope_theta", s.rope_base},
      {"rms_norm_eps", s.rms_eps},
      {"tie_word_embeddings", s.tied},
      {"hidden_act", "silu"},
      {"eos_token_id", v.eos},
      {"torch_dtype", "float32"},
  };
  if (qwen2) {
    config["use_sliding_window"] = false;
  } else {
    config["attention_bias"] = s.qkv_bias;
  }
  std::ofstream(dir + "/config.json") << config.dump(2);

  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < v.tokens.size(); ++i) vocab[v.tokens[i]] = i;
  nlohmann::json added = nlohmann::json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] != 3) continue;
    added.push_back({{"id", i},
                     {"content", v.tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", v.merges}}},
  };
  std::ofstream(dir + "/tokenizer.json") << tokenizer.dump();

  std::vector<model::SafetensorsWriteTensor> st;
  for (const TinyTensor& t : ts) {
    model::SafetensorsWriteTensor w;
    w.name = hf_name(t.name);
    switch (t.type) {
      case GgmlType::kF32:
        w.dtype = model::SafetensorsDtype::kF32;
        break;
      case GgmlType::kF16:
        w.dtype = model::SafetensorsDtype::kF16;
        break;
      case GgmlType::kBF16:
        w.dtype = model::SafetensorsDtype::kBF16;
        break;
      default:
        return invalid_argument("safetensors cannot hold " + t.name);
    }
    w.shape.assign(t.shape.rbegin(), t.shape.rend());
    const bool q_or_k =
        t.name.find("attn_q.") != std::string::npos || t.name.find("attn_k.") != std::string::npos;
    w.data = !qwen2 && q_or_k
                 ? unpermute_rows(t.data, t.shape.size() > 1 ? t.shape[1] : t.shape[0], s.head_dim)
                 : t.data;
    st.push_back(std::move(w));
  }
  return model::write_safetensors(dir + "/model.safetensors", st, {{"format", "pt"}});
}

// ---------------------------------------------------------------------------------------------
// Running and comparing

// Three prompts of random token ids (lengths 7, 33 and 48: within one attention block, across
// key blocks and query blocks), then kDecodeSteps decode steps of fixed tokens.
constexpr int kDecodeSteps = 4;

std::vector<std::vector<int32_t>> prompts(int32_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, n_vocab - 1);
  std::vector<std::vector<int32_t>> ps;
  for (int n : {7, 33, 48}) {
    std::vector<int32_t> p(static_cast<size_t>(n + kDecodeSteps));
    for (int32_t& t : p) t = tok(rng);
    ps.push_back(std::move(p));
  }
  return ps;
}

// Our logits for every position of every prompt: the prompts (all but their last kDecodeSteps
// tokens) prefilled together in one batch, then the remaining tokens decoded one step at a time
// for all three sequences together. Result [prompt][position][n_vocab].
std::vector<std::vector<std::vector<float>>> backend_logits(
    backend::Backend& be, const std::vector<std::vector<int32_t>>& ps) {
  const int32_t V = static_cast<int32_t>(be.config().n_vocab);
  std::vector<std::vector<std::vector<float>>> out(ps.size());
  std::vector<std::vector<int32_t>> slots;
  std::vector<SeqRequest> batch;
  for (size_t i = 0; i < ps.size(); ++i) {
    slots.push_back(iota_slots(static_cast<int32_t>(100 * i), static_cast<int32_t>(ps[i].size())));
    const int32_t n = static_cast<int32_t>(ps[i].size()) - kDecodeSteps;
    batch.push_back({std::vector<int32_t>(ps[i].begin(), ps[i].begin() + n), 0,
                     std::vector<int32_t>(slots[i].begin(), slots[i].begin() + n), true});
  }
  auto o = run_forward(be, batch);
  if (o.size() != ps.size()) return {};
  for (size_t i = 0; i < ps.size(); ++i)
    for (size_t r = 0; r < o[i].size() / V; ++r)
      out[i].emplace_back(o[i].begin() + r * V, o[i].begin() + (r + 1) * V);
  for (int step = 0; step < kDecodeSteps; ++step) {
    batch.clear();
    for (size_t i = 0; i < ps.size(); ++i) {
      const int32_t pos = static_cast<int32_t>(ps[i].size()) - kDecodeSteps + step;
      batch.push_back({{ps[i][pos]},
                       pos,
                       std::vector<int32_t>(slots[i].begin(), slots[i].begin() + pos + 1),
                       false});
    }
    o = run_forward(be, batch);
    if (o.size() != ps.size()) return {};
    for (size_t i = 0; i < ps.size(); ++i) out[i].push_back(std::move(o[i]));
  }
  return out;
}

struct Comparison {
  double nmse_mean = 0, nmse_max = 0;
  int rows = 0, clear_rows = 0, clear_top1_agree = 0;
};

// NMSE of every row and top-1 agreement on rows whose reference top-2 gap is "clear": larger
// than clear_gap times the row's RMS.
Comparison compare(const std::vector<std::vector<std::vector<float>>>& ours,
                   const std::vector<std::vector<std::vector<double>>>& ref, double clear_gap) {
  Comparison c;
  for (size_t i = 0; i < ref.size(); ++i) {
    for (size_t t = 0; t < ref[i].size(); ++t) {
      const std::vector<double>& r = ref[i][t];
      const std::vector<float>& a = ours[i][t];
      const double e = testing::nmse(a.data(), r.data(), r.size());
      c.nmse_mean += e;
      c.nmse_max = std::max(c.nmse_max, e);
      ++c.rows;
      std::vector<double> sorted = r;
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      double ss = 0;
      for (double x : r) ss += x * x;
      if (sorted[0] - sorted[1] > clear_gap * std::sqrt(ss / static_cast<double>(r.size()))) {
        ++c.clear_rows;
        const int32_t best = static_cast<int32_t>(std::max_element(r.begin(), r.end()) - r.begin());
        if (argmax(a.data(), static_cast<int32_t>(a.size())) == best) ++c.clear_top1_agree;
      }
    }
  }
  c.nmse_mean /= std::max(1, c.rows);
  return c;
}

// Tolerances. With f32/f16/bf16 weights and an f32 KV cache the only differences from the exact
// reference are f32 rounding (measured NMSE ~3e-13); an f16 or bf16 cache adds its rounding of
// K and V (~5e-7, ~4e-5). Quantized weights multiply int8-quantized
// activations (per 32 elements, or per 256 for the K formats, whose error is about twice as
// large); that noise is amplified through the layers to a measured NMSE of ~6e-4 (32-blocks) and
// ~1.1e-3 (K formats) on these random models. Top-1 must agree wherever the reference's top-2
// gap exceeds the given multiple of the row's RMS, well above the noise.
constexpr double kFloatMeanTol = 1e-11, kFloatMaxTol = 1e-10;  // KV f32
constexpr double kF16KvMeanTol = 1e-5, kF16KvMaxTol = 1e-4;
constexpr double kBF16KvMeanTol = 3e-4, kBF16KvMaxTol = 2e-3;
constexpr double kFloatClearGap = 0.02;
constexpr double kQuantClearGap = 0.25;

std::unique_ptr<backend::CpuBackend> make_backend(const LoadedModel& model, const TinySpec& spec) {
  backend::CpuBackendOptions o;
  o.n_threads = 2;
  o.kv_capacity = 512;
  o.kv_dtype = spec.kv_dtype;
  auto be = backend::CpuBackend::create(model, o);
  EXPECT_TRUE(be.is_ok()) << be.status().to_string();
  return be.is_ok() ? std::move(*be) : nullptr;
}

class SyntheticModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info->name();  // "MatchesReference/q4_K" for parameterized tests
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = (std::filesystem::temp_directory_path() /
            ("sgl_synthetic_" + std::to_string(::getpid()) + "_" + name))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes the model as GGUF, loads it, and checks the backend against the reference.
  // Returns the backend's logits (for further comparisons).
  std::vector<std::vector<std::vector<float>>> check_against_reference(
      const TinySpec& spec, const std::string& label, double nmse_mean_tol, double nmse_max_tol,
      double clear_gap,
      std::vector<std::function<void(const LoadedModel&,
                                     const std::vector<std::vector<std::vector<float>>>&)>>
          extra = {}) {
    const TinyVocab vocab = tiny_vocab();
    const auto tensors = make_tensors(spec, static_cast<uint32_t>(vocab.tokens.size()));
    const std::string path = dir_ + "/model.gguf";
    const Status ws = write_gguf(path, spec, vocab, tensors);
    EXPECT_TRUE(ws.is_ok()) << ws.to_string();
    auto model = load_model(path);
    EXPECT_TRUE(model.is_ok()) << model.status().to_string();
    if (!model.is_ok()) return {};
    const model::ModelConfig& c = (*model)->config;
    EXPECT_EQ(c.arch, spec.arch);
    EXPECT_EQ(c.tied_embeddings, spec.tied);
    EXPECT_EQ(c.attn_qkv_bias, spec.qkv_bias);
    EXPECT_EQ(c.n_vocab, vocab.tokens.size());

    auto be = make_backend(**model, spec);
    if (be == nullptr) return {};
    const auto ps = prompts(static_cast<int32_t>(c.n_vocab), spec.seed + 100);
    const auto ours = backend_logits(*be, ps);
    EXPECT_EQ(ours.size(), ps.size());
    if (ours.size() != ps.size()) return {};

    auto ref_model = ReferenceModel::create(**model);
    EXPECT_TRUE(ref_model.is_ok()) << ref_model.status().to_string();
    if (!ref_model.is_ok()) return {};
    std::vector<std::vector<std::vector<double>>> ref;
    for (const auto& p : ps) ref.push_back(ref_model->forward(p));

    const Comparison cmp = compare(ours, ref, clear_gap);
    std::cout << "[synthetic] " << label << ": NMSE mean " << cmp.nmse_mean << " max "
              << cmp.nmse_max << " over " << cmp.rows << " rows; top-1 " << cmp.clear_top1_agree
              << "/" << cmp.clear_rows << " rows with a clear top-2 gap\n";
    RecordProperty(label + "_nmse_mean", std::to_string(cmp.nmse_mean));
    RecordProperty(label + "_nmse_max", std::to_string(cmp.nmse_max));
    EXPECT_LE(cmp.nmse_mean, nmse_mean_tol) << label;
    EXPECT_LE(cmp.nmse_max, nmse_max_tol) << label;
    EXPECT_GE(cmp.clear_rows, cmp.rows / 4) << label << ": too few clear rows to judge top-1";
    EXPECT_EQ(cmp.clear_top1_agree, cmp.clear_rows) << label;
    for (auto& f : extra) f(**model, ours);
    return ours;
  }

  std::string dir_;
};

// The reference with a deliberate mistake must disagree with the backend by far more than the
// tolerance: proof that the comparison sees the thing it is meant to check.
void expect_negative_control(const LoadedModel& model,
                             const std::vector<std::vector<std::vector<float>>>& ours,
                             const ReferenceOptions& wrong, uint32_t prompt_seed,
                             const std::string& what) {
  auto ref_model = ReferenceModel::create(model, wrong);
  ASSERT_TRUE(ref_model.is_ok()) << ref_model.status().to_string();
  const auto ps = prompts(static_cast<int32_t>(model.config.n_vocab), prompt_seed);
  std::vector<std::vector<std::vector<double>>> ref;
  for (const auto& p : ps) ref.push_back(ref_model->forward(p));
  const Comparison cmp = compare(ours, ref, 0.05);
  std::cout << "[synthetic] negative control (" << what << "): NMSE mean " << cmp.nmse_mean << "\n";
  EXPECT_GT(cmp.nmse_mean, 1e-2) << what;
}

TinySpec qwen2_spec() {
  TinySpec s;
  s.arch = "qwen2";
  s.qkv_bias = true;
  s.rope_base = 1000000.0f;
  s.rms_eps = 1e-6f;
  s.seed = 11;
  s.kv_dtype = backend::KvDtype::kF32;
  s.type_of = [](const std::string& name) {
    if (name.find("attn_k") != std::string::npos || name.find("ffn_up") != std::string::npos)
      return GgmlType::kF16;
    if (name.find("attn_v") != std::string::npos || name == "output.weight") return GgmlType::kBF16;
    return GgmlType::kF32;
  };
  return s;
}

TEST_F(SyntheticModelTest, Qwen2StyleMatchesReferenceAndHuggingFaceCheckpoint) {
  const TinySpec spec = qwen2_spec();
  const auto ours = check_against_reference(
      spec, "qwen2", kFloatMeanTol, kFloatMaxTol, kFloatClearGap,
      {[&](const LoadedModel& m, const auto& o) {
        EXPECT_EQ(m.config.rope_type, model::RopeType::kNeox);
        ReferenceOptions wrong;
        wrong.swap_rope_layout = true;
        expect_negative_control(m, o, wrong, spec.seed + 100, "adjacent-pair RoPE");
      }});
  ASSERT_FALSE(ours.empty());

  // The same weights as a Hugging Face checkpoint directory.
  const TinyVocab vocab = tiny_vocab();
  const auto tensors = make_tensors(spec, static_cast<uint32_t>(vocab.tokens.size()));
  const std::string hf_dir = dir_ + "/hf";
  const Status ws = write_hf(hf_dir, spec, vocab, tensors);
  ASSERT_TRUE(ws.is_ok()) << ws.to_string();
  auto hf = load_model(hf_dir);
  ASSERT_TRUE(hf.is_ok()) << hf.status().to_string();
  EXPECT_EQ((*hf)->format, ModelFormat::kSafetensors);
  EXPECT_EQ((*hf)->config.arch, "qwen2");
  EXPECT_EQ((*hf)->config.rope_type, model::RopeType::kNeox);
  EXPECT_TRUE((*hf)->config.attn_qkv_bias);

  // Both tokenizers split text the same way.
  auto gguf = load_model(dir_ + "/model.gguf");
  ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
  const std::string text = "the other station is near the sea<|im_end|> and then";
  const auto ids_gguf = (*gguf)->tok().encode(text, false, true);
  const auto ids_hf = (*hf)->tok().encode(text, false, true);
  EXPECT_EQ(ids_gguf, ids_hf);
  const int32_t im_end = *(*hf)->tok().find_token("<|im_end|>");
  EXPECT_NE(std::find(ids_hf.begin(), ids_hf.end(), im_end), ids_hf.end());
  EXPECT_NE(std::find(ids_hf.begin(), ids_hf.end(), *(*hf)->tok().find_token("th")), ids_hf.end());

  auto be = make_backend(**hf, spec);
  ASSERT_NE(be, nullptr);
  const auto hf_logits =
      backend_logits(*be, prompts(static_cast<int32_t>((*hf)->config.n_vocab), spec.seed + 100));
  ASSERT_EQ(hf_logits.size(), ours.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    ASSERT_EQ(hf_logits[i].size(), ours[i].size());
    for (size_t t = 0; t < ours[i].size(); ++t)
      EXPECT_EQ(
          std::memcmp(hf_logits[i][t].data(), ours[i][t].data(), ours[i][t].size() * sizeof(float)),
          0)
          << "prompt " << i << " position " << t << ": HF and GGUF logits differ";
  }
}

TEST_F(SyntheticModelTest, EngineNeverSamplesEmbeddingRowsPastTheTokenizer) {
  // A checkpoint whose embedding is padded past its tokenizer (vocab_size > tokens): random
  // weights give the padding rows ordinary logits, so sampling at temperature 1 would pick them
  // within a few dozen tokens unless the engine masks them.
  TinySpec spec = qwen2_spec();
  const TinyVocab vocab = tiny_vocab();
  const uint32_t n_tok = static_cast<uint32_t>(vocab.tokens.size());
  spec.padded_vocab = n_tok + 64;
  const std::string hf_dir = dir_ + "/padded";
  ASSERT_TRUE(write_hf(hf_dir, spec, vocab, make_tensors(spec, spec.padded_vocab)).is_ok());
  runtime::EngineOptions o;
  o.threads = 2;
  o.max_total_tokens = 2048;
  auto e = runtime::Engine::create(hf_dir, o);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ((*e)->n_vocab(), static_cast<int32_t>(spec.padded_vocab));
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    runtime::GenerateRequest r;
    r.rid = "padded-" + std::to_string(seed);
    r.input_ids = {5, 17, 42, 99};
    r.params.max_new_tokens = 96;
    r.params.temperature = 1.0f;
    r.params.ignore_eos = true;
    r.params.sampling_seed = seed;
    auto h = (*e)->submit(std::move(r));
    ASSERT_TRUE(h.is_ok()) << h.status().to_string();
    auto out = (*h)->wait();
    ASSERT_TRUE(out.is_ok());
    EXPECT_EQ(out->finish_reason.kind, runtime::FinishReason::kLength) << out->finish_reason.message;
    EXPECT_EQ(out->output_ids.size(), 96u);
    for (int32_t id : out->output_ids) EXPECT_LT(id, static_cast<int32_t>(n_tok));
  }
}

TEST_F(SyntheticModelTest, Llama3StyleWithRopeFreqs) {
  TinySpec s;
  s.arch = "llama";
  s.n_layer = 3;
  s.rope_freqs = true;
  s.rope_base = 10000.0f;
  s.seed = 22;
  s.type_of = [](const std::string& name) {
    return name.find("ffn") != std::string::npos || name == "token_embd.weight" ? GgmlType::kF16
                                                                                : GgmlType::kF32;
  };
  // With the KV cache in f16 and bf16 (rounding K/V to 11 and 8 significant bits).
  s.kv_dtype = backend::KvDtype::kF16;
  check_against_reference(s, "llama3_kv_f16", kF16KvMeanTol, kF16KvMaxTol, kFloatClearGap);
  s.kv_dtype = backend::KvDtype::kBF16;
  check_against_reference(s, "llama3_kv_bf16", kBF16KvMeanTol, kBF16KvMaxTol, kFloatClearGap);
  s.kv_dtype = backend::KvDtype::kF32;
  check_against_reference(s, "llama3", kFloatMeanTol, kFloatMaxTol, kFloatClearGap,
                          {[&](const LoadedModel& m, const auto& o) {
                             EXPECT_EQ(m.config.rope_type, model::RopeType::kNorm);
                             ReferenceOptions wrong;
                             wrong.ignore_rope_freqs = true;
                             expect_negative_control(m, o, wrong, s.seed + 100,
                                                     "rope_freqs ignored");
                           },
                           [&](const LoadedModel& m, const auto& o) {
                             ReferenceOptions wrong;
                             wrong.swap_rope_layout = true;
                             expect_negative_control(m, o, wrong, s.seed + 100, "halves RoPE");
                           }});
}

// fp8 KV caches are the CUDA backend's alone: the CPU backend refuses them, naming the type.
TEST_F(SyntheticModelTest, CpuBackendRefusesFp8Kv) {
  TinySpec s;
  s.arch = "llama";
  const TinyVocab vocab = tiny_vocab();
  const std::string path = dir_ + "/model.gguf";
  ASSERT_TRUE(write_gguf(path, s, vocab, make_tensors(s, uint32_t(vocab.tokens.size()))).is_ok());
  auto model = load_model(path);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  for (const auto kv : {backend::KvDtype::kFp8E4M3, backend::KvDtype::kFp8E5M2}) {
    backend::CpuBackendOptions o;
    o.n_threads = 1;
    o.kv_capacity = 64;
    o.kv_dtype = kv;
    auto be = backend::CpuBackend::create(**model, o);
    ASSERT_FALSE(be.is_ok());
    EXPECT_EQ(be.status().code(), StatusCode::kUnsupported) << be.status().to_string();
    EXPECT_NE(be.status().message().find(backend::kv_dtype_name(kv)), std::string::npos)
        << be.status().to_string();
  }
  backend::CpuBackendOptions o;
  o.n_threads = 1;
  o.kv_capacity = 64;
  o.kv_dtype = backend::KvDtype::kBF16;
  EXPECT_TRUE(backend::CpuBackend::create(**model, o).is_ok());
}

TEST_F(SyntheticModelTest, EveryWeightFormatMixed) {
  TinySpec s;
  s.arch = "llama";
  s.n_embd = 256;  // the K formats need rows of whole 256-element super-blocks
  s.n_ff = 512;
  s.n_layer = 3;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 64;
  s.tied = true;
  s.seed = 33;
  static const std::map<std::string, GgmlType> kTypes = {
      {"token_embd.weight", GgmlType::kQ8_0},        {"blk.0.attn_q.weight", GgmlType::kF16},
      {"blk.0.attn_k.weight", GgmlType::kBF16},      {"blk.0.attn_v.weight", GgmlType::kQ8_0},
      {"blk.0.attn_output.weight", GgmlType::kQ4_0}, {"blk.0.ffn_gate.weight", GgmlType::kQ5_0},
      {"blk.0.ffn_up.weight", GgmlType::kQ5_1},      {"blk.0.ffn_down.weight", GgmlType::kQ4_1},
      {"blk.1.attn_q.weight", GgmlType::kQ4_K},      {"blk.1.attn_k.weight", GgmlType::kQ5_K},
      {"blk.1.attn_v.weight", GgmlType::kQ6_K},      {"blk.1.attn_output.weight", GgmlType::kQ2_K},
      {"blk.1.ffn_gate.weight", GgmlType::kQ3_K},    {"blk.1.ffn_up.weight", GgmlType::kQ4_K},
      {"blk.1.ffn_down.weight", GgmlType::kQ5_K},    {"blk.2.attn_q.weight", GgmlType::kQ6_K},
      {"blk.2.attn_k.weight", GgmlType::kQ8_0},      {"blk.2.attn_v.weight", GgmlType::kQ5_0},
      {"blk.2.attn_output.weight", GgmlType::kF16},  {"blk.2.ffn_gate.weight", GgmlType::kQ6_K},
      {"blk.2.ffn_up.weight", GgmlType::kBF16},      {"blk.2.ffn_down.weight", GgmlType::kF32},
  };
  s.type_of = [](const std::string& name) { return kTypes.at(name); };
  check_against_reference(s, "quant_mix", 3e-3, 1e-2, kQuantClearGap);
}

// A LlamaForCausalLM checkpoint holds Q/K in Hugging Face row order and rotates halves (NEOX);
// the llama-arch GGUF of the same model holds the converter's permuted rows and rotates adjacent
// pairs. Both must compute the same function: only the order of some f32 sums differs.
TEST_F(SyntheticModelTest, LlamaHuggingFaceCheckpointMatchesPermutedGguf) {
  TinySpec s;
  s.arch = "llama";
  s.seed = 55;
  s.kv_dtype = backend::KvDtype::kF32;
  s.type_of = [](const std::string& name) {
    return name.find("attn_k") != std::string::npos ? GgmlType::kBF16 : GgmlType::kF32;
  };
  const auto ours =
      check_against_reference(s, "llama_gguf", kFloatMeanTol, kFloatMaxTol, kFloatClearGap);
  ASSERT_FALSE(ours.empty());
  const TinyVocab vocab = tiny_vocab();
  const auto tensors = make_tensors(s, static_cast<uint32_t>(vocab.tokens.size()));
  const std::string hf_dir = dir_ + "/hf";
  const Status ws = write_hf(hf_dir, s, vocab, tensors);
  ASSERT_TRUE(ws.is_ok()) << ws.to_string();
  auto hf = load_model(hf_dir);
  ASSERT_TRUE(hf.is_ok()) << hf.status().to_string();
  EXPECT_EQ((*hf)->config.arch, "llama");
  EXPECT_EQ((*hf)->config.rope_type, model::RopeType::kNeox);
  auto be = make_backend(**hf, s);
  ASSERT_NE(be, nullptr);
  const auto hf_logits =
      backend_logits(*be, prompts(static_cast<int32_t>((*hf)->config.n_vocab), s.seed + 100));
  ASSERT_EQ(hf_logits.size(), ours.size());
  double worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    ASSERT_EQ(hf_logits[i].size(), ours[i].size());
    for (size_t t = 0; t < ours[i].size(); ++t) {
      worst = std::max(worst,
                       testing::nmse(hf_logits[i][t].data(), ours[i][t].data(), ours[i][t].size()));
      EXPECT_EQ(argmax(hf_logits[i][t].data(), static_cast<int32_t>(hf_logits[i][t].size())),
                argmax(ours[i][t].data(), static_cast<int32_t>(ours[i][t].size())));
    }
  }
  std::cout << "[synthetic] llama HF vs GGUF: NMSE max " << worst << "\n";
  EXPECT_LE(worst, 1e-10);
}

// Every matrix in one format: isolates each format's kernel (and its activation quantization).
// Float formats run with an f32 KV cache, so any error beyond f32 rounding shows.
constexpr backend::KvDtype kKvF32 = backend::KvDtype::kF32;
struct FormatCase {
  GgmlType type;
  double nmse_mean_tol, nmse_max_tol, clear_gap;
  backend::KvDtype kv_dtype = backend::KvDtype::kF16;
};

class SyntheticFormatTest : public SyntheticModelTest,
                            public ::testing::WithParamInterface<FormatCase> {};

TEST_P(SyntheticFormatTest, MatchesReference) {
  const FormatCase fc = GetParam();
  TinySpec s;
  s.arch = "llama";
  s.n_embd = 256;
  s.n_ff = 512;
  s.n_layer = 2;
  s.head_dim = 64;
  s.seed = 44 + static_cast<uint32_t>(fc.type);
  s.type_of = [t = fc.type](const std::string&) { return t; };
  s.kv_dtype = fc.kv_dtype;
  check_against_reference(s, std::string(model::ggml_type_name(fc.type)), fc.nmse_mean_tol,
                          fc.nmse_max_tol, fc.clear_gap);
}

INSTANTIATE_TEST_SUITE_P(Formats, SyntheticFormatTest,
                         ::testing::Values(FormatCase{GgmlType::kF32, kFloatMeanTol, kFloatMaxTol,
                                                      kFloatClearGap, kKvF32},
                                           FormatCase{GgmlType::kF16, kFloatMeanTol, kFloatMaxTol,
                                                      kFloatClearGap, kKvF32},
                                           FormatCase{GgmlType::kBF16, kFloatMeanTol, kFloatMaxTol,
                                                      kFloatClearGap, kKvF32},
                                           FormatCase{GgmlType::kQ8_0, 2e-3, 1e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ4_0, 2e-3, 1e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ4_1, 2e-3, 1e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ5_0, 2e-3, 1e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ5_1, 2e-3, 1e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ2_K, 4e-3, 2e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ3_K, 4e-3, 2e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ4_K, 4e-3, 2e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ5_K, 4e-3, 2e-2, kQuantClearGap},
                                           FormatCase{GgmlType::kQ6_K, 4e-3, 2e-2, kQuantClearGap}),
                         [](const ::testing::TestParamInfo<FormatCase>& info) {
                           return std::string(model::ggml_type_name(info.param.type));
                         });

}  // namespace
}  // namespace sgl::models
