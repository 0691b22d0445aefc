// ForwardBatch: one forward pass over a ragged batch that mixes prefill chunks of some sequences
// and single decode tokens of others. Plain data built by the scheduler (or a CLI/test) and read
// by backends. Token-granular KV pool (page size 1): every token of every sequence lives in one
// KV slot; a sequence's attention reads the slots listed for it.
//
// Invariants (checked by validate()):
// - tokens, positions and out_slots have the same length n_tokens;
// - sequences partition [0, n_tokens) into consecutive ranges in order;
// - for sequence s: positions of its new tokens are n_past, n_past+1, ..., and its slot list has
//   n_past + n_new entries whose last n_new equal the out_slots of its new tokens;
// - logit_rows are indices into [0, n_tokens), strictly increasing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/status.h"

namespace sgl::backend {

struct SequenceView {
  int32_t token_begin = 0;  // first new token of this sequence in ForwardBatch::tokens
  int32_t n_new = 0;        // new tokens this pass (prefill chunk length, or 1 when decoding)
  int32_t n_past = 0;       // tokens already in the KV cache (positions 0..n_past-1)
  // [n_past + n_new] KV slot of every token of the sequence, oldest first. Points into memory
  // owned by the builder and valid for the duration of forward().
  const int32_t* slots = nullptr;
};

struct ForwardBatch {
  std::vector<int32_t> tokens;      // [n_tokens] token ids of the new tokens
  std::vector<int32_t> positions;   // [n_tokens] position of each new token in its sequence
  std::vector<int32_t> out_slots;   // [n_tokens] KV slot each new token writes its K/V into
  std::vector<SequenceView> seqs;   // [n_seqs]
  std::vector<int32_t> logit_rows;  // [n_logits] rows (indices into tokens) that need logits

  int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }
  void clear() {
    tokens.clear();
    positions.clear();
    out_slots.clear();
    seqs.clear();
    logit_rows.clear();
  }
  // Appends a sequence's new tokens. `slots` must hold n_past + new_tokens.size() entries and stay
  // alive until forward() returns. If want_last_logits, the last new token's row is requested.
  void add_sequence(const int32_t* new_tokens, int32_t n_new, int32_t n_past, const int32_t* slots,
                    bool want_last_logits);
  // Checks the invariants above against a KV pool of kv_capacity slots and a vocabulary size.
  // n_future > 0 also accepts the future ids -1 .. -n_future (Backend::launch_sample).
  Status validate(int64_t kv_capacity, int32_t n_vocab, int32_t n_future = 0) const;
};

// Logits for the requested rows, row-major [n_rows, n_vocab], in ForwardBatch::logit_rows order.
struct Logits {
  int32_t n_rows = 0;
  int32_t n_vocab = 0;
  std::vector<float> data;
  const float* row(int32_t i) const { return data.data() + static_cast<size_t>(i) * n_vocab; }
  float* row(int32_t i) { return data.data() + static_cast<size_t>(i) * n_vocab; }
};

}  // namespace sgl::backend
