#include "model/model_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "test_files.h"

namespace sgl::model {
namespace {

using nlohmann::json;
using testing::default_model_path;
using testing::test_data;

// A minimal llama-arch GGUF header (no tensors unless added by the caller).
GgufWriter llama_writer(const std::string& arch = "llama") {
  GgufWriter w;
  const std::string p = arch + ".";
  w.add_string("general.architecture", arch)
      .add_u32(p + "context_length", 4096)
      .add_u32(p + "embedding_length", 256)
      .add_u32(p + "block_count", 2)
      .add_u32(p + "feed_forward_length", 512)
      .add_u32(p + "attention.head_count", 8)
      .add_f32(p + "attention.layer_norm_rms_epsilon", 1e-6f)
      .add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "d"});
  return w;
}

Result<ModelConfig> config_of(const GgufWriter& w) {
  Result<std::vector<uint8_t>> bytes = w.to_bytes();
  if (!bytes.is_ok()) return bytes.status();
  Result<GgufFile> f = GgufFile::from_buffer(std::move(bytes).value());
  if (!f.is_ok()) return f.status();
  return ModelConfig::from_gguf(*f);
}

void expect_error(const Result<ModelConfig>& r, const std::string& fragment,
                  std::optional<StatusCode> code = std::nullopt) {
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_NE(r.status().message().find(fragment), std::string::npos)
      << "message: " << r.status().message();
  if (code) {
    EXPECT_EQ(r.status().code(), *code) << r.status().to_string();
  }
}

json load_json(const std::string& rel) {
  std::vector<uint8_t> bytes = testing::read_file_bytes(test_data(rel));
  return json::parse(bytes.begin(), bytes.end());
}

// ---------------------------------------------------------------------------------------------
// GGUF

TEST(ModelConfigGguf, DefaultModel) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not found at " << path;
  Result<GgufFile> f = GgufFile::open(path);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  Result<ModelConfig> r = ModelConfig::from_gguf(*f);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.source, "gguf");
  EXPECT_EQ(c.n_layer, 30u);
  EXPECT_EQ(c.n_embd, 576u);
  EXPECT_EQ(c.n_head, 9u);
  EXPECT_EQ(c.n_head_kv, 3u);
  EXPECT_EQ(c.head_dim, 64u);
  EXPECT_EQ(c.n_ff, 1536u);
  EXPECT_EQ(c.n_vocab, 49152u);
  EXPECT_EQ(c.context_length, 8192u);
  EXPECT_EQ(c.rope_freq_base, 100000.0f);
  EXPECT_EQ(c.rope_dim, 64u);
  EXPECT_EQ(c.rope_type, RopeType::kNorm);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.attn_qkv_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{2}));
  EXPECT_NE(c.summary().find("layers:         30"), std::string::npos);
  const json j = c.to_json();
  EXPECT_EQ(j["n_layer"], 30);
  EXPECT_EQ(j["rope_type"], "norm");
  EXPECT_EQ(j["tied_embeddings"], true);
}

TEST(ModelConfigGguf, DefaultsAndDerivedValues) {
  Result<ModelConfig> r = config_of(llama_writer());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->n_head_kv, 8u);  // absent head_count_kv = head_count
  EXPECT_EQ(r->head_dim, 32u);  // 256 / 8
  EXPECT_EQ(r->rope_dim, 32u);  // absent dimension_count = head_dim
  EXPECT_EQ(r->n_vocab, 4u);    // from tokenizer.ggml.tokens
  EXPECT_EQ(r->rope_freq_base, 10000.0f);
  EXPECT_TRUE(r->tied_embeddings);  // no output.weight
  EXPECT_EQ(r->bos_token_id, -1);
  EXPECT_TRUE(r->eos_token_ids.empty());
}

TEST(ModelConfigGguf, VocabFromEmbeddingAndUntied) {
  GgufWriter w;
  w.add_string("general.architecture", "llama")
      .add_u32("llama.context_length", 128)
      .add_u32("llama.embedding_length", 64)
      .add_u32("llama.block_count", 1)
      .add_u32("llama.feed_forward_length", 128)
      .add_u32("llama.attention.head_count", 4)
      .add_u32("llama.attention.head_count_kv", 2)
      .add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
      .add_u32("tokenizer.ggml.eos_token_id", 3)
      .add_u32("tokenizer.ggml.eot_token_id", 5)
      .add_f32_tensor("token_embd.weight", {64, 10}, std::vector<float>(640))
      .add_f32_tensor("output.weight", {64, 10}, std::vector<float>(640))
      .add_f32_tensor("blk.0.attn_q.bias", {64}, std::vector<float>(64));
  Result<ModelConfig> r = config_of(w);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->n_vocab, 10u);
  EXPECT_FALSE(r->tied_embeddings);
  EXPECT_TRUE(r->attn_qkv_bias);  // llama with bias tensors
  EXPECT_EQ(r->n_head_kv, 2u);
  EXPECT_EQ(r->eos_token_ids, (std::vector<int32_t>{3, 5}));
}

