// Fuzzes the grammar matcher with random token streams. Input: byte 0 picks the grammar kind and
// whitespace policy, bytes 1-2 (little-endian) the length of the grammar text that follows, and
// the remaining bytes are operations on one Matcher: accept an arbitrary token, accept the k-th
// allowed token, accept the forced text, accept raw bytes, roll back, reset. After every
// operation the invariants of grammar.h are checked against a history of masks:
//  - accept(id) succeeds iff bit id of fill_mask() is set (so an accepted token was allowed);
//  - the EOS bit is set iff can_end() and not terminated; a terminated matcher allows nothing;
//  - a failed accept/accept_bytes changes nothing; forced_text() changes nothing and the forced
//    bytes are then accepted;
//  - rollback(n) and reset() restore exactly the mask and step count of the earlier step.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "fuzz_vocab.h"
#include "grammar/grammar.h"

namespace {

using sgl::grammar::Matcher;
using Mask = std::vector<uint32_t>;

bool bit(const Mask& m, int32_t id) { return (m[id >> 5] >> (id & 31)) & 1; }

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool done() const { return i_ >= n_; }
  uint32_t byte() { return i_ < n_ ? d_[i_++] : 0; }
  uint32_t u16() { return byte() | (byte() << 8); }
  std::string_view bytes(size_t k) {
    k = std::min(k, n_ - std::min(i_, n_));
    std::string_view s(reinterpret_cast<const char*>(d_ + i_), k);
    i_ += k;
    return s;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
};

struct Checker {
  Matcher& m;
  const int32_t n_vocab;
  const int32_t eos;
  std::vector<Mask> history;  // history[i]: mask after step i (history[0]: start state)
  std::vector<bool> terminated;

  Mask current() {
    Mask mask(m.mask_words(), 0xA5A5A5A5u);  // garbage: fill_mask must write every word
    m.fill_mask(mask);
    return mask;
  }

  void check_state(const Mask& mask) {
    FUZZ_CHECK(history.size() == m.num_steps() + 1, "one history entry per step");
    FUZZ_CHECK(bit(mask, eos) == (m.can_end() && !m.is_terminated()), "EOS bit iff can_end");
    if (m.is_terminated()) {
      for (int32_t id = 0; id < n_vocab; ++id)
        FUZZ_CHECK(!bit(mask, id), "a terminated matcher allows nothing");
    }
  }

  void after_step(bool ok, size_t steps_before, const Mask& before) {
    if (!ok) {
      FUZZ_CHECK(m.num_steps() == steps_before, "a rejected step changes nothing");
      FUZZ_CHECK(current() == before, "a rejected step keeps the mask");
      return;
    }
    FUZZ_CHECK(m.num_steps() == steps_before + 1, "an accepted step counts one");
    Mask now = current();
    history.push_back(now);
    terminated.push_back(m.is_terminated());
    check_state(now);
  }

  void accept_id(int32_t id) {
    const Mask before = history.back();
    const size_t steps = m.num_steps();
    const bool ok = m.accept(id);
    const bool allowed = id >= 0 && id < n_vocab && bit(before, id);
    FUZZ_CHECK(ok == allowed, "accept(id) succeeds iff the mask allows id");
    after_step(ok, steps, before);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sgl::grammar;
  Reader in(data, size);
  const uint32_t sel = in.byte();
  const GrammarKind kind = static_cast<GrammarKind>(sel % 3);
  GrammarOptions opts;
  opts.whitespace = static_cast<WhitespacePolicy>((sel / 3) % 3);
  std::string_view text = in.bytes(in.u16() % 4096);
  auto vocab = sgl::fuzz::fuzz_vocab();
  auto g = compile_grammar(kind, text, vocab, opts);
  if (!g.is_ok()) return 0;

  Matcher m(*g);
  const int32_t n_vocab = vocab->vocab_size();
  Checker c{m, n_vocab, vocab->eog_ids().front(), {}, {}};
  c.history.push_back(c.current());
  c.terminated.push_back(false);
  c.check_state(c.history.back());

  int ops = 0;
  while (!in.done() && ops++ < 512) {
    const uint32_t op = in.byte() % 8;
    switch (op) {
      case 0:
      case 1: {  // an arbitrary token, a few out of range (usually rejected)
        c.accept_id(static_cast<int32_t>(in.u16() % (n_vocab + 8)) - 4);
        break;
      }
      case 2:
      case 3: {  // the k-th allowed token (usually accepted), as a sampler would pick
        const Mask& mask = c.history.back();
        std::vector<int32_t> allowed;
        for (int32_t id = 0; id < n_vocab; ++id)
          if (bit(mask, id)) allowed.push_back(id);
        const uint32_t k = in.byte();
        if (!allowed.empty()) c.accept_id(allowed[k % allowed.size()]);
        break;
      }
      case 4: {  // jump forward
        const Mask before = c.history.back();
        const size_t steps = m.num_steps();
        std::string forced = m.forced_text(in.byte() + 1);
        FUZZ_CHECK(m.num_steps() == steps && c.current() == before,
                   "forced_text() does not change the state");
        if (!forced.empty()) {
          const bool ok = m.accept_bytes(forced);
          FUZZ_CHECK(ok, "forced text is accepted");
          c.after_step(ok, steps, before);
        }
        break;
      }
      case 5: {  // raw bytes
        const Mask before = c.history.back();
        const size_t steps = m.num_steps();
        std::string_view b = in.bytes(in.byte() % 8);
        const bool ok = m.accept_bytes(b);
        // Bytes that start with an allowed single-byte token or none at all can be anything;
        // only check the all-or-nothing contract.
        c.after_step(ok, steps, before);
        break;
      }
      case 6: {  // rollback
        const size_t n = in.byte() % (m.num_steps() + 1);
        m.rollback(n);
        c.history.resize(c.history.size() - n);
        c.terminated.resize(c.terminated.size() - n);
        FUZZ_CHECK(m.is_terminated() == c.terminated.back(), "rollback restores termination");
        FUZZ_CHECK(c.current() == c.history.back(), "rollback restores the mask");
        c.check_state(c.history.back());
        break;
      }
      case 7: {  // reset
        if (in.byte() % 4 != 0) break;  // keep resets rare so streams get long
        m.reset();
        c.history.resize(1);
        c.terminated.resize(1);
        FUZZ_CHECK(m.num_steps() == 0 && !m.is_terminated(), "reset returns to the start");
        FUZZ_CHECK(c.current() == c.history.front(), "reset restores the start mask");
        break;
      }
    }
  }
  return 0;
}
