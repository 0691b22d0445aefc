#include "runtime/radix_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "runtime/kv_pool.h"

namespace sgl::runtime {
namespace {

using Seq = std::vector<int32_t>;

TEST(KvPool, AllocFreeAndExhaustion) {
  KvPool pool(8);
  std::vector<int32_t> a;
  EXPECT_TRUE(pool.alloc(5, a));
  EXPECT_EQ(a, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(pool.alloc(4, a));
  EXPECT_EQ(a.size(), 5u);
  EXPECT_EQ(pool.available(), 3);
  pool.free(a);
  EXPECT_EQ(pool.available(), 8);
  EXPECT_DEATH(pool.free(std::vector<int32_t>{1}), "freed twice");
}

TEST(RadixCache, MatchSplitsEdgesAndInsertReportsCachedPrefix) {
  std::vector<int32_t> freed;
  RadixCache c([&](std::span<const int32_t> s) { freed.insert(freed.end(), s.begin(), s.end()); });
  EXPECT_EQ(c.insert(Seq{1, 2, 3, 4}, Seq{10, 11, 12, 13}), 0u);
  EXPECT_EQ(c.total_size(), 4);
  auto m = c.match_prefix(Seq{1, 2, 9});
  EXPECT_EQ(m.slots, (Seq{10, 11}));
  EXPECT_EQ(c.node_count(), 2);  // the edge was split at 2
  // Re-inserting a shared prefix with other slots frees the caller's duplicates.
  EXPECT_EQ(c.insert(Seq{1, 2, 3, 7}, Seq{20, 21, 22, 23}), 3u);
  EXPECT_EQ(freed, (Seq{20, 21, 22}));
  EXPECT_EQ(c.total_size(), 5);
  EXPECT_EQ(c.match_prefix(Seq{1, 2, 3, 7, 8}).slots, (Seq{10, 11, 12, 23}));
  EXPECT_TRUE(c.validate().is_ok());
}

TEST(RadixCache, LockedPathsSurviveEviction) {
  std::vector<int32_t> freed;
  RadixCache c([&](std::span<const int32_t> s) { freed.insert(freed.end(), s.begin(), s.end()); });
  c.insert(Seq{1, 2, 3}, Seq{0, 1, 2});
  c.insert(Seq{5, 6}, Seq{3, 4});
  auto m = c.match_prefix(Seq{1, 2, 3});
  c.lock(m.last);
  EXPECT_EQ(c.protected_size(), 3);
  EXPECT_EQ(c.evictable_size(), 2);
  EXPECT_EQ(c.evict(100), 2);
  EXPECT_EQ(freed, (Seq{3, 4}));
  EXPECT_EQ(c.total_size(), 3);
  c.unlock(m.last);
  EXPECT_EQ(c.evict(100), 3);
  EXPECT_EQ(c.total_size(), 0);
  EXPECT_TRUE(c.validate().is_ok());
}

TEST(RadixCache, EvictsLeastRecentlyUsedFirst) {
  std::vector<int32_t> freed;
  RadixCache c([&](std::span<const int32_t> s) { freed.insert(freed.end(), s.begin(), s.end()); });
  c.insert(Seq{1}, Seq{0});
  c.insert(Seq{2}, Seq{1});
  c.insert(Seq{3}, Seq{2});
  c.match_prefix(Seq{1});  // 1 is now the most recent
  c.evict(2);
  EXPECT_EQ(freed, (Seq{1, 2}));
}

// Thousands of random insert / match / lock / unlock / evict operations with a small alphabet
// (lots of shared prefixes and splits), checked against a naive model: the set of cached
// prefixes with their slots, recomputed from what was inserted and what was evicted.
TEST(RadixCache, RandomizedAgainstNaiveModel) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    std::mt19937 rng(seed);
    KvPool pool(4096);
    std::set<int32_t> freed_by_cache;
    RadixCache cache([&](std::span<const int32_t> s) {
      for (int32_t x : s) freed_by_cache.insert(x);
      pool.free(s);
    });
    // The naive model: prefix -> slot of its last token, for every cached prefix.
    std::map<Seq, int32_t> truth;
    struct Held {
      RadixCache::Node* node;
      Seq slots;
    };
    std::vector<Held> held;
    auto random_seq = [&]() {
      Seq s(1 + rng() % 12);
      for (auto& t : s) t = static_cast<int32_t>(rng() % 4);
      return s;
    };
    auto naive_match = [&](const Seq& q) {
      Seq p, slots;
      for (int32_t t : q) {
        p.push_back(t);
        auto it = truth.find(p);
        if (it == truth.end()) break;
        slots.push_back(it->second);
      }
      return slots;
    };
    for (int op = 0; op < 3000; ++op) {
      const int kind = static_cast<int>(rng() % 10);
      if (kind < 4) {  // a request: match, allocate the rest, insert
        Seq toks = random_seq();
        auto m = cache.match_prefix(toks);
        ASSERT_EQ(m.slots, naive_match(toks));
        Seq slots = m.slots;
        if (!pool.alloc(static_cast<int64_t>(toks.size() - m.slots.size()), slots)) {
          cache.evict(static_cast<int64_t>(toks.size()));
          continue;
        }
        freed_by_cache.clear();
        const size_t cached = cache.insert(toks, slots);
        ASSERT_GE(cached, m.slots.size());
        Seq p;
        for (size_t i = 0; i < toks.size(); ++i) {
          p.push_back(toks[i]);
          auto [it, fresh] = truth.emplace(p, slots[i]);
          if (!fresh && it->second != slots[i]) {
            ASSERT_TRUE(freed_by_cache.count(slots[i])) << "duplicate slot not freed";
          }
        }
      } else if (kind < 6) {  // lock a random cached path
        auto m = cache.match_prefix(random_seq());
        cache.lock(m.last);
        held.push_back({m.last, m.slots});
      } else if (kind < 8 && !held.empty()) {  // unlock one
        size_t i = rng() % held.size();
        cache.unlock(held[i].node);
        held.erase(held.begin() + static_cast<ptrdiff_t>(i));
      } else {  // evict some
        freed_by_cache.clear();
        const int64_t before = cache.evictable_size();
        const int64_t want = static_cast<int64_t>(rng() % 16);
        const int64_t got = cache.evict(want);
        ASSERT_EQ(cache.evictable_size(), before - got);
        ASSERT_TRUE(got >= want || cache.evictable_size() == 0);
        for (const Held& h : held)
          for (int32_t s : h.slots) ASSERT_FALSE(freed_by_cache.count(s)) << "locked slot evicted";
        // Drop evicted prefixes from the naive model.
        for (auto it = truth.begin(); it != truth.end();)
          it = freed_by_cache.count(it->second) ? truth.erase(it) : std::next(it);
      }
      ASSERT_TRUE(cache.validate().is_ok()) << cache.validate().to_string();
      ASSERT_EQ(cache.total_size(), static_cast<int64_t>(truth.size()));
      ASSERT_EQ(pool.used(), cache.total_size());  // no slot leaked, none owned twice
    }
    for (const Held& h : held) cache.unlock(h.node);
    ASSERT_EQ(cache.protected_size(), 0);
    cache.reset();
    EXPECT_EQ(pool.available(), pool.capacity());
  }
}

}  // namespace
}  // namespace sgl::runtime
