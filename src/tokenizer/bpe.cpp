#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>
#include <limits>

#include "support/check.h"

namespace sgl::tokenizer {

void MergeTable::reserve(size_t n) {
  SGL_CHECK(size_ == 0, "MergeTable::reserve after add");
  size_t cap = std::bit_ceil(std::max<size_t>(16, n * 2));
  slots_.assign(cap, Entry{});
  mask_ = cap - 1;
}

void MergeTable::add(int32_t left, int32_t right, int32_t rank, int32_t result) {
  SGL_CHECK(size_ + 1 <= (mask_ + 1) / 2, "MergeTable over capacity");
  const uint64_t key = make_key(left, right);
  for (uint64_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.key == key) return;  // first (lowest-rank) entry wins
    if (e.key == kEmpty) {
      e = Entry{key, rank, result};
      ++size_;
      return;
    }
  }
}

namespace {

constexpr size_t kScanMaxSymbols = 48;

// Min-heap order on (rank, left position).
struct CandidateGreater {
  bool operator()(const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

void init_symbols(std::span<const int32_t> word, BpeScratch& s) {
  const int32_t n = static_cast<int32_t>(word.size());
  s.symbols.resize(word.size());
  for (int32_t i = 0; i < n; ++i) {
    s.symbols[i] = {word[i], i - 1, i + 1 < n ? i + 1 : -1};
  }
}

void emit_symbols(const BpeScratch& s, std::vector<int32_t>& out) {
  for (int32_t i = 0; i != -1; i = s.symbols[i].next) out.push_back(s.symbols[i].id);
}

}  // namespace

void bpe_merge_heap(const MergeTable& merges, std::span<const int32_t> word, BpeScratch& s,
                    std::vector<int32_t>& out) {
  if (word.empty()) return;
  init_symbols(word, s);
  auto& heap = s.heap;
  heap.clear();
  auto push = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const MergeTable::Entry* e = merges.find(s.symbols[l].id, s.symbols[r].id);
    if (e == nullptr) return;
    heap.push_back({e->rank, l, r, s.symbols[l].id, s.symbols[r].id});
    std::push_heap(heap.begin(), heap.end(), CandidateGreater{});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(word.size()); ++i) push(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), CandidateGreater{});
    const BpeScratch::Candidate c = heap.back();
    heap.pop_back();
    BpeScratch::Symbol& left = s.symbols[c.left];
    BpeScratch::Symbol& right = s.symbols[c.right];
    // Stale if either side was merged since the candidate was pushed: a merged-away symbol has
    // id -1, a grown one a new id, and a left symbol that absorbed its neighbour a new next.
    if (left.id != c.left_id || right.id != c.right_id || left.next != c.right) continue;
    const MergeTable::Entry* e = merges.find(left.id, right.id);
    left.id = e->result;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) s.symbols[right.next].prev = c.left;
    push(left.prev, c.left);
    push(c.left, left.next);
  }
  emit_symbols(s, out);
}

void bpe_merge_scan(const MergeTable& merges, std::span<const int32_t> word, BpeScratch& s,
                    std::vector<int32_t>& out) {
  if (word.empty()) return;
  // Contiguous arrays: id[i], and for the pair (id[i], id[i + 1]) its rank (kNone if no merge)
  // and result. Each step takes the first minimal rank and closes the gap with short moves.
  constexpr int32_t kNone = std::numeric_limits<int32_t>::max();
  const size_t n0 = word.size();
  s.pair_rank.resize(3 * n0);
  int32_t* id = s.pair_rank.data();
  int32_t* rank = id + n0;
  int32_t* result = rank + n0;
  std::copy(word.begin(), word.end(), id);
  auto look = [&](size_t i) {
    const MergeTable::Entry* e = merges.find(id[i], id[i + 1]);
    rank[i] = e ? e->rank : kNone;
    result[i] = e ? e->result : -1;
  };
  size_t n = n0;
  for (size_t i = 0; i + 1 < n; ++i) look(i);
  while (n > 1) {
    size_t best = 0;
    int32_t best_rank = rank[0];
    for (size_t i = 1; i + 1 < n; ++i) {
      if (rank[i] < best_rank) {
        best_rank = rank[i];
        best = i;
      }
    }
    if (best_rank == kNone) break;
    id[best] = result[best];
    std::copy(id + best + 2, id + n, id + best + 1);
    std::copy(rank + best + 1, rank + n - 1, rank + best);
    std::copy(result + best + 1, result + n - 1, result + best);
    --n;
    if (best + 1 < n) look(best);
    if (best > 0) look(best - 1);
  }
  out.insert(out.end(), id, id + n);
}

void bpe_merge(const MergeTable& merges, std::span<const int32_t> word, BpeScratch& scratch,
               std::vector<int32_t>& out) {
  if (word.size() <= kScanMaxSymbols) {
    bpe_merge_scan(merges, word, scratch, out);
  } else {
    bpe_merge_heap(merges, word, scratch, out);
  }
}

}  // namespace sgl::tokenizer
