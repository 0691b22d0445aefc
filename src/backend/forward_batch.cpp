#include "backend/forward_batch.h"

#include <string>

namespace sgl::backend {

void ForwardBatch::add_sequence(const int32_t* new_tokens, int32_t n_new, int32_t n_past,
                                const int32_t* slots, bool want_last_logits) {
  SequenceView s;
  s.token_begin = n_tokens();
  s.n_new = n_new;
  s.n_past = n_past;
  s.slots = slots;
  for (int32_t i = 0; i < n_new; ++i) {
    tokens.push_back(new_tokens[i]);
    positions.push_back(n_past + i);
    out_slots.push_back(slots[n_past + i]);
  }
  if (want_last_logits && n_new > 0) logit_rows.push_back(s.token_begin + n_new - 1);
  seqs.push_back(s);
}

Status ForwardBatch::validate(int64_t kv_capacity, int32_t n_vocab, int32_t n_future) const {
  const size_t n = tokens.size();
  if (positions.size() != n || out_slots.size() != n)
    return invalid_argument("forward batch: tokens/positions/out_slots lengths differ");
  int32_t next = 0;
  for (size_t si = 0; si < seqs.size(); ++si) {
    const SequenceView& s = seqs[si];
    const std::string where = "forward batch: sequence " + std::to_string(si) + ": ";
    if (s.token_begin != next) return invalid_argument(where + "not contiguous with the previous");
    if (s.n_new < 0 || s.n_past < 0) return invalid_argument(where + "negative length");
    if (s.n_new > 0 && s.slots == nullptr) return invalid_argument(where + "no slot list");
    for (int32_t i = 0; i < s.n_past + s.n_new; ++i) {
      if (s.slots[i] < 0 || s.slots[i] >= kv_capacity)
        return invalid_argument(where + "slot " + std::to_string(s.slots[i]) + " out of range");
    }
    for (int32_t i = 0; i < s.n_new; ++i) {
      const size_t t = static_cast<size_t>(s.token_begin + i);
      if (t >= n) return invalid_argument(where + "runs past the end of the batch");
      if (positions[t] != s.n_past + i) return invalid_argument(where + "bad position");
      if (out_slots[t] != s.slots[s.n_past + i]) return invalid_argument(where + "bad out slot");
    }
    next = s.token_begin + s.n_new;
  }
  if (static_cast<size_t>(next) != n) return invalid_argument("forward batch: tokens not covered");
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < -n_future || tokens[i] >= n_vocab)
      return invalid_argument("forward batch: token id " + std::to_string(tokens[i]) +
                              " out of range [" + std::to_string(-n_future) + ", " +
                              std::to_string(n_vocab) + ")");
  for (size_t i = 0; i < logit_rows.size(); ++i) {
    if (logit_rows[i] < 0 || static_cast<size_t>(logit_rows[i]) >= n ||
        (i > 0 && logit_rows[i] <= logit_rows[i - 1]))
      return invalid_argument("forward batch: logit rows must be increasing indices into tokens");
  }
  return Status::ok();
}

}  // namespace sgl::backend
