#include "runtime/radix_cache.h"

#include <algorithm>
#include <queue>
#include <string>
#include <unordered_set>

namespace sgl::runtime {

RadixCache::RadixCache(std::function<void(std::span<const int32_t>)> free_slots)
    : free_slots_(std::move(free_slots)), root_(std::make_unique<Node>()) {
  root_->lock_ref = 1;  // the root is never evicted
}

RadixCache::~RadixCache() = default;

RadixCache::Node* RadixCache::split(Node* node, size_t at) {
  SGL_CHECK(at > 0 && at < node->key.size(), "split point inside the edge");
  Node* parent = node->parent;
  auto fresh = std::make_unique<Node>();
  Node* mid = fresh.get();
  mid->parent = parent;
  mid->key.assign(node->key.begin(), node->key.begin() + static_cast<ptrdiff_t>(at));
  mid->value.assign(node->value.begin(), node->value.begin() + static_cast<ptrdiff_t>(at));
  mid->lock_ref = node->lock_ref;
  mid->last_access = node->last_access;
  node->key.erase(node->key.begin(), node->key.begin() + static_cast<ptrdiff_t>(at));
  node->value.erase(node->value.begin(), node->value.begin() + static_cast<ptrdiff_t>(at));
  // Re-hang: parent -> mid -> node.
  auto& slot = parent->children[mid->key[0]];
  std::unique_ptr<Node> old = std::move(slot);
  SGL_CHECK(old.get() == node, "radix tree child map out of sync");
  node->parent = mid;
  mid->children[node->key[0]] = std::move(old);
  slot = std::move(fresh);
  ++node_count_;
  return mid;
}

RadixCache::Match RadixCache::match_prefix(std::span<const int32_t> tokens) {
  Match m;
  Node* node = root_.get();
  const uint64_t now = tick();
  node->last_access = now;
  size_t pos = 0;
  while (pos < tokens.size()) {
    auto it = node->children.find(tokens[pos]);
    if (it == node->children.end()) break;
    Node* child = it->second.get();
    size_t n = 0;
    const size_t lim = std::min(child->key.size(), tokens.size() - pos);
    while (n < lim && child->key[n] == tokens[pos + n]) ++n;
    if (n < child->key.size()) child = split(child, n);
    child->last_access = now;
    m.slots.insert(m.slots.end(), child->value.begin(), child->value.end());
    pos += n;
    node = child;
    if (n < lim) break;  // mismatch inside the edge: the match ends here
  }
  m.last = node;
  return m;
}

RadixCache::Peek RadixCache::peek_prefix(std::span<const int32_t> tokens) const {
  Peek p;
  const Node* node = root_.get();
  p.node = node;
  while (p.length < tokens.size()) {
    auto it = node->children.find(tokens[p.length]);
    if (it == node->children.end()) break;
    const Node* child = it->second.get();
    size_t n = 0;
    const size_t lim = std::min(child->key.size(), tokens.size() - p.length);
    while (n < lim && child->key[n] == tokens[p.length + n]) ++n;
    p.length += n;
    if (n < child->key.size()) break;
    node = child;
    p.node = node;
  }
  return p;
}

size_t RadixCache::insert(std::span<const int32_t> tokens, std::span<const int32_t> slots) {
  SGL_CHECK(tokens.size() == slots.size(), "insert: tokens and slots differ in length");
  Node* node = root_.get();
  const uint64_t now = tick();
  node->last_access = now;
  size_t pos = 0;
  while (pos < tokens.size()) {
    auto it = node->children.find(tokens[pos]);
    if (it == node->children.end()) break;
    Node* child = it->second.get();
    size_t n = 0;
    const size_t lim = std::min(child->key.size(), tokens.size() - pos);
    while (n < lim && child->key[n] == tokens[pos + n]) ++n;
    if (n < child->key.size()) child = split(child, n);
    child->last_access = now;
    // The caller's slots for this span duplicate the cached ones: free those that differ.
    std::vector<int32_t> dup;
    for (size_t i = 0; i < n; ++i)
      if (slots[pos + i] != child->value[i]) dup.push_back(slots[pos + i]);
    if (!dup.empty()) free_slots_(dup);
    pos += n;
    node = child;
  }
  const size_t cached = pos;
  if (pos < tokens.size()) {
    auto leaf = std::make_unique<Node>();
    leaf->parent = node;
    leaf->key.assign(tokens.begin() + static_cast<ptrdiff_t>(pos), tokens.end());
    leaf->value.assign(slots.begin() + static_cast<ptrdiff_t>(pos), slots.end());
    leaf->last_access = now;
    evictable_ += static_cast<int64_t>(leaf->key.size());
    node->children[leaf->key[0]] = std::move(leaf);
    ++node_count_;
  }
  return cached;
}

void RadixCache::lock(Node* node) {
  for (Node* n = node; n != nullptr && n != root_.get(); n = n->parent) {
    if (n->lock_ref == 0) {
      evictable_ -= static_cast<int64_t>(n->key.size());
      protected_ += static_cast<int64_t>(n->key.size());
    }
    ++n->lock_ref;
  }
}

void RadixCache::unlock(Node* node) {
  for (Node* n = node; n != nullptr && n != root_.get(); n = n->parent) {
    SGL_CHECK(n->lock_ref > 0, "RadixCache::unlock without lock");
    if (--n->lock_ref == 0) {
      evictable_ += static_cast<int64_t>(n->key.size());
      protected_ -= static_cast<int64_t>(n->key.size());
    }
  }
}

int64_t RadixCache::evict(int64_t n) {
  using Item = std::pair<uint64_t, Node*>;  // (last_access, leaf): oldest first
  std::priority_queue<Item, std::vector<Item>, std::greater<>> heap;
  std::vector<Node*> stack = {root_.get()};
  while (!stack.empty()) {
    Node* x = stack.back();
    stack.pop_back();
    for (auto& [t, c] : x->children) stack.push_back(c.get());
    if (x != root_.get() && x->children.empty() && x->lock_ref == 0)
      heap.emplace(x->last_access, x);
  }
  int64_t freed = 0;
  while (freed < n && !heap.empty()) {
    Node* leaf = heap.top().second;
    heap.pop();
    free_slots_(leaf->value);
    freed += static_cast<int64_t>(leaf->value.size());
    evictable_ -= static_cast<int64_t>(leaf->key.size());
    Node* parent = leaf->parent;
    parent->children.erase(leaf->key[0]);  // destroys leaf
    --node_count_;
    if (parent != root_.get() && parent->children.empty() && parent->lock_ref == 0)
      heap.emplace(parent->last_access, parent);
  }
  return freed;
}

void RadixCache::reset() {
  SGL_CHECK(protected_ == 0, "RadixCache::reset while paths are locked");
  std::vector<Node*> stack = {root_.get()};
  while (!stack.empty()) {
    Node* x = stack.back();
    stack.pop_back();
    if (!x->value.empty()) free_slots_(x->value);
    for (auto& [t, c] : x->children) stack.push_back(c.get());
  }
  root_->children.clear();
  evictable_ = protected_ = node_count_ = 0;
}

Status RadixCache::validate() const {
  int64_t evictable = 0, prot = 0, nodes = 0;
  std::unordered_set<int32_t> seen;
  std::vector<const Node*> stack = {root_.get()};
  while (!stack.empty()) {
    const Node* x = stack.back();
    stack.pop_back();
    if (x != root_.get()) {
      ++nodes;
      if (x->key.empty()) return internal_error("radix: empty edge");
      if (x->key.size() != x->value.size()) return internal_error("radix: key/value lengths differ");
      if (x->lock_ref < 0) return internal_error("radix: negative lock_ref");
      (x->lock_ref == 0 ? evictable : prot) += static_cast<int64_t>(x->key.size());
      for (int32_t s : x->value)
        if (!seen.insert(s).second) return internal_error("radix: slot " + std::to_string(s) + " owned twice");
      // A locked node's parent must be locked at least as much (locks cover whole paths).
      if (x->parent != root_.get() && x->parent->lock_ref < x->lock_ref)
        return internal_error("radix: lock_ref of a parent below its child's");
    }
    for (const auto& [t, c] : x->children) {
      if (c->parent != x) return internal_error("radix: bad parent pointer");
      if (c->key.empty() || c->key[0] != t) return internal_error("radix: child keyed wrongly");
      stack.push_back(c.get());
    }
  }
  if (evictable != evictable_ || prot != protected_)
    return internal_error("radix: size counters out of sync (evictable " +
                          std::to_string(evictable) + " vs " + std::to_string(evictable_) +
                          ", protected " + std::to_string(prot) + " vs " +
                          std::to_string(protected_) + ")");
  if (nodes != node_count_) return internal_error("radix: node count out of sync");
  return Status::ok();
}

std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> RadixCache::leaf_paths() const {
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
  struct Frame {
    const Node* node;
    std::vector<int32_t> toks, slots;
  };
  std::vector<Frame> stack = {{root_.get(), {}, {}}};
  while (!stack.empty()) {
    Frame f = std::move(stack.back());
    stack.pop_back();
    f.toks.insert(f.toks.end(), f.node->key.begin(), f.node->key.end());
    f.slots.insert(f.slots.end(), f.node->value.begin(), f.node->value.end());
    if (f.node->children.empty() && f.node != root_.get()) {
      out.emplace_back(std::move(f.toks), std::move(f.slots));
      continue;
    }
    for (const auto& [t, c] : f.node->children) stack.push_back({c.get(), f.toks, f.slots});
  }
  return out;
}

}  // namespace sgl::runtime
