// Opens a model the way users hand it to us: a GGUF file, or a Hugging Face directory with
// config.json + tokenizer.json (+ tokenizer_config.json) + *.safetensors (single or sharded).
// The result bundles the file mapping, the config, the tokenizer and a weight source; backends
// read weights through it, so it must outlive them.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/gguf.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "models/weights.h"
#include "support/status.h"
#include "tokenizer/tokenizer.h"

namespace sgl::models {

enum class ModelFormat { kGguf, kSafetensors };

struct LoadedModel {
  std::string path;
  ModelFormat format = ModelFormat::kGguf;
  std::unique_ptr<model::GgufFile> gguf;                 // when format == kGguf
  std::unique_ptr<model::SafetensorsCheckpoint> st;      // when format == kSafetensors
  model::ModelConfig config;
  std::optional<tokenizer::Tokenizer> tokenizer;         // always set after load_model()
  std::unique_ptr<WeightSource> weights;                  // null for a dummy model
  bool dummy = false;  // load_dummy_model: config only, no weights (random ones on the backend)

  const tokenizer::Tokenizer& tok() const { return *tokenizer; }
};

// Detects the format from the path (a directory or *.safetensors → Hugging Face; otherwise GGUF
// by magic) and loads config + tokenizer. Weights stay mapped, not copied.
Result<std::unique_ptr<LoadedModel>> load_model(const std::string& path);

// SGLang's --load-format dummy: the config from a Hugging Face config.json (`config_path` is the
// file or its directory) and the tokenizer from `tokenizer_path` (a GGUF file or a Hugging Face
// directory with tokenizer.json); no weights (the backend makes random ones of the config's shape,
// backend::create_dummy_backend). The tokenizer may know fewer ids than the config's vocabulary
// (benchmarks of a real shape with a small test tokenizer); never more.
Result<std::unique_ptr<LoadedModel>> load_dummy_model(const std::string& config_path,
                                                      const std::string& tokenizer_path);

const char* model_format_name(ModelFormat f);

}  // namespace sgl::models
