// Python str semantics on UTF-8 strings: code point lengths and slicing, whitespace and case
// classes, and the str methods chat templates call (strip, split, replace, title, ...).
//
// Strings passed in are well-formed UTF-8 (the interpreter sanitizes everything it lets in).
// Whitespace and line breaks follow Python exactly. Case mapping and the character classes
// (isalpha, isdigit, ...) are exact for ASCII and cover Latin, Greek, Cyrillic and Armenian
// letters plus common digit and letter blocks elsewhere; other scripts are treated as uncased
// letters. Full case mappings other than "ß".upper() == "SS" are not applied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sgl::tokenizer::jinja::py {

// Decodes well-formed UTF-8 into code points.
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append_cp(std::string& out, char32_t c);
bool is_ascii(std::string_view s);
// Number of code points.
size_t length(std::string_view s);
// Byte offset of code point index `cp_index` (clamped to s.size()).
size_t byte_offset(std::string_view s, size_t cp_index);

// Character classes (str.isspace() etc. of a one-character string).
bool is_space(char32_t c);
bool is_linebreak(char32_t c);  // what str.splitlines() splits on
bool is_upper(char32_t c);
bool is_lower(char32_t c);
bool is_cased(char32_t c);
bool is_alpha(char32_t c);
bool is_decimal(char32_t c);
// The value 0..9 of a decimal digit (any script), or -1.
int decimal_value(char32_t c);
bool is_digit(char32_t c);
bool is_numeric(char32_t c);
bool is_alnum(char32_t c);
bool is_word(char32_t c);       // regex \w
bool is_printable(char32_t c);  // str.isprintable(), used by repr()
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string swapcase(std::string_view s);
std::string capitalize(std::string_view s);  // str.capitalize()
std::string title(std::string_view s);       // str.title()

// str.isX() on the whole string (false for the empty string, like Python).
bool all_of(std::string_view s, bool (*pred)(char32_t));
bool is_upper_str(std::string_view s);
bool is_lower_str(std::string_view s);
bool is_title_str(std::string_view s);

// str.strip([chars]) / lstrip / rstrip. Without `chars`, strips Python whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right);

// str.split(sep=None, maxsplit=-1). REQUIRES: sep, if given, is non-empty.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);

// str.replace(old, new, count); count < 0 replaces all. An empty `old` inserts `repl` between
// every code point, as Python does.
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);

// Normalizes Python slice bounds [start:stop] of a sequence of length n (negative indices count
// from the end; nullopt means the end). Returns (start, stop) clamped to [0, n].
std::pair<int64_t, int64_t> clamp_range(std::optional<int64_t> start, std::optional<int64_t> stop,
                                        int64_t n);

// str.find / str.rfind / str.count on code point positions; start/stop as in Python.
int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
             std::optional<int64_t> stop, bool reverse);
int64_t count(std::string_view s, std::string_view sub, std::optional<int64_t> start,
              std::optional<int64_t> stop);

// str.expandtabs(tabsize).
std::string expandtabs(std::string_view s, int64_t tabsize);

// str.center / ljust / rjust / zfill with a one-code-point fill.
std::string center(std::string_view s, int64_t width, char32_t fill);
std::string ljust(std::string_view s, int64_t width, char32_t fill);
std::string rjust(std::string_view s, int64_t width, char32_t fill);
std::string zfill(std::string_view s, int64_t width);

// repr(str): quotes and escapes like Python.
void append_repr(std::string& out, std::string_view s);

}  // namespace sgl::tokenizer::jinja::py
