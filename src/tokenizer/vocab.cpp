#include "tokenizer/vocab.h"

#include "support/check.h"

namespace sgl::tokenizer {

uint16_t attr_from_type(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kByte:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

void Vocab::add(std::string text, float score, int32_t type) {
  SGL_CHECK(!finished_, "Vocab::add after finish");
  texts_.push_back(std::move(text));
  scores_.push_back(score);
  types_.push_back(type);
  attrs_.push_back(attr_from_type(type));
}

void Vocab::finish() {
  SGL_CHECK(!finished_, "Vocab::finish twice");
  finished_ = true;
  index_.reserve(texts_.size());
  for (size_t i = 0; i < texts_.size(); ++i) {
    index_.emplace(std::string_view(texts_[i]), static_cast<int32_t>(i));
  }
}

}  // namespace sgl::tokenizer
