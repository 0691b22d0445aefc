// Tokenizer::from_gguf: llama.cpp's llama_vocab::impl::load for the "gpt2" and "llama" models.

#include <string>
#include <utility>
#include <vector>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace sgl::tokenizer {
namespace {

// An optional token id. Absent, negative or past the vocabulary: the default stays (llama.cpp
// warns and keeps the default for out-of-range ids). A non-integer value is an error.
Status read_token_id(const model::GgufFile& gguf, std::string_view key, int32_t n_tokens,
                     int32_t* id) {
  const model::GgufValue* v = gguf.find(key);
  if (v == nullptr) return Status::ok();
  if (!v->is_integer()) {
    return invalid_argument("gguf: " + std::string(key) + " must be an integer, got " +
                            model::gguf_value_type_name(v->type()));
  }
  std::optional<int64_t> value = v->as_i64();
  if (value && *value >= 0 && *value < n_tokens) *id = static_cast<int32_t>(*value);
  return Status::ok();
}

Status read_bool(const model::GgufFile& gguf, std::string_view key, bool* out) {
  if (gguf.find(key) == nullptr) return Status::ok();
  SGL_ASSIGN_OR_RETURN(*out, gguf.get_bool(key));
  return Status::ok();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf(const model::GgufFile& gguf) {
  auto impl = std::make_shared<TokenizerImpl>();
  TokenizerImpl& t = *impl;

  SGL_ASSIGN_OR_RETURN(std::string model, gguf.get_string("tokenizer.ggml.model"));
  SGL_ASSIGN_OR_RETURN(std::string pre, gguf.get_string_or("tokenizer.ggml.pre", ""));

  const model::GgufValue* tokens_value = gguf.find("tokenizer.ggml.tokens");
  if (tokens_value == nullptr) return invalid_argument("gguf: tokenizer.ggml.tokens is missing");
  std::optional<std::vector<std::string>> tokens = tokens_value->as_string_array();
  if (!tokens) return invalid_argument("gguf: tokenizer.ggml.tokens must be an array of strings");
  if (tokens->empty()) return invalid_argument("gguf: tokenizer.ggml.tokens is empty");
  if (tokens->size() > static_cast<size_t>(INT32_MAX / 2)) {
    return invalid_argument("gguf: tokenizer.ggml.tokens is too large");
  }
  const int32_t n = static_cast<int32_t>(tokens->size());

  std::vector<float> scores;
  if (const model::GgufValue* v = gguf.find("tokenizer.ggml.scores")) {
    std::optional<std::vector<float>> f = v->as_f32_array();
    if (!f) {
      std::optional<std::vector<int32_t>> i = v->as_i32_array();
      if (!i) return invalid_argument("gguf: tokenizer.ggml.scores must be an f32 or i32 array");
      f.emplace(i->begin(), i->end());
    }
    if (f->size() < tokens->size()) {
      return invalid_argument("gguf: tokenizer.ggml.scores has " + std::to_string(f->size()) +
                              " entries for " + std::to_string(n) + " tokens");
    }
    scores = std::move(*f);
  }
  std::vector<int32_t> types;
  if (const model::GgufValue* v = gguf.find("tokenizer.ggml.token_type")) {
    std::optional<std::vector<int32_t>> i = v->as_i32_array();
    if (!i) return invalid_argument("gguf: tokenizer.ggml.token_type must be an i32 array");
    if (i->size() < tokens->size()) {
      return invalid_argument("gguf: tokenizer.ggml.token_type has " + std::to_string(i->size()) +
                              " entries for " + std::to_string(n) + " tokens");
    }
    types = std::move(*i);
  }

  // Model type and its defaults.
  if (model == "gpt2") {
    t.engine = Engine::kByteLevelBpe;
    t.kind = "gpt2";
    std::optional<PreTokenizerSpec> spec = find_pre_tokenizer(pre);
    if (!spec)
      return unsupported("gguf: unsupported pre-tokenizer tokenizer.ggml.pre = '" + pre + "'");
    t.pre_name = std::string(spec->name);
    t.stages = spec->stages;
    t.ignore_merges = spec->ignore_merges;
    t.clean_spaces = spec->clean_spaces;
    t.add_bos = spec->add_bos;
    t.bos = spec->no_bos ? -1 : 11;
    t.eos = 11;
    const model::GgufValue* merges = gguf.find("tokenizer.ggml.merges");
    if (merges == nullptr) return invalid_argument("gguf: tokenizer.ggml.merges is missing");
    std::optional<std::vector<std::string>> lines = merges->as_string_array();
    if (!lines) return invalid_argument("gguf: tokenizer.ggml.merges must be an array of strings");
    t.merge_pairs.reserve(lines->size());
    for (std::string& line : *lines) {
      // llama.cpp splits at the first space after the first byte; a line without one adds a
      // merge that can never apply.
      size_t pos = line.find(' ', 1);
      if (pos == std::string::npos) {
        t.merge_pairs.emplace_back();
      } else {
        t.merge_pairs.emplace_back(line.substr(0, pos), line.substr(pos + 1));
      }
    }
  } else if (model == "llama") {
    t.engine = Engine::kSpmScores;
    t.kind = "llama";
    t.add_space_prefix = true;
    t.add_bos = true;
    t.bos = 1;
    t.eos = 2;
    t.unk = 0;
  } else {
    return unsupported("gguf: unsupported tokenizer model tokenizer.ggml.model = '" + model + "'");
  }
  SGL_RETURN_IF_ERROR(read_bool(gguf, "tokenizer.ggml.add_space_prefix", &t.add_space_prefix));
  t.space_prefix = t.add_space_prefix ? SpacePrefix::kEverySegment : SpacePrefix::kNever;

  for (int32_t i = 0; i < n; ++i) {
    std::string text = std::move((*tokens)[i]);
    if (text.empty()) text = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp
    t.vocab.add(std::move(text), scores.empty() ? 0.0f : scores[i],
                types.empty() ? static_cast<int32_t>(TokenType::kNormal) : types[i]);
  }
  // Defaults out of the vocabulary are disabled (finalize), then the keys override.
  for (int32_t* id : {&t.bos, &t.eos, &t.unk}) {
    if (*id >= n) *id = -1;
  }
  const std::pair<const char*, int32_t*> id_keys[] = {
      {"tokenizer.ggml.bos_token_id", &t.bos},
      {"tokenizer.ggml.eos_token_id", &t.eos},
      {"tokenizer.ggml.eot_token_id", &t.eot},
      {"tokenizer.ggml.eom_token_id", &t.eom},
      {"tokenizer.ggml.unknown_token_id", &t.unk},
      {"tokenizer.ggml.padding_token_id", &t.pad},
      {"tokenizer.ggml.fim_pre_token_id", &t.fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &t.fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &t.fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &t.fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &t.fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &t.fim_sep},
      {"tokenizer.ggml.prefix_token_id", &t.fim_pre},  // deprecated names
      {"tokenizer.ggml.suffix_token_id", &t.fim_suf},
      {"tokenizer.ggml.middle_token_id", &t.fim_mid},
  };
  for (const auto& [key, slot] : id_keys) SGL_RETURN_IF_ERROR(read_token_id(gguf, key, n, slot));
  SGL_RETURN_IF_ERROR(read_bool(gguf, "tokenizer.ggml.add_bos_token", &t.add_bos));
  SGL_RETURN_IF_ERROR(read_bool(gguf, "tokenizer.ggml.add_eos_token", &t.add_eos));

  if (gguf.find("tokenizer.chat_template") != nullptr) {
    SGL_ASSIGN_OR_RETURN(std::string tmpl, gguf.get_string("tokenizer.chat_template"));
    t.chat_template = std::move(tmpl);
  }
  return make_tokenizer(std::move(impl));
}

}  // namespace sgl::tokenizer
