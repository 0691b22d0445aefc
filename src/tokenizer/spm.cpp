#include "tokenizer/spm.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/unicode.h"

namespace sgl::tokenizer {
namespace {

// Max-heap order: higher score first, then the leftmost pair.
struct BigramLess {
  bool operator()(const SpmScratch::Bigram& a, const SpmScratch::Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

int32_t spm_byte_token(const Vocab& vocab, uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  int32_t id = vocab.find(buf);
  if (id >= 0) return id;
  const char one = static_cast<char>(b);
  return vocab.find(std::string_view(&one, 1));
}

void spm_tokenize(const Vocab& vocab, const std::array<int32_t, 256>& byte_tokens, int32_t unk_id,
                  std::string_view text, SpmScratch& s, std::vector<int32_t>& out) {
  if (text.empty()) return;
  s.symbols.clear();
  s.heap.clear();
  for (size_t off = 0; off < text.size();) {
    size_t len = std::min(unicode::lead_byte_length(static_cast<unsigned char>(text[off])),
                          text.size() - off);
    const int32_t index = static_cast<int32_t>(s.symbols.size());
    s.symbols.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), index - 1,
                         off + len == text.size() ? -1 : index + 1});
    off += len;
  }
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const SpmScratch::Symbol& a = s.symbols[l];
    const SpmScratch::Symbol& b = s.symbols[r];
    const uint32_t size = a.len + b.len;
    const int32_t id = vocab.find(text.substr(a.offset, size));
    if (id < 0) return;
    s.heap.push_back({vocab.score(id), l, r, size});
    std::push_heap(s.heap.begin(), s.heap.end(), BigramLess{});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(s.symbols.size()); ++i) try_add(i - 1, i);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), BigramLess{});
    const SpmScratch::Bigram bg = s.heap.back();
    s.heap.pop_back();
    SpmScratch::Symbol& left = s.symbols[bg.left];
    SpmScratch::Symbol& right = s.symbols[bg.right];
    // Stale: a side was merged away (len 0) or grew since the pair was pushed.
    if (left.len == 0 || right.len == 0 || left.len + right.len != bg.size) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) s.symbols[right.next].prev = bg.left;
    try_add(left.prev, bg.left);
    try_add(bg.left, left.next);
  }
  for (int32_t i = 0; i != -1; i = s.symbols[i].next) {
    const SpmScratch::Symbol& sym = s.symbols[i];
    const std::string_view piece = text.substr(sym.offset, sym.len);
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Only unmerged single characters can fail the lookup (every merge result is a token), so
    // llama.cpp's rev_merge resegmentation never applies here: emit bytes.
    for (char c : piece) {
      const int32_t b = byte_tokens[static_cast<uint8_t>(c)];
      if (b >= 0) {
        out.push_back(b);
      } else if (unk_id >= 0) {
        out.push_back(unk_id);
      }
    }
  }
}

}  // namespace sgl::tokenizer
