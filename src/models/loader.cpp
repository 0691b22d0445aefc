#include "models/loader.h"

#include <filesystem>

namespace sgl::models {

const char* model_format_name(ModelFormat f) {
  return f == ModelFormat::kGguf ? "gguf" : "safetensors";
}

Result<std::unique_ptr<LoadedModel>> load_model(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return not_found("model path '" + path + "' does not exist");
  auto m = std::make_unique<LoadedModel>();
  m->path = path;
  const bool is_dir = fs::is_directory(path, ec);
  const bool is_st = is_dir || fs::path(path).extension() == ".safetensors" ||
                     fs::path(path).filename() == "model.safetensors.index.json";
  if (!is_st) {
    m->format = ModelFormat::kGguf;
    SGL_ASSIGN_OR_RETURN(model::GgufFile f, model::GgufFile::open(path));
    m->gguf = std::make_unique<model::GgufFile>(std::move(f));
    SGL_ASSIGN_OR_RETURN(m->config, model::ModelConfig::from_gguf(*m->gguf));
    SGL_ASSIGN_OR_RETURN(tokenizer::Tokenizer t, tokenizer::Tokenizer::from_gguf(*m->gguf));
    m->tokenizer.emplace(std::move(t));
    m->weights = gguf_weight_source(*m->gguf);
  } else {
    m->format = ModelFormat::kSafetensors;
    const fs::path dir = is_dir ? fs::path(path) : fs::path(path).parent_path();
    SGL_ASSIGN_OR_RETURN(m->config,
                         model::ModelConfig::from_hf_config_file((dir / "config.json").string()));
    SGL_ASSIGN_OR_RETURN(model::SafetensorsCheckpoint c, model::SafetensorsCheckpoint::open(path));
    m->st = std::make_unique<model::SafetensorsCheckpoint>(std::move(c));
    SGL_ASSIGN_OR_RETURN(tokenizer::Tokenizer t, tokenizer::Tokenizer::from_hf_files(dir.string()));
    m->tokenizer.emplace(std::move(t));
    m->weights = safetensors_weight_source(*m->st);
  }
  if (m->tok().vocab_size() > static_cast<int32_t>(m->config.n_vocab))
    return invalid_argument("model: tokenizer has " + std::to_string(m->tok().vocab_size()) +
                            " tokens but the model's vocabulary is " +
                            std::to_string(m->config.n_vocab));
  return m;
}

Result<std::unique_ptr<LoadedModel>> load_dummy_model(const std::string& config_path,
                                                      const std::string& tokenizer_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (tokenizer_path.empty())
    return invalid_argument("a dummy model needs a tokenizer path (--tokenizer-path)");
  if (!fs::exists(config_path, ec))
    return not_found("model config '" + config_path + "' does not exist");
  if (!fs::exists(tokenizer_path, ec))
    return not_found("tokenizer path '" + tokenizer_path + "' does not exist");
  auto m = std::make_unique<LoadedModel>();
  m->path = config_path;
  m->dummy = true;
  const fs::path cfg =
      fs::is_directory(config_path, ec) ? fs::path(config_path) / "config.json" : fs::path(config_path);
  SGL_ASSIGN_OR_RETURN(m->config, model::ModelConfig::from_hf_config_file(cfg.string()));
  if (fs::is_directory(tokenizer_path, ec)) {
    m->format = ModelFormat::kSafetensors;
    SGL_ASSIGN_OR_RETURN(tokenizer::Tokenizer t, tokenizer::Tokenizer::from_hf_files(tokenizer_path));
    m->tokenizer.emplace(std::move(t));
  } else {
    m->format = ModelFormat::kGguf;
    SGL_ASSIGN_OR_RETURN(model::GgufFile f, model::GgufFile::open(tokenizer_path));
    SGL_ASSIGN_OR_RETURN(tokenizer::Tokenizer t, tokenizer::Tokenizer::from_gguf(f));
    m->tokenizer.emplace(std::move(t));
  }
  if (m->tok().vocab_size() > static_cast<int32_t>(m->config.n_vocab))
    return invalid_argument("dummy model: the tokenizer has " +
                            std::to_string(m->tok().vocab_size()) +
                            " tokens but the config's vocabulary is " +
                            std::to_string(m->config.n_vocab));
  return m;
}

}  // namespace sgl::models
