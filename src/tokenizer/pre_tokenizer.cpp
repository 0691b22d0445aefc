#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <array>
#include <initializer_list>

#include "support/check.h"
#include "tokenizer/unicode.h"

namespace sgl::tokenizer {
namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kPunctuation;
using unicode::kWhitespace;

constexpr uint8_t kLnw = kLetter | kNumber | kWhitespace;

// Emits chunk ends into `out`, skipping empty chunks.
class Emitter {
 public:
  Emitter(std::vector<uint32_t>& out, uint32_t begin) : out_(out), prev_(begin) {}
  // Ends the current chunk at `end`; returns its length.
  uint32_t emit(uint32_t end) {
    uint32_t len = end - prev_;
    if (len > 0) out_.push_back(end);
    prev_ = end;
    return len;
  }

 private:
  std::vector<uint32_t>& out_;
  uint32_t prev_;
};

// 's|'t|'re|'ve|'m|'ll|'d (case-sensitive when `fold` is false, ASCII case-insensitive otherwise):
// returns the match length at `pos` (0 if none).
inline uint32_t match_contraction(const uint32_t* cp, uint32_t pos, uint32_t end, bool fold) {
  if (cp[pos] != '\'' || pos + 1 >= end) return 0;
  auto low = [fold](uint32_t c) { return (fold && c >= 'A' && c <= 'Z') ? c + 32 : c; };
  uint32_t c1 = low(cp[pos + 1]);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= end) return 0;
  uint32_t c2 = low(cp[pos + 2]);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// Whitespace tail shared by both families: \s+(?!\S)|\s+ (the gpt2 family) and, for llama3,
// \s*[\r\n]+ first. Returns the end of the match starting at pos (pos + 1 if nothing matches).
inline uint32_t match_whitespace(const uint32_t* cp, const uint8_t* fl, uint32_t pos, uint32_t end,
                                 bool newline_rule) {
  uint32_t n = 0;
  uint32_t last_newline_end = 0;
  while (pos + n < end && (fl[pos + n] & kWhitespace)) {
    if (newline_rule && (cp[pos + n] == '\r' || cp[pos + n] == '\n'))
      last_newline_end = pos + n + 1;
    ++n;
  }
  if (last_newline_end > 0) return last_newline_end;  // \s*[\r\n]+
  if (n > 1 && pos + n < end) return pos + n - 1;     // \s+(?!\S): leave one for the next word
  if (n > 0) return pos + n;                          // \s+
  return pos + 1;                                     // no match: one code point alone
}

void split_gpt2(const uint32_t* cp, const uint8_t* fl, uint32_t begin, uint32_t end,
                std::vector<uint32_t>& out) {
  Emitter em(out, begin);
  uint32_t pos = begin;
  while (pos < end) {
    if (uint32_t n = match_contraction(cp, pos, end, /*fold=*/false)) {
      pos += n;
      em.emit(pos);
      continue;
    }
    // " ?X+" for X in \p{L}, \p{N}, [^\s\p{L}\p{N}]: an optional leading space then a run.
    uint32_t la = pos + (cp[pos] == ' ' ? 1 : 0);
    if (la < end) {
      uint8_t f = fl[la];
      if (f & kLetter) {
        uint32_t p = la + 1;
        while (p < end && (fl[p] & kLetter)) ++p;
        pos = p;
        em.emit(pos);
        continue;
      }
      if (f & kNumber) {
        uint32_t p = la + 1;
        while (p < end && (fl[p] & kNumber)) ++p;
        pos = p;
        em.emit(pos);
        continue;
      }
      if (!(f & kLnw)) {
        uint32_t p = la + 1;
        while (p < end && !(fl[p] & kLnw)) ++p;
        pos = p;
        em.emit(pos);
        continue;
      }
    }
    pos = match_whitespace(cp, fl, pos, end, /*newline_rule=*/false);
    em.emit(pos);
  }
}

void split_llama3(const uint32_t* cp, const uint8_t* fl, uint32_t begin, uint32_t end,
                  uint32_t max_digits, std::vector<uint32_t>& out) {
  Emitter em(out, begin);
  uint32_t pos = begin;
  while (pos < end) {
    const uint32_t c = cp[pos];
    const uint8_t f = fl[pos];
    if (uint32_t n = match_contraction(cp, pos, end, /*fold=*/true)) {
      pos += n;
      em.emit(pos);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c != '\r' && c != '\n' && !(f & kNumber)) {
      if ((f & kLetter) || (pos + 1 < end && (fl[pos + 1] & kLetter))) {
        uint32_t p = pos + 1;
        while (p < end && (fl[p] & kLetter)) ++p;
        pos = p;
        em.emit(pos);
        continue;
      }
    }
    // \p{N}{1,max_digits}
    if (f & kNumber) {
      uint32_t p = pos;
      while (p < end && (fl[p] & kNumber)) {
        ++p;
        if (p - pos >= max_digits) {
          em.emit(p);
          pos = p;
        }
      }
      pos = p;
      em.emit(pos);
      continue;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    uint32_t la = pos + (c == ' ' ? 1 : 0);
    if (la < end && !(fl[la] & kLnw)) {
      uint32_t p = la + 1;
      while (p < end && !(fl[p] & kLnw)) ++p;
      while (p < end && (cp[p] == '\r' || cp[p] == '\n')) ++p;
      pos = p;
      em.emit(pos);
      continue;
    }
    pos = match_whitespace(cp, fl, pos, end, /*newline_rule=*/true);
    em.emit(pos);
  }
}

// Splits [begin, end) into maximal runs of code points in / not in a class; with `each`, every
// code point of the class is a chunk of its own.
template <typename InClass>
void split_runs(const uint32_t* cp, const uint8_t* fl, uint32_t begin, uint32_t end, bool each,
                InClass in_class, std::vector<uint32_t>& out) {
  Emitter em(out, begin);
  uint32_t pos = begin;
  while (pos < end) {
    if (in_class(cp[pos], fl[pos])) {
      uint32_t p = pos + 1;
      if (!each) {
        while (p < end && in_class(cp[p], fl[p])) ++p;
      }
      em.emit(pos);  // the gap before the match
      pos = p;
      em.emit(pos);
    } else {
      ++pos;
    }
  }
  em.emit(end);
}

// [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits, gaps between them.
void split_digit_triples(const uint32_t* cp, uint32_t begin, uint32_t end,
                         std::vector<uint32_t>& out) {
  Emitter em(out, begin);
  auto digit = [](uint32_t c) { return c >= '0' && c <= '9'; };
  uint32_t pos = begin;
  while (pos + 3 <= end) {
    if (digit(cp[pos]) && digit(cp[pos + 1]) && digit(cp[pos + 2])) {
      em.emit(pos);
      pos += 3;
      em.emit(pos);
    } else {
      ++pos;
    }
  }
  em.emit(end);
}

bool is_punct_class(uint32_t c, uint8_t f) {
  if (f & kPunctuation) return true;
  switch (c) {
    case '$':
    case '+':
    case '<':
    case '=':
    case '>':
    case '^':
    case '~':
    case '|':
      return true;
    default:
      return false;
  }
}

void run_stage(PreTokenizerStage stage, const uint32_t* cp, const uint8_t* fl, uint32_t begin,
               uint32_t end, std::vector<uint32_t>& out) {
  switch (stage) {
    case PreTokenizerStage::kGpt2:
      split_gpt2(cp, fl, begin, end, out);
      return;
    case PreTokenizerStage::kLlama3:
      split_llama3(cp, fl, begin, end, 3, out);
      return;
    case PreTokenizerStage::kQwen2:
      split_llama3(cp, fl, begin, end, 1, out);
      return;
    case PreTokenizerStage::kEachNumber:
      split_runs(
          cp, fl, begin, end, true, [](uint32_t, uint8_t f) { return (f & kNumber) != 0; }, out);
      return;
    case PreTokenizerStage::kNumberRuns:
      split_runs(
          cp, fl, begin, end, false, [](uint32_t, uint8_t f) { return (f & kNumber) != 0; }, out);
      return;
    case PreTokenizerStage::kPunctRuns:
      split_runs(cp, fl, begin, end, false, is_punct_class, out);
      return;
    case PreTokenizerStage::kDigitTriples:
      split_digit_triples(cp, begin, end, out);
      return;
  }
  SGL_CHECK(false, "unknown pre-tokenizer stage");
}

std::array<uint8_t, 128> make_ascii_flags() {
  std::array<uint8_t, 128> t{};
  for (uint32_t c = 0; c < 128; ++c) t[c] = unicode::flags(c);
  return t;
}

// Decodes `input` into scratch.cpts/flags/offsets; re-encodes into scratch.reencoded when
// decoding changed any byte.
void decode_text(std::string_view input, PreTokenizeScratch& s) {
  static const std::array<uint8_t, 128> kAsciiFlags = make_ascii_flags();
  s.cpts.clear();
  s.flags.clear();
  s.offsets.clear();
  s.cpts.reserve(input.size());
  s.flags.reserve(input.size());
  s.offsets.reserve(input.size() + 1);
  bool changed = false;
  size_t i = 0;
  while (i < input.size()) {
    unsigned char b = static_cast<unsigned char>(input[i]);
    s.offsets.push_back(static_cast<uint32_t>(i));
    if (b < 0x80) {
      s.cpts.push_back(b);
      s.flags.push_back(kAsciiFlags[b]);
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp = unicode::decode_lenient(input, i, &len);
    // Re-encoding reproduces the input bytes unless they were an invalid byte (U+FFFD, 3 bytes
    // for 1) or an overlong form (shorter canonical encoding).
    if (unicode::utf8_length(cp) != len) changed = true;
    s.cpts.push_back(cp);
    s.flags.push_back(unicode::flags(cp));
    i += len;
  }
  s.offsets.push_back(static_cast<uint32_t>(input.size()));
  if (!changed) {
    s.text = input;
    return;
  }
  s.reencoded.clear();
  s.reencoded.reserve(input.size() * 3);
  for (size_t k = 0; k < s.cpts.size(); ++k) {
    s.offsets[k] = static_cast<uint32_t>(s.reencoded.size());
    unicode::append_utf8(s.reencoded, s.cpts[k]);
  }
  s.offsets.back() = static_cast<uint32_t>(s.reencoded.size());
  s.text = s.reencoded;
}

}  // namespace

std::optional<PreTokenizerSpec> find_pre_tokenizer(std::string_view pre) {
  using S = PreTokenizerStage;
  auto in = [pre](std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), pre) != names.end();
  };
  PreTokenizerSpec spec;
  if (in({"", "default"})) {
    spec.name = "default";
    spec.stages = {S::kPunctRuns, S::kGpt2, S::kNumberRuns, S::kDigitTriples};
  } else if (in({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                 "lfm2", "jina-v5-nano"})) {
    spec.name = "llama3";
    spec.stages = {S::kLlama3};
    spec.ignore_merges = true;
    spec.add_bos = true;
  } else if (in({"dbrx", "smaug-bpe"})) {
    spec.name = "dbrx";
    spec.stages = {S::kLlama3};
  } else if (in({"glm4", "chatglm-bpe"})) {
    spec.name = "chatglm";
    spec.stages = {S::kLlama3};
    spec.no_bos = true;
  } else if (in({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open",
                 "grok-2"})) {
    spec.name = "qwen2";
    spec.stages = {S::kQwen2};
    spec.clean_spaces = false;
  } else if (in({"megrez", "stablelm2"})) {
    spec.name = "stablelm2";
    spec.stages = {S::kQwen2};
  } else if (in({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                 "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais"})) {
    spec.name = "gpt2";
    spec.stages = {S::kGpt2};
  } else if (in({"trillion", "granite-docling"})) {
    spec.name = "gpt2";
    spec.stages = {S::kGpt2};
    spec.clean_spaces = false;
  } else if (in({"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"})) {
    spec.name = "starcoder";
    spec.stages = {S::kEachNumber, S::kGpt2};
  } else if (in({"smollm", "command-r"})) {
    spec.name = pre == "smollm" ? "smollm" : "command-r";
    spec.stages = {S::kEachNumber, S::kGpt2};
    spec.clean_spaces = false;
  } else if (in({"falcon"})) {
    spec.name = "falcon";
    spec.stages = {S::kPunctRuns, S::kGpt2, S::kDigitTriples};
  } else {
    return std::nullopt;
  }
  return spec;
}

void pre_tokenize(std::span<const PreTokenizerStage> stages, std::string_view input,
                  PreTokenizeScratch& s) {
  s.word_ends.clear();
  s.ends.clear();
  decode_text(input, s);
  const uint32_t n = static_cast<uint32_t>(s.cpts.size());
  if (n == 0) return;
  s.ends.push_back(n);
  for (PreTokenizerStage stage : stages) {
    s.next_ends.clear();
    uint32_t begin = 0;
    for (uint32_t end : s.ends) {
      run_stage(stage, s.cpts.data(), s.flags.data(), begin, end, s.next_ends);
      begin = end;
    }
    s.ends.swap(s.next_ends);
  }
  s.word_ends.reserve(s.ends.size());
  for (uint32_t e : s.ends) s.word_ends.push_back(s.offsets[e]);
}

}  // namespace sgl::tokenizer
