// UTF-8 helpers: strict validation (no overlongs, no surrogates, max U+10FFFF), decoding,
// encoding, and finding where a byte string stops being a complete sequence (for streaming).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sgl::utf8 {

// Returns true iff `s` is entirely well-formed UTF-8.
bool is_valid(std::string_view s);

// Decodes the code point starting at s[pos]. On success returns true, sets *cp and *len (1..4).
// On an ill-formed or truncated sequence returns false and sets *len to the number of bytes to
// skip (at least 1) as one maximal ill-formed subpart (Unicode's "substitution of maximal
// subparts" rule).
bool decode(std::string_view s, size_t pos, uint32_t* cp, size_t* len);

// Appends the UTF-8 encoding of `cp` (must be <= 0x10FFFF and not a surrogate).
void append(std::string& out, uint32_t cp);
std::string encode(uint32_t cp);

// Length of the longest prefix of `s` that does not end inside an incomplete (but so far valid)
// multi-byte sequence. Bytes that can never become valid are counted as complete (they will be
// replaced, not waited for). Used by the streaming detokenizer.
size_t complete_prefix_length(std::string_view s);

// Replaces every ill-formed subpart with U+FFFD.
std::string sanitize(std::string_view s);

}  // namespace sgl::utf8