TEST(ModelConfigGguf, Qwen2IsNeoxWithBias) {
  GgufWriter w = llama_writer("qwen2");
  w.add_u32("qwen2.attention.head_count_kv", 2).add_f32("qwen2.rope.freq_base", 1e6f);
  Result<ModelConfig> r = config_of(w);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->arch, "qwen2");
  EXPECT_EQ(r->rope_type, RopeType::kNeox);
  EXPECT_TRUE(r->attn_qkv_bias);
  EXPECT_EQ(r->rope_freq_base, 1e6f);
}

TEST(ModelConfigGguf, RopeScalingKeys) {
  GgufWriter lin = llama_writer();
  lin.add_string("llama.rope.scaling.type", "linear").add_f32("llama.rope.scaling.factor", 4);
  Result<ModelConfig> r = config_of(lin);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_EQ(r->rope_scaling.factor, 4.0f);

  GgufWriter legacy = llama_writer();
  legacy.add_f32("llama.rope.scale_linear", 2);
  r = config_of(legacy);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_EQ(r->rope_scaling.factor, 2.0f);

  GgufWriter yarn = llama_writer();
  yarn.add_string("llama.rope.scaling.type", "yarn")
      .add_f32("llama.rope.scaling.factor", 4)
      .add_u32("llama.rope.scaling.original_context_length", 1024);
  r = config_of(yarn);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(r->rope_scaling.original_context_length, 1024u);

  GgufWriter odd = llama_writer();
  odd.add_string("llama.rope.scaling.type", "longrope");
  expect_error(config_of(odd), "longrope", StatusCode::kUnsupported);
}

TEST(ModelConfigGguf, Errors) {
  GgufWriter gpt2;
  gpt2.add_string("general.architecture", "gpt2");
  expect_error(config_of(gpt2), "architecture 'gpt2' is not supported", StatusCode::kUnsupported);

  GgufWriter none;
  none.add_u32("x", 1);
  expect_error(config_of(none), "general.architecture", StatusCode::kNotFound);

  GgufWriter missing;
  missing.add_string("general.architecture", "llama").add_u32("llama.context_length", 1);
  expect_error(config_of(missing), "llama.embedding_length", StatusCode::kNotFound);

  GgufWriter wrong = llama_writer();
  wrong.add_string("llama.attention.head_count_kv", "2");
  expect_error(config_of(wrong), "'llama.attention.head_count_kv': expected u32, got string");

  GgufWriter gqa = llama_writer();
  gqa.add_u32("llama.attention.head_count_kv", 3);
  expect_error(config_of(gqa), "n_head 8 is not a multiple of n_head_kv 3");

  GgufWriter kv_too_many = llama_writer();
  kv_too_many.add_u32("llama.attention.head_count_kv", 16);
  expect_error(config_of(kv_too_many), "n_head_kv = 16");

  GgufWriter zero_layers;
  zero_layers.add_string("general.architecture", "llama")
      .add_u32("llama.context_length", 4096)
      .add_u32("llama.embedding_length", 256)
      .add_u32("llama.block_count", 0)
      .add_u32("llama.feed_forward_length", 512)
      .add_u32("llama.attention.head_count", 8)
      .add_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f)
      .add_u32("llama.vocab_size", 10);
  expect_error(config_of(zero_layers), "n_layer = 0");

  GgufWriter bad_rope = llama_writer();
  bad_rope.add_u32("llama.rope.dimension_count", 33);
  expect_error(config_of(bad_rope), "rope_dim");

  GgufWriter bad_eps = llama_writer();
  bad_eps.add_f32("llama.rope.freq_base", -1);
  expect_error(config_of(bad_eps), "rope_freq_base");

  GgufWriter indivisible;
  indivisible.add_string("general.architecture", "llama")
      .add_u32("llama.context_length", 4096)
      .add_u32("llama.embedding_length", 100)
      .add_u32("llama.block_count", 1)
      .add_u32("llama.feed_forward_length", 512)
      .add_u32("llama.attention.head_count", 8)
      .add_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  expect_error(config_of(indivisible), "not a multiple of head_count 8");

  GgufWriter no_vocab = indivisible;
  no_vocab.add_u32("llama.attention.key_length", 16);  // explicit head_dim: 100 % 8 is fine now
  expect_error(config_of(no_vocab), "vocabulary size", StatusCode::kNotFound);

  GgufWriter bad_eos = llama_writer();
  bad_eos.add_u32("tokenizer.ggml.eos_token_id", 4);  // 4 tokens: ids 0..3
  expect_error(config_of(bad_eos), "eos token id 4");
}

