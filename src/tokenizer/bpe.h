// Rank-ordered BPE merging over symbol ids (byte-level BPE and Hugging Face's rank-based
// SentencePiece-style BPE).
//
// A word starts as a sequence of symbol ids; while some adjacent pair has a merge, the pair with
// the lowest rank (leftmost among equal ranks) is replaced by the merge's result symbol. This is
// llama.cpp's llm_tokenizer_bpe_session loop and Hugging Face's Word::merge_all, in O(n log n)
// (a binary heap) for long words and a cache-friendly O(n^2) scan for short ones; both give the
// same result. Symbol ids are token ids, or ids >= vocab size for strings that appear in merges
// but are not tokens themselves (see Tokenizer's loader).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace sgl::tokenizer {

// Open-addressing hash map (left id, right id) -> (rank, result id). Immutable after building.
class MergeTable {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t result = 0;
  };

  MergeTable() = default;
  // Sizes the table for `n` merges (call once before add()).
  void reserve(size_t n);
  // Adds a merge; if the pair is already present the earlier (lower) rank is kept, as llama.cpp's
  // map emplace does. REQUIRES: reserve() was called with room for it.
  void add(int32_t left, int32_t right, int32_t rank, int32_t result);
  // The merge of (left, right), or null.
  const Entry* find(int32_t left, int32_t right) const {
    if (mask_ == 0) return nullptr;
    const uint64_t key = make_key(left, right);
    for (uint64_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t make_key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  static uint64_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }

  std::vector<Entry> slots_;
  uint64_t mask_ = 0;
  size_t size_ = 0;
};

// Reusable per-call buffers.
struct BpeScratch {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;  // symbol index
    int32_t right;
    int32_t left_id;
    int32_t right_id;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::vector<int32_t> pair_rank;  // short-word path: symbol ids, pair ranks, pair results
};

// Merges `word` (initial symbol ids) and appends the final symbol ids to `out`.
void bpe_merge(const MergeTable& merges, std::span<const int32_t> word, BpeScratch& scratch,
               std::vector<int32_t>& out);

// The two strategies, exposed for tests (bpe_merge picks by word length).
void bpe_merge_heap(const MergeTable& merges, std::span<const int32_t> word, BpeScratch& scratch,
                    std::vector<int32_t>& out);
void bpe_merge_scan(const MergeTable& merges, std::span<const int32_t> word, BpeScratch& scratch,
                    std::vector<int32_t>& out);

}  // namespace sgl::tokenizer
