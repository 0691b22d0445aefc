// The token table shared by the tokenizer engines: texts, scores, types and llama.cpp-style
// attribute flags, plus a text -> id index. Built once by a loader, immutable afterwards.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sgl::tokenizer {

// GGUF `tokenizer.ggml.token_type` values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// llama.cpp's llama_token_attr bits.
enum TokenAttr : uint16_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1 << 0,
  kAttrUnused = 1 << 1,
  kAttrNormal = 1 << 2,
  kAttrControl = 1 << 3,
  kAttrUserDefined = 1 << 4,
  kAttrByte = 1 << 5,
  kAttrNormalized = 1 << 6,
  kAttrLstrip = 1 << 7,
  kAttrRstrip = 1 << 8,
  kAttrSingleWord = 1 << 9,
};

// The attribute a token type maps to (llama.cpp's load()).
uint16_t attr_from_type(int32_t type);

class Vocab {
 public:
  // Appends a token. Its text must be unique and non-empty (the loaders check).
  // REQUIRES: finish() not called yet.
  void add(std::string text, float score, int32_t type);
  // Builds the text index; call once after the last add().
  void finish();
  bool finished() const { return finished_; }

  int32_t size() const { return static_cast<int32_t>(texts_.size()); }
  const std::string& text(int32_t id) const { return texts_[id]; }
  float score(int32_t id) const { return scores_[id]; }
  int32_t type(int32_t id) const { return types_[id]; }
  uint16_t attr(int32_t id) const { return attrs_[id]; }
  void set_attr(int32_t id, uint16_t attr) { attrs_[id] = attr; }
  // The id whose text is exactly `text`, or -1.
  int32_t find(std::string_view text) const {
    auto it = index_.find(text);
    return it == index_.end() ? -1 : it->second;
  }

 private:
  // The index holds views of texts_'s strings: built by finish(), after which texts_ never
  // changes (moving the vector keeps the strings where they are).
  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<int32_t> types_;
  std::vector<uint16_t> attrs_;
  std::unordered_map<std::string_view, int32_t> index_;
  bool finished_ = false;
};

}  // namespace sgl::tokenizer
