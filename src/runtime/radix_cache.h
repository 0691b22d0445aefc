// RadixCache: SGLang's RadixAttention prefix cache. A compressed trie over token ids whose edges
// hold the KV slots of those tokens, so any prefix computed once (system prompts, few-shot
// examples, chat history, fork branches) is reused by later requests until evicted.
//
// Invariants (checked by validate()):
// - every non-root node has a non-empty key and value of equal length; children are keyed by the
//   first token of their key and no two children share it;
// - a node is locked while any request uses a path through it: lock() increments every node
//   from the given one up to the root, unlock() decrements, so a parent's lock_ref is never
//   below a child's;
// - evictable_size() = tokens in nodes with lock_ref == 0, protected_size() = the rest;
//   evictable + protected = total tokens cached = slots owned by the cache;
// - no slot appears twice.
// Single-threaded (owned by the scheduler thread). Time is a logical counter, so eviction order
// is deterministic.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "support/status.h"

namespace sgl::runtime {

class RadixCache {
 public:
  struct Node;

  // Result of match_prefix: the slots of the longest cached prefix and the node it ends at
  // (the root when nothing matched). Lock `last` while the request uses the prefix.
  struct Match {
    std::vector<int32_t> slots;
    Node* last = nullptr;
  };

  // `free_slots` receives slots the cache releases (duplicates on insert, evicted leaves).
  explicit RadixCache(std::function<void(std::span<const int32_t>)> free_slots);
  ~RadixCache();
  RadixCache(const RadixCache&) = delete;
  RadixCache& operator=(const RadixCache&) = delete;

  // Longest cached prefix of `tokens`. Splits an edge when the match ends inside it, so the
  // returned node covers exactly the matched prefix. Marks the path as recently used.
  Match match_prefix(std::span<const int32_t> tokens);

  // Without changing anything (no split, no access time): the length of the longest cached
  // prefix of `tokens` (it may end inside an edge) and the deepest node whose whole path is a
  // prefix of `tokens` (the root when none). For scheduling decisions.
  struct Peek {
    size_t length = 0;
    const Node* node = nullptr;
  };
  Peek peek_prefix(std::span<const int32_t> tokens) const;
  // Caches tokens[i] -> slots[i]. Returns the length of the prefix that was already cached;
  // the caller's slots for that prefix that differ from the cached ones are duplicates, which
  // the cache frees through free_slots (so the caller must not free them). The rest of `slots`
  // now belong to the cache. REQUIRES: tokens.size() == slots.size().
  size_t insert(std::span<const int32_t> tokens, std::span<const int32_t> slots);

  // Protects the path root..node from eviction (counted: lock twice, unlock twice).
  void lock(Node* node);
  void unlock(Node* node);

  // Evicts least-recently-used unlocked leaves until at least n tokens were freed or nothing is
  // evictable. Returns the number of tokens freed.
  int64_t evict(int64_t n);

  // Drops everything. REQUIRES: nothing locked. Frees all slots.
  void reset();

  int64_t evictable_size() const { return evictable_; }
  int64_t protected_size() const { return protected_; }
  int64_t total_size() const { return evictable_ + protected_; }
  int64_t node_count() const { return node_count_; }
  Node* root() const { return root_.get(); }

  // Checks every invariant; returns an error describing the first violation.
  Status validate() const;
  // All cached (token sequence, slots) paths from the root to each leaf, for tests.
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> leaf_paths() const;

  struct Node {
    std::unordered_map<int32_t, std::unique_ptr<Node>> children;
    Node* parent = nullptr;
    std::vector<int32_t> key;    // token ids of this edge
    std::vector<int32_t> value;  // KV slots of those tokens
    int32_t lock_ref = 0;
    uint64_t last_access = 0;
  };

 private:
  Node* split(Node* node, size_t at);  // node keeps key[at..]; returns the new parent
  uint64_t tick() { return ++clock_; }

  std::function<void(std::span<const int32_t>)> free_slots_;
  std::unique_ptr<Node> root_;
  int64_t evictable_ = 0;
  int64_t protected_ = 0;
  int64_t node_count_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace sgl::runtime