// ---------------------------------------------------------------------------------------------
// Hugging Face config.json

TEST(ModelConfigHf, Llama31_8B) {
  Result<ModelConfig> r = ModelConfig::from_hf_config_file(test_data("configs/llama-3.1-8b.json"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.source, "hf");
  EXPECT_EQ(c.n_embd, 4096u);
  EXPECT_EQ(c.n_layer, 32u);
  EXPECT_EQ(c.n_head, 32u);
  EXPECT_EQ(c.n_head_kv, 8u);
  EXPECT_EQ(c.head_dim, 128u);
  EXPECT_EQ(c.rope_dim, 128u);
  EXPECT_EQ(c.n_ff, 14336u);
  EXPECT_EQ(c.n_vocab, 128256u);
  EXPECT_EQ(c.context_length, 131072u);
  EXPECT_EQ(c.rope_freq_base, 500000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.rope_type, RopeType::kNeox);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_scaling.original_context_length, 8192u);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_FALSE(c.attn_qkv_bias);
  EXPECT_EQ(c.sliding_window, 0u);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  const json j = c.to_json();
  EXPECT_EQ(j["rope_scaling"]["type"], "llama3");
  EXPECT_EQ(j["rope_scaling"]["original_context_length"], 8192);
  EXPECT_NE(c.summary().find("llama3 (factor 8, original context 8192)"), std::string::npos)
      << c.summary();
}

TEST(ModelConfigHf, Qwen25_05B) {
  Result<ModelConfig> r = ModelConfig::from_hf_config_file(test_data("configs/qwen2.5-0.5b.json"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.n_embd, 896u);
  EXPECT_EQ(c.n_layer, 24u);
  EXPECT_EQ(c.n_head, 14u);
  EXPECT_EQ(c.n_head_kv, 2u);
  EXPECT_EQ(c.head_dim, 64u);
  EXPECT_EQ(c.n_ff, 4864u);
  EXPECT_EQ(c.n_vocab, 151936u);
  EXPECT_EQ(c.context_length, 32768u);
  EXPECT_EQ(c.rope_freq_base, 1000000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_TRUE(c.attn_qkv_bias);
  EXPECT_EQ(c.rope_type, RopeType::kNeox);
  EXPECT_EQ(c.sliding_window, 0u);  // use_sliding_window is false
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{151643}));
}

TEST(ModelConfigHf, Mistral7B) {
  Result<ModelConfig> r =
      ModelConfig::from_hf_config_file(test_data("configs/mistral-7b-v0.1.json"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ModelConfig& c = *r;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_vocab, 32000u);
  EXPECT_EQ(c.n_head_kv, 8u);
  EXPECT_EQ(c.context_length, 32768u);
  EXPECT_EQ(c.rope_freq_base, 10000.0f);
  EXPECT_EQ(c.sliding_window, 4096u);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_FALSE(c.attn_qkv_bias);
  EXPECT_EQ(c.bos_token_id, 1);
}

TEST(ModelConfigHf, RopeScalingVariants) {
  json base = load_json("configs/llama-3.1-8b.json");
  json j = base;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  Result<ModelConfig> r = ModelConfig::from_hf_config_json(j);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_EQ(r->rope_scaling.factor, 2.0f);

  j["rope_scaling"] = {{"rope_type", "yarn"},
                       {"factor", 4.0},
                       {"original_max_position_embeddings", 32768},
                       {"beta_fast", 16}};
  r = ModelConfig::from_hf_config_json(j);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(r->rope_scaling.original_context_length, 32768u);
  EXPECT_EQ(r->rope_scaling.beta_fast, 16.0f);
  EXPECT_EQ(r->rope_scaling.beta_slow, 1.0f);

  j["rope_scaling"] = nullptr;
  r = ModelConfig::from_hf_config_json(j);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kNone);

  j["rope_scaling"] = {{"rope_type", "default"}};
  r = ModelConfig::from_hf_config_json(j);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->rope_scaling.type, RopeScalingType::kNone);

  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  expect_error(ModelConfig::from_hf_config_json(j), "rope_scaling type 'dynamic'",
               StatusCode::kUnsupported);
  j["rope_scaling"] = {{"type", "linear"}};
  expect_error(ModelConfig::from_hf_config_json(j), "needs 'factor'");
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_error(ModelConfig::from_hf_config_json(j), "original_max_position_embeddings");
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 4.0},
                       {"high_freq_factor", 1.0},
                       {"original_max_position_embeddings", 8192}};
  expect_error(ModelConfig::from_hf_config_json(j), "low_freq_factor");
  j["rope_scaling"] = "linear";
  expect_error(ModelConfig::from_hf_config_json(j), "'rope_scaling' must be an object");
}

