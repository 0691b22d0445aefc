// Structured outputs: compile a regex, a GBNF grammar or a JSON Schema once into an immutable
// CompiledGrammar bound to a vocabulary, then drive one Matcher per request through decoding:
//
//   auto vocab = TokenVocab::from_tokenizer(tok);            // once per model
//   GrammarCompiler compiler(vocab);                         // shared; caches by (kind, text)
//   auto g = compiler.compile(GrammarKind::kJsonSchema, schema_text);   // user error -> Status
//   Matcher m(*g);                                           // per request
//   each step:  m.fill_mask(mask); apply_mask(logits, mask); tok = sample(logits);
//               m.accept(tok);                               // false: the token was not allowed
//               if (auto s = m.forced_text(); !s.empty()) ...jump forward, m.accept_bytes(s)
//   m.is_terminated() after an end-of-generation token was accepted.
//
// Regular grammars (regexes, non-recursive JSON Schemas, non-recursive GBNF) run on a minimised
// DFA whose per-state token masks are computed once by a vocabulary trie walk and cached in the
// CompiledGrammar (lazily, lock-free; the next visit costs a copy). Recursive grammars run on a
// pushdown recognizer with a set of persistent stacks; their masks are computed per step by a
// trie walk (slower, see docs/structured_outputs.md).
//
// Thread safety: CompiledGrammar is immutable (its mask cache is internally synchronised) and is
// shared as std::shared_ptr<const CompiledGrammar>; a Matcher belongs to one request (one thread
// at a time). GrammarCompiler is thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/ir.h"
#include "grammar/json_schema.h"
#include "grammar/token_vocab.h"
#include "support/status.h"

namespace sgl::grammar {

enum class GrammarKind { kRegex, kGbnf, kJsonSchema };

struct GrammarOptions {
  WhitespacePolicy whitespace = WhitespacePolicy::kDefault;
  // Regular grammars whose DFA would exceed this many states use the pushdown back end instead.
  int32_t max_dfa_states = 20000;
};

class CompiledGrammar {
 public:
  ~CompiledGrammar();
  CompiledGrammar(const CompiledGrammar&) = delete;
  CompiledGrammar& operator=(const CompiledGrammar&) = delete;

  const TokenVocab& vocab() const { return *vocab_; }
  const std::shared_ptr<const TokenVocab>& vocab_ptr() const { return vocab_; }
  // True iff the grammar runs on a DFA (cached masks); false for the pushdown back end.
  bool is_dfa() const { return is_dfa_; }
  int32_t num_dfa_states() const { return dfa_.num_states; }
  const Dfa& dfa() const { return dfa_; }
  const Pda& pda() const { return pda_; }

  // The cached mask of DFA state `s` (computed on first use). REQUIRES: is_dfa().
  const uint32_t* dfa_state_mask(int32_t s) const;
  // Computes the mask of DFA state `s` into out[0 .. mask_words()) without the cache: by the
  // plain trie walk (fast = false; the reference) or with subtree shortcuts (fast = true; what
  // dfa_state_mask uses). Both give the same bits. REQUIRES: is_dfa().
  void compute_dfa_mask(int32_t s, uint32_t* out, bool fast) const;

  // Subtree shortcut tables (see grammar.cpp): for each DFA state, its dominant live successor
  // (-1 if none) and the bytes that lead there.
  const std::vector<int32_t>& dfa_dom_next() const { return dom_next_; }
  const std::vector<ByteSet>& dfa_dom_bytes() const { return dom_bytes_; }
  // 1 iff every valid non-ASCII UTF-8 character read from the state leads to its dominant
  // successor (e.g. the content state of a free string, or of a maxLength string).
  const std::vector<uint8_t>& dfa_char_to_dom() const { return char_to_dom_; }
  // [state * 8 + u]: for a state inside a character (UTF-8 decoder state u > 0) reached from a
  // char_to_dom state, the state every valid completion of the character leads to; -1 unknown.
  const std::vector<int32_t>& dfa_mid_target() const { return mid_target_; }
  // Runs of the dominant-successor chain with equal dominant bytes: length (1 << 30 = endless)
  // and the state after the run (-1: none).
  const std::vector<int32_t>& dfa_run_len() const { return run_len_; }
  const std::vector<int32_t>& dfa_run_end() const { return run_end_; }
  // Pushdown back end: bytes that every terminal treats alike share a class.
  int32_t pda_num_classes() const { return pda_num_classes_; }
  const std::array<uint8_t, 256>& pda_byte_class() const { return pda_class_; }
  const std::vector<ByteSet>& pda_class_bytes() const { return pda_class_bytes_; }

  // Pushdown back end: masks cached by configuration content (see Matcher::fill_mask); bounded,
  // cleared when full. Thread-safe.
  std::shared_ptr<const std::vector<uint32_t>> find_pda_mask(const std::string& key) const;
  void store_pda_mask(std::string key, std::vector<uint32_t> mask) const;

 private:
  friend Result<std::shared_ptr<const CompiledGrammar>> compile_ir(
      const GrammarIr& ir, std::shared_ptr<const TokenVocab> vocab, const GrammarOptions& opts);
  CompiledGrammar() = default;

