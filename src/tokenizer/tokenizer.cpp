#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <unordered_map>

#include "support/utf8.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace sgl::tokenizer {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

bool ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool text_is_one_of(std::string_view text, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), text) != names.end();
}

// llama.cpp's llama_decode_text: byte-alphabet text back to bytes. A code point outside the
// alphabet becomes "[UNK_BYTE_0x<utf8 hex><token text>]" as there; unlike llama.cpp the token text
// is left out when it is long, so a hostile vocabulary cannot blow the piece up quadratically.
std::string decode_byte_level_text(std::string_view text) {
  constexpr size_t kMaxEchoedText = 64;
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t len;
    uint32_t cp = unicode::decode_lenient(text, i, &len);
    i += len;
    int b = unicode::codepoint_to_byte(cp);
    if (b >= 0) {
      out += static_cast<char>(b);
      continue;
    }
    std::string utf8;
    unicode::append_utf8(utf8, cp);
    out += "[UNK_BYTE_0x";
    static const char kHex[] = "0123456789abcdef";
    for (unsigned char c : utf8) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    if (text.size() <= kMaxEchoedText) out += text;
    out += "]";
  }
  return out;
}

// llama.cpp's token_to_byte: the hex digits at text[3..5) ("<0x0A>" -> 10), strtol-style.
uint8_t byte_token_value(std::string_view text) {
  std::string hex(text.size() > 3 ? text.substr(3, 2) : std::string_view());
  return static_cast<uint8_t>(std::strtol(hex.c_str(), nullptr, 16));
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t m = s.find(from, pos);
    if (m == std::string_view::npos) break;
    out.append(s.substr(pos, m - pos));
    out.append(to);
    pos = m + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

struct Fragment {
  int32_t token;  // >= 0: a special token; -1: text [offset, offset + length)
  uint32_t offset;
  uint32_t length;
};

struct EncodeScratch {
  std::vector<Fragment> fragments;
  std::vector<Fragment> next_fragments;
  PreTokenizeScratch pre;
  BpeScratch bpe;
  SpmScratch spm;
  std::vector<int32_t> word;
  std::vector<int32_t> merged;
  std::string segment;
};

// llama.cpp's tokenizer_st_partition: split `text` around special tokens, longest token first.
void partition_special(const TokenizerImpl& t, std::string_view text, bool parse_special,
                       EncodeScratch& s) {
  auto& frags = s.fragments;
  auto& next = s.next_fragments;
  frags.clear();
  if (text.empty()) return;
  frags.push_back({-1, 0, static_cast<uint32_t>(text.size())});
  for (int32_t id : t.special_tokens) {
    const uint16_t attr = t.vocab.attr(id);
    if (!parse_special && (attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string& tok = t.vocab.text(id);
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      uint32_t base = f.offset;
      uint32_t len = f.length;
      while (len > 0) {
        size_t m = text.substr(0, base + len).find(tok, base);
        if (m == std::string_view::npos) {
          next.push_back({-1, base, len});
          break;
        }
        uint32_t left_len = static_cast<uint32_t>(m) - base;
        if (attr & kAttrLstrip) {
          while (left_len > 0 && ascii_space(text[base + left_len - 1])) --left_len;
        }
        if (left_len > 0) next.push_back({-1, base, left_len});
        next.push_back({id, 0, 0});
        uint32_t right = static_cast<uint32_t>(m + tok.size());
        uint32_t right_len = base + len - right;
        if (attr & kAttrRstrip) {
          while (right_len > 0 && ascii_space(text[right])) {
            ++right;
            --right_len;
          }
        }
        base = right;
        len = right_len;
      }
    }
    frags.swap(next);
  }
}

// Words repeat a lot in real text, and BPE of a word depends only on the word and the
// tokenizer, so each thread remembers the tokens of recent short words. Per thread, so no locks;
// keyed by the tokenizer's instance id; bounded (cleared when full).
struct WordCache {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  static constexpr size_t kMaxEntries = 1 << 15;
  static constexpr size_t kMaxWordBytes = 32;

  uint64_t owner = 0;
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, Hash, std::equal_to<>> words;
  std::vector<int32_t> tokens;  // the cached words' tokens, back to back

  void reset(uint64_t id) {
    owner = id;
    words.clear();
    tokens.clear();
  }
};

WordCache& word_cache(uint64_t owner) {
  thread_local WordCache cache;
  if (cache.owner != owner) cache.reset(owner);
  return cache;
}

void encode_byte_level_words(const TokenizerImpl& t, std::string_view text, EncodeScratch& s,
                             std::vector<int32_t>& out) {
  pre_tokenize(t.stages, text, s.pre);
  const std::string_view norm = s.pre.text;
  const int32_t n_vocab = t.vocab.size();
  WordCache& cache = word_cache(t.instance_id);
  uint32_t start = 0;
  for (uint32_t end : s.pre.word_ends) {
    const std::string_view word = norm.substr(start, end - start);
    start = end;
    if (t.ignore_merges) {
      auto it = t.raw_index.find(word);
      if (it != t.raw_index.end()) {
        out.push_back(it->second);
        continue;
      }
    }
    const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
    if (cacheable) {
      auto it = cache.words.find(word);
      if (it != cache.words.end()) {
        const int32_t* p = cache.tokens.data() + it->second.first;
        out.insert(out.end(), p, p + it->second.second);
        continue;
      }
    }
    const size_t first = out.size();
    s.word.clear();
    for (unsigned char c : word) s.word.push_back(t.byte_symbol[c]);
    s.merged.clear();
    bpe_merge(t.merges, s.word, s.bpe, s.merged);
    for (int32_t sym : s.merged) {
      if (sym < n_vocab) {
        out.push_back(sym);
        continue;
      }
      // Not a token: llama.cpp looks up each byte of the symbol's UTF-8 text as a token.
      for (char c : t.extra_symbols[sym - n_vocab]) {
        int32_t id = t.vocab.find(std::string_view(&c, 1));
        if (id >= 0) out.push_back(id);
      }
    }
    if (cacheable) {
      if (cache.words.size() >= WordCache::kMaxEntries) cache.reset(t.instance_id);
      cache.words.emplace(std::string(word),
                          std::make_pair(static_cast<uint32_t>(cache.tokens.size()),
                                         static_cast<uint32_t>(out.size() - first)));
      cache.tokens.insert(cache.tokens.end(), out.begin() + static_cast<std::ptrdiff_t>(first),
                          out.end());
    }
  }
}

// Hugging Face BPE::merge_word over characters, with byte fallback.
void encode_rank_word(const TokenizerImpl& t, std::string_view word, EncodeScratch& s,
                      std::vector<int32_t>& out) {
  s.word.clear();
  bool prev_unk = false;
  size_t i = 0;
  while (i < word.size()) {
    size_t len =
        std::min(unicode::lead_byte_length(static_cast<unsigned char>(word[i])), word.size() - i);
    const std::string_view ch = word.substr(i, len);
    i += len;
    int32_t id = t.vocab.find(ch);
    if (id >= 0) {
      s.word.push_back(id);
      prev_unk = false;
      continue;
    }
    if (t.byte_fallback) {
      bool all = true;
      for (unsigned char c : ch) all = all && t.byte_token[c] >= 0;
      if (all) {
        for (unsigned char c : ch) s.word.push_back(t.byte_token[c]);
        prev_unk = false;
        continue;
      }
    }
    if (t.unk >= 0 && !(t.fuse_unk && prev_unk)) s.word.push_back(t.unk);
    prev_unk = t.unk >= 0;
  }
  bpe_merge(t.merges, s.word, s.bpe, out);
}

void encode_spm_segment(const TokenizerImpl& t, std::string_view raw, bool at_text_start,
                        bool after_special, EncodeScratch& s, std::vector<int32_t>& out) {
  std::string& seg = s.segment;
  seg.clear();
  bool prefix = false;
  switch (t.space_prefix) {
    case SpacePrefix::kNever:
      break;
    case SpacePrefix::kEverySegment:
      prefix = after_special;
      break;
    case SpacePrefix::kUnlessLeading:
      prefix = raw.empty() || raw[0] != ' ';
      break;
    case SpacePrefix::kFirstUnlessLeading:
      prefix = at_text_start && (raw.empty() || raw[0] != ' ');
      break;
  }
  if (prefix) seg += kSpaceMarker;
  for (char c : raw) {
    if (c == ' ') {
      seg += kSpaceMarker;
    } else {
      seg += c;
    }
  }
  if (t.engine == Engine::kSpmScores) {
    spm_tokenize(t.vocab, t.byte_token, t.unk, seg, s.spm, out);
    return;
  }
  if (!t.split_on_space) {
    encode_rank_word(t, seg, s, out);
    return;
  }
  // Metaspace split: every word but possibly the first starts with U+2581.
  size_t start = 0;
  while (start < seg.size()) {
    size_t next = seg.find(kSpaceMarker, start + 1);
    if (next == std::string::npos) next = seg.size();
    encode_rank_word(t, std::string_view(seg).substr(start, next - start), s, out);
    start = next;
  }
}

void encode_impl(const TokenizerImpl& t, std::string_view text, bool add_special,
                 bool parse_special, std::vector<int32_t>& out) {
  SGL_CHECK(text.size() < (uint64_t{1} << 32), "encode: text of 4 GiB or more");
  EncodeScratch s;
  partition_special(t, text, parse_special, s);
  if (add_special && t.add_bos) out.push_back(t.bos);
  bool after_special = true;  // the text start counts as "after a special token"
  for (const Fragment& f : s.fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    const std::string_view raw = text.substr(f.offset, f.length);
    if (t.engine == Engine::kByteLevelBpe) {
      encode_byte_level_words(t, raw, s, out);
    } else {
      encode_spm_segment(t, raw, f.offset == 0, after_special, s, out);
    }
    after_special = false;
  }
  if (add_special && t.add_eos) out.push_back(t.eos);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// finalize: llama.cpp's load-time processing.

bool TokenizerImpl::is_eog(int32_t id) const {
  return std::binary_search(eog.begin(), eog.end(), id);
}

Status TokenizerImpl::finalize() {
  const int32_t n = vocab.size();
  if (n <= 0) return invalid_argument("tokenizer: empty vocabulary");
  for (int32_t i = 0; i < n; ++i) {
    if (vocab.text(i).empty())
      return invalid_argument("tokenizer: empty token text at id " + std::to_string(i));
  }
  if (!vocab.finished()) vocab.finish();
  for (int32_t i = 0; i < n; ++i) {
    int32_t found = vocab.find(vocab.text(i));
    if (found != i) {
      return invalid_argument("tokenizer: duplicate token '" + vocab.text(i) + "' at ids " +
                              std::to_string(found) + " and " + std::to_string(i));
    }
  }
  auto valid = [n](int32_t id) { return id >= 0 && id < n; };
  for (int32_t* id : {&bos, &eos, &eot, &eom, &unk, &pad, &fim_pre, &fim_suf, &fim_mid, &fim_pad,
                      &fim_rep, &fim_sep}) {
    if (!valid(*id)) *id = -1;
  }
  if (add_bos && bos < 0)
    return invalid_argument("tokenizer: add_bos_token is set but there is no BOS token");
  if (add_eos && eos < 0)
    return invalid_argument("tokenizer: add_eos_token is set but there is no EOS token");

  // Special tokens recognized by their text (llama.cpp: "auto-detect special tokens by text").
  // llama.cpp takes the first match in hash-map order; we take the lowest id.
  auto mark_control = [this](int32_t id) { vocab.set_attr(id, vocab.attr(id) | kAttrControl); };
  auto detect = [&](int32_t* slot, std::initializer_list<std::string_view> names) {
    if (*slot >= 0) return;
    for (int32_t id = 0; id < n; ++id) {
      if (text_is_one_of(vocab.text(id), names)) {
        *slot = id;
        mark_control(id);
        return;
      }
    }
  };
  detect(&eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                "<\xEF\xBD\x9C"
                "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                "<end_of_utterance>"});
  detect(&eom, {"<|eom_id|>"});
  detect(&fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                    "<\xEF\xBD\x9C"
                    "fim\xE2\x96\x81"
                    "begin\xEF\xBD\x9C>",
                    "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"});
  detect(&fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                    "<\xEF\xBD\x9C"
                    "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
                    "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"});
  detect(&fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                    "<\xEF\xBD\x9C"
                    "fim\xE2\x96\x81"
                    "end\xEF\xBD\x9C>",
                    "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"});
  detect(&fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
  detect(&fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
  detect(&fim_sep, {"<|file_sep|>"});

  // Control tokens named "...unused..." are unused.
  for (int32_t id = 0; id < n; ++id) {
    if ((vocab.attr(id) & kAttrControl) && vocab.text(id).find("unused") != std::string::npos) {
      vocab.set_attr(id, vocab.attr(id) | kAttrUnused);
    }
  }

  // End-of-generation set.
  std::vector<int32_t> eog_set;
  for (int32_t id : {fim_pad, fim_rep, fim_sep}) {
    if (id >= 0) eog_set.push_back(id);
  }
  for (int32_t id = 0; id < n; ++id) {
    if (text_is_one_of(vocab.text(id), {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<|return|>",
                                        "<|call|>",
                                        "<|flush|>",
                                        "<|calls|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "</s>",
                                        "<|eom_id|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "[EOS]",
                                        "<|end_of_text|>",
                                        "<end_of_utterance>",
                                        "<eos>",
                                        "<turn|>",
                                        "<|tool_response>",
                                        "<\xEF\xBD\x9C"
                                        "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                        "[e~["})) {
      eog_set.push_back(id);
      mark_control(id);
    }
  }
  // gpt-oss: these are always rendered.
  for (int32_t id = 0; id < n; ++id) {
    if (text_is_one_of(vocab.text(id),
                       {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) {
      vocab.set_attr(id, kAttrUserDefined);
    }
  }
  for (int32_t id : {eos, eot, eom}) {
    if (id >= 0) eog_set.push_back(id);
  }
  std::sort(eog_set.begin(), eog_set.end());
  eog_set.erase(std::unique(eog_set.begin(), eog_set.end()), eog_set.end());
  auto find_in_eog = [&](std::string_view text) -> int32_t {
    for (int32_t id : eog_set) {
      if (vocab.text(id) == text) return id;
    }
    return -1;
  };
  // o200k_harmony / solar-open: "<|end|>" is not end-of-generation there.
  {
    bool has_return = find_in_eog("<|return|>") >= 0;
    bool has_call = find_in_eog("<|call|>") >= 0 || find_in_eog("<|calls|>") >= 0;
    bool has_flush = find_in_eog("<|flush|>") >= 0;
    int32_t end_id = find_in_eog("<|end|>");
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
      eog_set.erase(std::find(eog_set.begin(), eog_set.end(), end_id));
      vocab.set_attr(end_id, kAttrUserDefined);
    }
  }
  // gemma4 / paddleocr: "</s>" is not end-of-generation next to "<|tool_response>".
  {
    int32_t s_id = find_in_eog("</s>");
    if (s_id >= 0 && find_in_eog("<|tool_response>") >= 0) {
      eog_set.erase(std::find(eog_set.begin(), eog_set.end(), s_id));
      vocab.set_attr(s_id, kAttrNormal);
    }
  }
  eog = std::move(eog_set);

  // Special tokens for partitioning: longest first (stable, so equal lengths go by id).
  special_tokens.clear();
  for (int32_t id = 0; id < n; ++id) {
    if (vocab.attr(id) & (kAttrControl | kAttrUserDefined | kAttrUnknown))
      special_tokens.push_back(id);
  }
  std::stable_sort(special_tokens.begin(), special_tokens.end(), [this](int32_t a, int32_t b) {
    return vocab.text(a).size() > vocab.text(b).size();
  });

  // Engine tables.
  byte_token.fill(-1);
  if (engine == Engine::kByteLevelBpe) {
    std::unordered_map<std::string, int32_t> interned;
    auto symbol_of = [&](const std::string& text) -> int32_t {
      int32_t id = vocab.find(text);
      if (id >= 0) return id;
      auto [it, inserted] = interned.emplace(text, n + static_cast<int32_t>(extra_symbols.size()));
      if (inserted) extra_symbols.push_back(text);
      return it->second;
    };
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      unicode::append_utf8(ch, unicode::byte_to_codepoint(static_cast<uint8_t>(b)));
      byte_symbol[b] = symbol_of(ch);
    }
    merges.reserve(merge_pairs.size());
    for (size_t r = 0; r < merge_pairs.size(); ++r) {
      const auto& [a, b] = merge_pairs[r];
      if (a.empty() || b.empty()) continue;  // never matches a symbol
      const int32_t left = symbol_of(a);
      const int32_t right = symbol_of(b);
      const int32_t result = symbol_of(a + b);
      merges.add(left, right, static_cast<int32_t>(r), result);
    }
    if (ignore_merges) {
      // Index every token whose text is entirely in the byte alphabet by its raw bytes.
      std::vector<std::pair<uint32_t, uint32_t>> spans(n, {0, 0});
      std::vector<bool> ok(n, false);
      for (int32_t id = 0; id < n; ++id) {
        const std::string& text = vocab.text(id);
        std::string raw;
        bool all = true;
        for (size_t i = 0; i < text.size() && all;) {
          size_t len;
          uint32_t cp = unicode::decode_lenient(text, i, &len);
          int b = (len == unicode::utf8_length(cp)) ? unicode::codepoint_to_byte(cp) : -1;
          if (b < 0) all = false;
          raw += static_cast<char>(b);
          i += len;
        }
        if (!all) continue;
        spans[id] = {static_cast<uint32_t>(raw_texts.size()), static_cast<uint32_t>(raw.size())};
        ok[id] = true;
        raw_texts += raw;
      }
      raw_index.reserve(n);
      for (int32_t id = 0; id < n; ++id) {
        if (ok[id])
          raw_index.emplace(std::string_view(raw_texts).substr(spans[id].first, spans[id].second),
                            id);
      }
    }
  } else {
    for (int b = 0; b < 256; ++b) byte_token[b] = spm_byte_token(vocab, static_cast<uint8_t>(b));
    if (engine == Engine::kSpmRanks) {
      merges.reserve(merge_pairs.size());
      for (size_t r = 0; r < merge_pairs.size(); ++r) {
        const auto& [a, b] = merge_pairs[r];
        const int32_t left = vocab.find(a);
        const int32_t right = vocab.find(b);
        const int32_t result = vocab.find(a + b);
        if (left < 0 || right < 0 || result < 0) {
          return invalid_argument("tokenizer: merge '" + a + " " + b +
                                  "' uses a string that is not a token");
        }
        merges.add(left, right, static_cast<int32_t>(r), result);
      }
    }
  }
  merge_pairs.clear();
  merge_pairs.shrink_to_fit();

  // Pieces (llama.cpp's token_to_piece cache, special = true).
  pieces.clear();
  piece_offsets.assign(1, 0);
  piece_offsets.reserve(n + 1);
  for (int32_t id = 0; id < n; ++id) {
    const uint16_t attr = vocab.attr(id);
    const std::string& text = vocab.text(id);
    if (attr & (kAttrControl | kAttrUnknown | kAttrUserDefined)) {
      pieces += text;
    } else if (attr & kAttrNormal) {
      if (engine == Engine::kByteLevelBpe) {
        pieces += decode_byte_level_text(text);
      } else {
        pieces += replace_all(text, kSpaceMarker, " ");
      }
    } else if (attr & kAttrByte) {
      pieces += static_cast<char>(byte_token_value(text));
    }
    piece_offsets.push_back(static_cast<uint32_t>(pieces.size()));
  }
  return Status::ok();
}

Result<Tokenizer> make_tokenizer(std::shared_ptr<TokenizerImpl> impl) {
  static std::atomic<uint64_t> next_instance_id{1};
  SGL_RETURN_IF_ERROR(impl->finalize());
  impl->instance_id = next_instance_id.fetch_add(1);
  return Tokenizer(std::shared_ptr<const TokenizerImpl>(std::move(impl)));
}

// ------------------------------------------------------------------------------------------------
// Tokenizer

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_impl(*impl_, text, add_special, parse_special, out);
  return out;
}

void Tokenizer::encode(std::string_view text, bool add_special, bool parse_special,
                       std::vector<int32_t>& out) const {
  encode_impl(*impl_, text, add_special, parse_special, out);
}

Result<std::string> Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const TokenizerImpl& t = *impl_;
  std::string out;
  bool remove_space = t.add_space_prefix;
  for (int32_t id : ids) {
    if (!is_valid(id)) {
      return out_of_range("decode: token id " + std::to_string(id) + " is not in [0, " +
                          std::to_string(vocab_size()) + ")");
    }
    std::string_view p = t.piece(id, !skip_special);
    if (remove_space && !p.empty() && p[0] == ' ') p.remove_prefix(1);
    if (!t.strip_from_output || !p.empty()) remove_space = false;
    out.append(p);
  }
  if (t.clean_spaces) clean_up_tokenization_spaces(out);
  return out;
}

std::string_view Tokenizer::token_to_piece(int32_t id, bool special) const {
  SGL_CHECK(is_valid(id), "token_to_piece: invalid token id");
  return impl_->piece(id, special);
}

const std::string& Tokenizer::token_text(int32_t id) const {
  SGL_CHECK(is_valid(id), "token_text: invalid token id");
  return impl_->vocab.text(id);
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  int32_t id = impl_->vocab.find(text);
  if (id < 0) return std::nullopt;
  return id;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab.size(); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::eot_id() const { return impl_->eot; }
int32_t Tokenizer::unk_id() const { return impl_->unk; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }

TokenType Tokenizer::token_type(int32_t id) const {
  SGL_CHECK(is_valid(id), "token_type: invalid token id");
  return static_cast<TokenType>(impl_->vocab.type(id));
}

uint16_t Tokenizer::token_attr(int32_t id) const {
  SGL_CHECK(is_valid(id), "token_attr: invalid token id");
  return impl_->vocab.attr(id);
}

const std::vector<int32_t>& Tokenizer::eog_ids() const { return impl_->eog; }
bool Tokenizer::is_eog(int32_t id) const { return impl_->is_eog(id); }
const std::optional<std::string>& Tokenizer::chat_template() const { return impl_->chat_template; }
std::string_view Tokenizer::kind() const { return impl_->kind; }
std::string_view Tokenizer::pre_tokenizer() const { return impl_->pre_name; }

// ------------------------------------------------------------------------------------------------
// Detokenization

void clean_up_tokenization_spaces(std::string& text) {
  // Three passes over the bytes, each keeping the first byte, exactly as llama.cpp does.
  size_t n = text.size();
  if (n == 0) return;
  // 1: " ?", " !", " .", " ," lose the space.
  size_t total = 1;
  for (size_t i = 1; i < n; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    text[total++] = x;
  }
  n = total;
  // 2: " ' " becomes "'".
  total = 1;
  for (size_t i = 1; i < n; ++i) {
    const char x = text[i];
    if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
      --total;
      text[++i] = '\0';
    }
    text[total++] = x;
  }
  n = total;
  // 3: " 's", " 'm", " 're", " 've" lose the space.
  total = 1;
  for (size_t i = 1; i < n; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
      const char x1 = text[i + 1];
      if (x1 == 's' || x1 == 'm') {
        --total;
      } else if (x1 != 't' && x1 != 'd' && i + 2 < n) {
        const char x2 = text[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
      }
    }
    text[total++] = x;
  }
  text.resize(total);
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special)
    : impl_(tokenizer.impl_), skip_special_(skip_special) {}

Status IncrementalDecoder::push(int32_t id, std::string& out) {
  const TokenizerImpl& t = *impl_;
  if (id < 0 || id >= t.vocab.size()) {
    return out_of_range("detokenize: token id " + std::to_string(id) + " is not in [0, " +
                        std::to_string(t.vocab.size()) + ")");
  }
  std::string_view p = t.piece(id, !skip_special_);
  if (first_ && t.add_space_prefix && !p.empty() && p[0] == ' ') p.remove_prefix(1);
  if (!t.strip_from_output || !p.empty()) first_ = false;
  if (p.empty()) return Status::ok();
  pending_.append(p);
  size_t cut;
  if (t.clean_spaces) {
    // Cleaning is local: it only removes spaces next to an apostrophe or one of ?!., and looks
    // at most three bytes ahead. Cutting where pending_[q-2..q] holds no space or apostrophe (and
    // pending_[q] starts a character) cleans each side independently with the same result.
    // Positions up to checked_ are known not to be cuts, so a long run is scanned once.
    auto plain = [](char c) { return c != ' ' && c != '\''; };
    cut = 0;
    for (size_t q = pending_.size() - 1; q >= 2 && q > checked_; --q) {
      if (plain(pending_[q - 2]) && plain(pending_[q - 1]) && plain(pending_[q]) &&
          (static_cast<unsigned char>(pending_[q]) & 0xC0) != 0x80) {
        cut = q;
        break;
      }
    }
    if (cut > 0) {
      scratch_.assign(pending_, 0, cut);
      clean_up_tokenization_spaces(scratch_);
      emit(scratch_, out);
      pending_.erase(0, cut);
    }
    // Every position after the cut was checked (the scan runs from the end).
    checked_ = pending_.empty() ? 0 : pending_.size() - 1;
    return Status::ok();
  }
  cut = utf8::complete_prefix_length(pending_);
  if (cut == 0) return Status::ok();
  emit(std::string_view(pending_).substr(0, cut), out);
  pending_.erase(0, cut);
  return Status::ok();
}

void IncrementalDecoder::emit(std::string_view bytes, std::string& out) {
  if (utf8::is_valid(bytes)) {
    out.append(bytes);
  } else {
    out += utf8::sanitize(bytes);
  }
}

void IncrementalDecoder::finish(std::string& out) {
  if (impl_->clean_spaces) clean_up_tokenization_spaces(pending_);
  emit(pending_, out);
  pending_.clear();
  checked_ = 0;
  first_ = true;
}

}  // namespace sgl::tokenizer
