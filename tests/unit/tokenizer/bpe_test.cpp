#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace sgl::tokenizer {
namespace {

using V = std::vector<int32_t>;

V merge(const MergeTable& m, const V& word) {
  BpeScratch s;
  V out;
  bpe_merge(m, word, s, out);
  return out;
}

TEST(MergeTable, FindsAndKeepsTheFirstRank) {
  MergeTable m;
  m.reserve(3);
  m.add(1, 2, 0, 10);
  m.add(1, 2, 5, 11);  // duplicate pair: ignored
  m.add(2, 1, 1, 12);
  ASSERT_NE(m.find(1, 2), nullptr);
  EXPECT_EQ(m.find(1, 2)->rank, 0);
  EXPECT_EQ(m.find(1, 2)->result, 10);
  EXPECT_EQ(m.find(2, 1)->result, 12);
  EXPECT_EQ(m.find(2, 2), nullptr);
  EXPECT_EQ(m.size(), 2u);
  MergeTable empty;
  EXPECT_EQ(empty.find(1, 2), nullptr);
}

TEST(Bpe, LowestRankFirstThenLeftmost) {
  // a=1 b=2 c=3; ab=10 (rank 1), bc=11 (rank 0), abc=12 from (a, bc) rank 2, aa=13 rank 3.
  MergeTable m;
  m.reserve(4);
  m.add(1, 2, 1, 10);
  m.add(2, 3, 0, 11);
  m.add(1, 11, 2, 12);
  m.add(1, 1, 3, 13);
  EXPECT_EQ(merge(m, {1, 2, 3}), (V{12}));  // bc first, then a+bc
  EXPECT_EQ(merge(m, {1, 2}), (V{10}));
  EXPECT_EQ(merge(m, {1, 1, 1}), (V{13, 1}));  // leftmost pair wins a tie
  EXPECT_EQ(merge(m, {1, 1, 1, 1}), (V{13, 13}));
  EXPECT_EQ(merge(m, {3, 2, 1}), (V{3, 2, 1}));  // no merge for (c, b) or (b, a)
  EXPECT_EQ(merge(m, {3, 1, 2}), (V{3, 10}));
  EXPECT_EQ(merge(m, {}), V{});
  EXPECT_EQ(merge(m, {7}), (V{7}));
}

// The heap and the scan strategy must agree on random merge tables and words.
TEST(Bpe, HeapAndScanAgree) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    const int alphabet = 2 + static_cast<int>(rng() % 5);
    MergeTable m;
    const int n_merges = 1 + static_cast<int>(rng() % 40);
    m.reserve(n_merges);
    int next_id = 100;
    std::vector<int32_t> symbols;
    for (int i = 0; i < alphabet; ++i) symbols.push_back(i);
    for (int r = 0; r < n_merges; ++r) {
      int32_t a = symbols[rng() % symbols.size()];
      int32_t b = symbols[rng() % symbols.size()];
      m.add(a, b, r, next_id);
      symbols.push_back(next_id++);
    }
    for (int w = 0; w < 20; ++w) {
      V word(1 + rng() % 120);
      for (auto& x : word) x = static_cast<int32_t>(rng() % alphabet);
      BpeScratch s;
      V heap, scan;
      bpe_merge_heap(m, word, s, heap);
      bpe_merge_scan(m, word, s, scan);
      ASSERT_EQ(heap, scan) << "round " << round;
    }
  }
}

}  // namespace
}  // namespace sgl::tokenizer
