#include "runtime/stop_checker.h"

#include <algorithm>

#include "support/check.h"

namespace sgl::runtime {

StopChecker::StopChecker(const tokenizer::Tokenizer& tok, const GenerateParams& params)
    : tok_(tok),
      decoder_(tok, params.skip_special_tokens),
      stop_(params.stop),
      stop_token_ids_(params.stop_token_ids),
      max_stop_len_(params.max_stop_len()),
      max_new_tokens_(params.max_new_tokens),
      min_new_tokens_(params.min_new_tokens),
      ignore_eos_(params.ignore_eos),
      no_stop_trim_(params.no_stop_trim) {
  std::sort(stop_token_ids_.begin(), stop_token_ids_.end());
  text_.reserve(256);
}

bool StopChecker::decode(int32_t token) { return decoder_.push(token, text_).is_ok(); }

std::string_view StopChecker::emit_to(size_t end) {
  SGL_CHECK(end >= emitted_ && end <= text_.size(), "StopChecker: emit range out of order");
  std::string_view d(text_.data() + emitted_, end - emitted_);
  emitted_ = end;
  return d;
}

StopChecker::Step StopChecker::finish(FinishReason reason) {
  finished_ = true;
  reason_ = std::move(reason);
  Step s;
  s.delta = emit_to(text_.size());
  s.finished = true;
  s.finish_reason = reason_;
  return s;
}

size_t StopChecker::stop_prefix_suffix_len() const {
  size_t best = 0;
  for (const auto& s : stop_) {
    size_t k = std::min(s.size() - 1, text_.size());
    for (; k > best; --k) {
      if (std::string_view(text_).substr(text_.size() - k) == std::string_view(s).substr(0, k))
        break;
    }
    best = std::max(best, k);
  }
  return best;
}

StopChecker::Step StopChecker::push(int32_t token) {
  SGL_CHECK(!finished_, "StopChecker::push after the request finished");
  ++n_tokens_;
  if (!tok_.is_valid(token)) {
    decoder_.finish(text_);
    return finish(FinishReason::aborted("generated token id " + std::to_string(token) +
                                        " is outside the vocabulary"));
  }

  // 1. length (SGLang checks it before anything else).
  if (n_tokens_ >= max_new_tokens_) {
    decode(token);
    decoder_.finish(text_);
    return finish(FinishReason::by_length(n_tokens_));
  }

  // 2. EOS / stop token ids, once min_new_tokens tokens precede this one.
  if (!ignore_eos_ && n_tokens_ - 1 >= min_new_tokens_ &&
      (tok_.is_eog(token) ||
       std::binary_search(stop_token_ids_.begin(), stop_token_ids_.end(), token))) {
    if (no_stop_trim_) decode(token);
    decoder_.finish(text_);
    return finish(FinishReason::matched_token(token));
  }

  // 3. stop strings. A new match must end in the newly decoded bytes.
  const size_t old_size = text_.size();
  decode(token);
  if (!stop_.empty() && text_.size() > old_size) {
    const size_t from = old_size >= max_stop_len_ ? old_size - (max_stop_len_ - 1) : 0;
    std::string_view view(text_);
    size_t best_pos = std::string_view::npos;
    size_t best_idx = 0;
    for (size_t i = 0; i < stop_.size(); ++i) {
      size_t p = view.find(stop_[i], from);
      if (p < best_pos) {
        best_pos = p;
        best_idx = i;
      }
    }
    if (best_pos != std::string_view::npos) {
      // Held-back text covers every partial match, so nothing at or after best_pos was emitted.
      SGL_CHECK(best_pos >= emitted_, "StopChecker: emitted text inside a stop string");
      if (no_stop_trim_) {
        decoder_.finish(text_);
      } else {
        text_.resize(best_pos);
      }
      return finish(FinishReason::matched_string(stop_[best_idx]));
    }
  }

  Step s;
  size_t held = stop_.empty() ? 0 : stop_prefix_suffix_len();
  s.delta = emit_to(std::max(emitted_, text_.size() - held));
  return s;
}

StopChecker::Step StopChecker::finish_by_length() {
  SGL_CHECK(!finished_, "StopChecker::finish_by_length after the request finished");
  decoder_.finish(text_);
  return finish(FinishReason::by_length(n_tokens_));
}

StopChecker::Step StopChecker::abort(std::string msg) {
  SGL_CHECK(!finished_, "StopChecker::abort after the request finished");
  decoder_.finish(text_);
  return finish(FinishReason::aborted(std::move(msg)));
}

}  // namespace sgl::runtime
