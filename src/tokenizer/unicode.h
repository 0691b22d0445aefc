// Unicode support for the tokenizers: code point classes (the \p{L}, \p{N}, \s ... of the
// pre-tokenizer patterns), the lenient UTF-8 decoding llama.cpp applies before pre-tokenizing, and
// GPT-2's byte <-> printable-character map used by byte-level BPE.
//
// The classes are generated from Python's unicodedata by scripts/gen_unicode_tables.py into
// unicode_tables.cpp and follow llama.cpp's definitions (see that script). Lookups are two table
// loads; the tables are built once on first use and are immutable afterwards (thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sgl::tokenizer::unicode {

// Flag bits of a code point. The category bits are mutually exclusive; kWhitespace may be
// combined with kSeparator or kControl. An unassigned code point has no category bit.
enum CodepointFlag : uint8_t {
  kLetter = 0x01,       // \p{L}
  kNumber = 0x02,       // \p{N}
  kWhitespace = 0x04,   // \s (Unicode White_Space)
  kPunctuation = 0x08,  // \p{P}
  kSymbol = 0x10,       // \p{S}
  kMark = 0x20,         // \p{M}
  kControl = 0x40,      // \p{C} except Cn
  kSeparator = 0x80,    // \p{Z}
};

struct CodepointRange {
  uint32_t start;
  uint8_t flags;
};

// Generated data (unicode_tables.cpp): sorted by start, the first starts at 0.
extern const CodepointRange kCodepointRanges[];
extern const size_t kNumCodepointRanges;
extern const char kUnicodeVersion[];

// Flags of `cp`; 0 for code points past U+10FFFF.
uint8_t flags(uint32_t cp);

// The replacement character U+FFFD.
inline constexpr uint32_t kReplacement = 0xFFFD;

// Decodes one code point at s[pos] exactly as llama.cpp's unicode_cpt_from_utf8 does: the lead
// byte's high bits give the length and the continuation bytes must be 10xxxxxx, but overlong
// forms and surrogates are accepted (so "\xC0\xAF" decodes to '/'). Differences from llama.cpp:
// a decoded value past U+10FFFF (lead bytes F4 90.. and F5..F7), on which llama.cpp throws and
// aborts the process, is treated here as an invalid byte. An invalid byte yields U+FFFD and
// consumes one byte. REQUIRES: pos < s.size(). Sets *len to the bytes consumed (>= 1).
uint32_t decode_lenient(std::string_view s, size_t pos, size_t* len);

// Appends the UTF-8 encoding of `cp` without validity checks (surrogates are encoded as three
// bytes, as llama.cpp does). REQUIRES: cp <= 0x10FFFF.
void append_utf8(std::string& out, uint32_t cp);
// Number of bytes append_utf8 writes for `cp`.
inline size_t utf8_length(uint32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

// Length of the UTF-8 sequence announced by lead byte `b`, from its high nibble only
// (continuation bytes count 1): llama.cpp's unicode_len_utf8, used to split text into symbols.
inline size_t lead_byte_length(unsigned char b) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[b >> 4];
}

// GPT-2's byte-level alphabet: byte b is represented by the code point byte_to_codepoint(b)
// (printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100..U+0143).
uint32_t byte_to_codepoint(uint8_t b);
// The inverse: the byte for code point `cp`, or -1 if `cp` is not in the alphabet.
int codepoint_to_byte(uint32_t cp);

}  // namespace sgl::tokenizer::unicode
