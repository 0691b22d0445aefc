// The vocabulary the grammar harnesses compile against: small, so masks are cheap and every
// token is reachable from a few fuzz bytes, yet shaped like a real byte-level BPE vocabulary:
// all 256 single bytes, multi-byte pieces that cross JSON token boundaries, UTF-8 pieces split
// inside a character, a duplicate spelling, a token with no bytes (never allowed) and EOS last.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "grammar/token_vocab.h"

namespace sgl::fuzz {

inline std::shared_ptr<const grammar::TokenVocab> fuzz_vocab() {
  static std::shared_ptr<const grammar::TokenVocab> v = [] {
    std::vector<std::string> toks;
    for (int b = 0; b < 256; ++b) toks.push_back(std::string(1, static_cast<char>(b)));
    for (const char* s : {"{\"", "\":", "\": ", "\", \"", "\",\"", "\"}", "\"]", "[{", "}]",
                          "true", "false", "null", "nul", "12", "123", "0.5", "-1", "e+", " the",
                          "ab", "abc", "abcd", "\n", "  ", "\n  ", "\\n", "\\\"", "\\u00",
                          "\xC3\xA9", "\xC3", "\xA9", "\xE2\x82\xAC", "\xF0\x9F", "\x98\x80",
                          "a", "", "{", "yes", "no", "2026-", "-11-"}) {
      toks.push_back(s);
    }
    const int32_t eos = static_cast<int32_t>(toks.size());
    toks.push_back("");
    return grammar::TokenVocab::from_tokens(std::move(toks), {eos});
  }();
  return v;
}

}  // namespace sgl::fuzz