  std::shared_ptr<const TokenVocab> vocab_;
  bool is_dfa_ = false;
  Dfa dfa_;
  std::vector<int32_t> dom_next_;
  std::vector<ByteSet> dom_bytes_;
  std::vector<uint8_t> char_to_dom_;
  std::vector<int32_t> mid_target_;
  std::vector<int32_t> run_len_, run_end_;
  Pda pda_;
  int32_t pda_num_classes_ = 0;
  std::array<uint8_t, 256> pda_class_{};
  std::vector<ByteSet> pda_class_bytes_;
  // One slot per DFA state: null until the state's mask is first computed.
  std::unique_ptr<std::atomic<uint32_t*>[]> mask_cache_;
  static constexpr size_t kMaxPdaCacheEntries = 4096;
  mutable std::mutex pda_cache_mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<const std::vector<uint32_t>>>
      pda_mask_cache_;  // GUARDED_BY(pda_cache_mu_)
};

using CompiledGrammarPtr = std::shared_ptr<const CompiledGrammar>;

// Front-end-independent step: IR -> DFA (or PDA when recursive / too large) bound to `vocab`.
Result<CompiledGrammarPtr> compile_ir(const GrammarIr& ir, std::shared_ptr<const TokenVocab> vocab,
                                      const GrammarOptions& opts = {});

// Compiles `text` of the given kind. Errors are kInvalidArgument with the position (regex byte
// offset, GBNF line:column, JSON pointer in the schema) in the message.
Result<CompiledGrammarPtr> compile_grammar(GrammarKind kind, std::string_view text,
                                           std::shared_ptr<const TokenVocab> vocab,
                                           const GrammarOptions& opts = {});

// Thread-safe compile cache keyed by (kind, options, text). Errors are not cached.
class GrammarCompiler {
 public:
  explicit GrammarCompiler(std::shared_ptr<const TokenVocab> vocab, size_t max_entries = 1024)
      : vocab_(std::move(vocab)), max_entries_(max_entries) {}

  Result<CompiledGrammarPtr> compile(GrammarKind kind, std::string_view text,
                                     const GrammarOptions& opts = {});
  size_t cache_size() const;
  const std::shared_ptr<const TokenVocab>& vocab() const { return vocab_; }

 private:
  using Key = std::tuple<int, int, int32_t, std::string>;
  std::shared_ptr<const TokenVocab> vocab_;
  size_t max_entries_;
  mutable std::mutex mu_;
  std::map<Key, CompiledGrammarPtr> cache_;  // GUARDED_BY(mu_)
};

// Sets logits[i] = -inf for every i whose bit is clear in `mask` (bit i = word i/32, bit i%32),
// and for every i beyond the mask (a model's padded vocabulary).
void apply_mask(std::span<float> logits, std::span<const uint32_t> mask);

// The per-request recognizer state. History is kept per accepted step so rollback() can undo
// steps (speculative decoding, or undoing jump-forward text).
class Matcher {
 public:
  explicit Matcher(CompiledGrammarPtr grammar);
  ~Matcher();
  Matcher(Matcher&&) noexcept;
  Matcher& operator=(Matcher&&) noexcept;

  const CompiledGrammar& grammar() const { return *grammar_; }
  size_t mask_words() const { return grammar_->vocab().mask_words(); }

  // Writes the allowed tokens: bit i set iff token i's bytes keep the grammar viable (some
  // continuation can still complete it). End-of-generation tokens are set iff can_end(); when the
  // grammar can end and cannot continue, only they are set. After termination, no bit is set.
  // REQUIRES: mask.size() >= mask_words().
  void fill_mask(std::span<uint32_t> mask);

  // Advances by token `id`. Returns false and changes nothing if the grammar rejects it (or the
  // matcher is terminated). An end-of-generation token is accepted iff can_end() and terminates.
  bool accept(int32_t id);
  // Advances by raw bytes (forced text). All-or-nothing like accept(); counts as one step.
  bool accept_bytes(std::string_view bytes);

  // True iff the text so far is a complete match (EOS may come now).
  bool can_end() const;
  // True once an end-of-generation token has been accepted.
  bool is_terminated() const { return terminated_; }

  // The bytes the grammar forces from here: the longest string s such that every completion of
  // the current text starts with s, stopping where the grammar could end; possibly empty.
  // Bounded to max_bytes. It may end inside a UTF-8 character (e.g. enum ["é", "è"] forces
  // "\xC3"); the matcher state is not changed (follow with accept_bytes / accept).
  std::string forced_text(size_t max_bytes = 1024);

  // Undoes the last n steps (accept / accept_bytes calls that returned true, EOS included).
  // REQUIRES: n <= num_steps().
  void rollback(size_t n);
  size_t num_steps() const { return history_.size() - 1; }

  // Back to the start state; keeps buffers.
  void reset();

  // Test and benchmark hook: the current mask (as fill_mask would write it) computed without any
  // cache, by the plain trie walk (fast = false; the reference) or the production walk with
  // subtree shortcuts and memoised transitions (fast = true). REQUIRES: mask.size() >=
  // mask_words().
  void compute_mask_uncached(std::span<uint32_t> mask, bool fast);

 private:
  struct PdaState;
  void compute_pda_mask(uint32_t* mask);
  void compute_pda_mask_fast(uint32_t* mask);
  void push_history();

  CompiledGrammarPtr grammar_;
  bool terminated_ = false;
  int32_t dfa_state_ = 0;
  std::unique_ptr<PdaState> pda_;
  // One entry per step (entry 0 = start): DFA state, or PDA snapshot index; terminated flag.
  struct Step {
    int32_t dfa_state;
    bool terminated;
  };
  std::vector<Step> history_;
};

}  // namespace sgl::grammar