TEST(ModelConfigHf, HeadDimOverrideAndModelTypeFallback) {
  json j = load_json("configs/mistral-7b-v0.1.json");
  j["hidden_size"] = 5120;  // Mistral-Nemo style: 32 heads of 128 != 5120 / 32
  j["head_dim"] = 128;
  Result<ModelConfig> r = ModelConfig::from_hf_config_json(j);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->head_dim, 128u);
  EXPECT_EQ(r->rope_dim, 128u);

  j.erase("head_dim");
  j["hidden_size"] = 5000;
  expect_error(ModelConfig::from_hf_config_json(j), "not a multiple of num_attention_heads 32");

  json k = load_json("configs/qwen2.5-0.5b.json");
  k.erase("architectures");
  r = ModelConfig::from_hf_config_json(k);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->arch, "qwen2");
  k["model_type"] = "gemma";
  expect_error(ModelConfig::from_hf_config_json(k), "model_type 'gemma'");
}

TEST(ModelConfigHf, Errors) {
  const json base = load_json("configs/llama-3.1-8b.json");
  json j = base;
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_error(ModelConfig::from_hf_config_json(j), "architecture 'GPT2LMHeadModel'",
               StatusCode::kUnsupported);
  j = base;
  j["hidden_size"] = "4096";
  expect_error(ModelConfig::from_hf_config_json(j), "'hidden_size' must be a non-negative integer");
  j = base;
  j["hidden_size"] = -4096;
  expect_error(ModelConfig::from_hf_config_json(j), "'hidden_size'");
  j = base;
  j["hidden_size"] = 4096.5;
  expect_error(ModelConfig::from_hf_config_json(j), "'hidden_size'");
  j = base;
  j["hidden_size"] = 1ull << 40;
  expect_error(ModelConfig::from_hf_config_json(j), "too large");
  j = base;
  j.erase("vocab_size");
  expect_error(ModelConfig::from_hf_config_json(j), "'vocab_size' is missing",
               StatusCode::kNotFound);
  j = base;
  j["num_key_value_heads"] = 5;
  expect_error(ModelConfig::from_hf_config_json(j), "not a multiple of n_head_kv 5");
  j = base;
  j["num_attention_heads"] = 0;
  expect_error(ModelConfig::from_hf_config_json(j), "num_attention_heads");
  j = base;
  j["num_hidden_layers"] = 100000;
  expect_error(ModelConfig::from_hf_config_json(j), "n_layer = 100000");
  j = base;
  j["rms_norm_eps"] = "tiny";
  expect_error(ModelConfig::from_hf_config_json(j), "'rms_norm_eps' must be a number");
  j = base;
  j["rms_norm_eps"] = 0;
  expect_error(ModelConfig::from_hf_config_json(j), "rms_eps");
  j = base;
  j["tie_word_embeddings"] = 1;
  expect_error(ModelConfig::from_hf_config_json(j), "'tie_word_embeddings' must be true or false");
  j = base;
  j["hidden_act"] = "gelu";
  expect_error(ModelConfig::from_hf_config_json(j), "hidden_act 'gelu'", StatusCode::kUnsupported);
  j = base;
  j["eos_token_id"] = {128001, -1};
  expect_error(ModelConfig::from_hf_config_json(j), "eos_token_id");
  j = base;
  j["eos_token_id"] = 200000;
  expect_error(ModelConfig::from_hf_config_json(j), "eos token id 200000");
  j = base;
  j["architectures"] = json::array();
  expect_error(ModelConfig::from_hf_config_json(j), "'architectures'");
  expect_error(ModelConfig::from_hf_config_json(json::array()), "expected a JSON object");
  json q = load_json("configs/qwen2.5-0.5b.json");
  q["use_sliding_window"] = true;
  expect_error(ModelConfig::from_hf_config_json(q), "use_sliding_window", StatusCode::kUnsupported);
}

TEST(ModelConfigHf, FileErrorsNameThePath) {
  Result<ModelConfig> r = ModelConfig::from_hf_config_file("/nonexistent/config.json");
  expect_error(r, "/nonexistent/config.json", StatusCode::kNotFound);
  testing::TempDir dir;
  testing::write_file_bytes(dir.file("config.json"), {'{', '"', 'a'});
  r = ModelConfig::from_hf_config_file(dir.file("config.json"));
  expect_error(r, "not valid JSON");
  EXPECT_NE(r.status().message().find(dir.file("config.json")), std::string::npos);
  testing::write_file_bytes(dir.file("config.json"), {'{', '}'});
  r = ModelConfig::from_hf_config_file(dir.file("config.json"));
  expect_error(r, dir.file("config.json"));
}

}  // namespace
}  // namespace sgl::model
