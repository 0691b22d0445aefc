// Helpers shared by the model-level tests: the default model's path, a small driver that builds
// ForwardBatches from plain per-sequence requests (with logits for every new token or only the
// last), and error measures between logit rows.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "backend/forward_batch.h"

namespace sgl::models::testing {

inline std::string default_model_path() {
  return std::string(SGL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline bool default_model_present() {
  std::error_code ec;
  return std::filesystem::exists(default_model_path(), ec);
}

// One sequence of a forward pass: its new tokens, how many tokens it already has in the KV pool,
// the slots of all its tokens (n_past + tokens.size()), and which logits it wants.
struct SeqRequest {
  std::vector<int32_t> tokens;
  int32_t n_past = 0;
  std::vector<int32_t> slots;
  bool all_logits = false;  // false: only the last new token's row
};

// Runs one forward pass over `seqs` (in order) and returns, per sequence, its requested logit
// rows concatenated ([n_rows, n_vocab]). Fails the calling test on error (empty result).
inline std::vector<std::vector<float>> run_forward(backend::Backend& be,
                                                   const std::vector<SeqRequest>& seqs) {
  backend::ForwardBatch batch;
  std::vector<std::pair<int32_t, int32_t>> rows;  // per sequence: first logit row, count
  for (const SeqRequest& s : seqs) {
    const int32_t begin = batch.n_tokens();
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    batch.add_sequence(s.tokens.data(), n, s.n_past, s.slots.data(), false);
    const int32_t first_row = static_cast<int32_t>(batch.logit_rows.size());
    if (s.all_logits) {
      for (int32_t i = 0; i < n; ++i) batch.logit_rows.push_back(begin + i);
    } else {
      batch.logit_rows.push_back(begin + n - 1);
    }
    rows.emplace_back(first_row, static_cast<int32_t>(batch.logit_rows.size()) - first_row);
  }
  backend::Logits logits;
  const Status st = be.forward(batch, &logits);
  if (!st.is_ok()) {
    ADD_FAILURE() << "forward failed: " << st.to_string();
    return {};
  }
  std::vector<std::vector<float>> out;
  for (const auto& [first, count] : rows) {
    out.emplace_back(logits.row(first),
                     logits.row(first) + static_cast<size_t>(count) * logits.n_vocab);
  }
  return out;
}

inline std::vector<int32_t> iota_slots(int32_t begin, int32_t n) {
  std::vector<int32_t> s(static_cast<size_t>(n));
  std::iota(s.begin(), s.end(), begin);
  return s;
}

inline int32_t argmax(const float* row, int32_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

// sum((a - b)^2) / sum(b^2) over n elements (b is the reference).
template <typename A, typename B>
double nmse(const A* a, const B* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return den > 0 ? num / den : num;
}

}  // namespace sgl::models::testing
