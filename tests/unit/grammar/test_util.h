// Shared helpers for the grammar tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/token_vocab.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

namespace sgl::grammar::testing {

inline std::string data_path(const std::string& rel) {
  return std::string(SGL_TEST_DATA_DIR) + "/grammar/" + rel;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A byte-level vocabulary: all 256 single bytes, then EOS (id 256).
inline std::shared_ptr<const TokenVocab> byte_vocab() {
  static std::shared_ptr<const TokenVocab> v = [] {
    std::vector<std::string> toks;
    for (int b = 0; b < 256; ++b) toks.push_back(std::string(1, static_cast<char>(b)));
    toks.push_back("");
    return TokenVocab::from_tokens(std::move(toks), {256});
  }();
  return v;
}

// Feeds `s` byte by byte. Returns the number of bytes accepted before the first rejection
// (s.size() if all were accepted).
inline size_t feed_bytes(Matcher& m, const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (!m.accept_bytes(s.substr(i, 1))) return i;
  return s.size();
}

// True iff the grammar accepts exactly `s` (every prefix viable and complete at the end).
inline bool full_match(const CompiledGrammarPtr& g, const std::string& s) {
  Matcher m(g);
  return feed_bytes(m, s) == s.size() && m.can_end();
}

// The default model's vocabulary (built once), or nullptr when models/ has no model file.
inline std::shared_ptr<const TokenVocab> model_vocab() {
  static std::shared_ptr<const TokenVocab> vocab = []() -> std::shared_ptr<const TokenVocab> {
    std::string path = std::string(SGL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) return nullptr;
    auto gguf = model::GgufFile::open(path);
    if (!gguf.is_ok()) return nullptr;
    auto tok = tokenizer::Tokenizer::from_gguf(*gguf);
    if (!tok.is_ok()) return nullptr;
    return TokenVocab::from_tokenizer(*tok);
  }();
  return vocab;
}

}  // namespace sgl::grammar::testing
