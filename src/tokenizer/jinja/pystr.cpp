#include "tokenizer/jinja/pystr.h"

#include <algorithm>

#include "support/utf8.h"

namespace sgl::tokenizer::jinja::py {
namespace {

// Case pairs laid out as alternating upper/lower code points over [lo, hi]; `upper_even` says
// whether the even code points are the uppercase ones.
struct AlternatingRange {
  char32_t lo, hi;
  bool upper_even;
};
constexpr AlternatingRange kAlternating[] = {
    {0x0100, 0x012F, true}, {0x0132, 0x0137, true},  {0x0139, 0x0148, false},
    {0x014A, 0x0177, true}, {0x0179, 0x017E, false}, {0x01CD, 0x01DC, false},
    {0x01DE, 0x01EF, true}, {0x01F8, 0x021F, true},  {0x0222, 0x0233, true},
    {0x0460, 0x0481, true}, {0x048A, 0x04BF, true},  {0x04C1, 0x04CE, false},
    {0x04D0, 0x052F, true}, {0x1E00, 0x1E95, true},  {0x1EA0, 0x1EFF, true},
};

// Ranges where lowercase = uppercase + delta.
struct OffsetRange {
  char32_t upper_lo, upper_hi;
  int32_t delta;
};
constexpr OffsetRange kOffsets[] = {
    {0x0041, 0x005A, 32}, {0x00C0, 0x00D6, 32}, {0x00D8, 0x00DE, 32}, {0x0391, 0x03A1, 32},
    {0x03A3, 0x03AB, 32}, {0x0388, 0x038A, 37}, {0x038E, 0x038F, 63}, {0x0410, 0x042F, 32},
    {0x0400, 0x040F, 80}, {0x0531, 0x0556, 48}, {0xFF21, 0xFF3A, 32},
};

// Irregular single pairs (upper, lower).
constexpr std::pair<char32_t, char32_t> kPairs[] = {
    {0x0178, 0x00FF}, {0x0386, 0x03AC}, {0x038C, 0x03CC}, {0x04C0, 0x04CF}, {0x1E9E, 0x00DF},
};

// Latin digraphs with upper, title and lower forms (DŽ Dž dž, LJ Lj lj, NJ Nj nj, DZ Dz dz).
bool digraph(char32_t c, char32_t* upper, char32_t* lower) {
  static constexpr char32_t kStarts[] = {0x1C4, 0x1C7, 0x1CA, 0x1F1};
  for (char32_t s : kStarts) {
    if (c >= s && c <= s + 2) {
      *upper = s;
      *lower = s + 2;
      return true;
    }
  }
  return false;
}

char32_t lower_simple(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  char32_t du, dl;
  if (digraph(c, &du, &dl)) return dl;
  for (const auto& r : kOffsets) {
    if (c >= r.upper_lo && c <= r.upper_hi) return c + r.delta;
  }
  for (const auto& r : kAlternating) {
    if (c >= r.lo && c <= r.hi) {
      bool is_up = ((c % 2 == 0) == r.upper_even);
      return is_up ? c + 1 : c;
    }
  }
  for (const auto& p : kPairs) {
    if (c == p.first) return p.second;
  }
  if (c == 0x0130) return 'i';
  return c;
}

char32_t upper_simple(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  char32_t du, dl;
  if (digraph(c, &du, &dl)) return du;
  for (const auto& r : kOffsets) {
    char32_t lo = r.upper_lo + r.delta, hi = r.upper_hi + r.delta;
    if (c >= lo && c <= hi) return c - r.delta;
  }
  for (const auto& r : kAlternating) {
    if (c >= r.lo && c <= r.hi) {
      bool is_up = ((c % 2 == 0) == r.upper_even);
      return is_up ? c : c - 1;
    }
  }
  for (const auto& p : kPairs) {
    if (c == p.second && p.first != 0x1E9E) return p.first;
  }
  switch (c) {
    case 0x00B5:
      return 0x039C;
    case 0x0131:
      return 'I';
    case 0x017F:
      return 'S';
    case 0x03C2:
      return 0x03A3;
    default:
      return c;
  }
}

bool in_ranges(char32_t c, std::initializer_list<std::pair<char32_t, char32_t>> ranges) {
  for (const auto& r : ranges) {
    if (c >= r.first && c <= r.second) return true;
  }
  return false;
}

}  // namespace

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    size_t len;
    if (!utf8::decode(s, i, &cp, &len)) cp = 0xFFFD;
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_cp(std::string& out, char32_t c) {
  if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
  utf8::append(out, c);
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_cp(out, c);
  return out;
}

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

size_t byte_offset(std::string_view s, size_t cp_index) {
  size_t i = 0;
  while (i < s.size() && cp_index > 0) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    --cp_index;
  }
  return i;
}

bool is_space(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_linebreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

char32_t to_upper(char32_t c) { return upper_simple(c); }
char32_t to_lower(char32_t c) { return lower_simple(c); }

bool is_upper(char32_t c) { return lower_simple(c) != c; }
bool is_lower(char32_t c) { return upper_simple(c) != c || c == 0xDF || c == 0x138 || c == 0x149; }
bool is_cased(char32_t c) { return is_upper(c) || is_lower(c); }

bool is_alpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (is_cased(c)) return true;
  return in_ranges(
      c, {{0xAA, 0xAA},     {0xBA, 0xBA},      {0xC0, 0xD6},     {0xD8, 0xF6},     {0xF8, 0x2AF},
          {0x370, 0x373},   {0x376, 0x377},    {0x37A, 0x37D},   {0x37F, 0x37F},   {0x386, 0x386},
          {0x388, 0x3FF},   {0x400, 0x481},    {0x48A, 0x52F},   {0x531, 0x556},   {0x560, 0x588},
          {0x5D0, 0x5EA},   {0x620, 0x64A},    {0x671, 0x6D3},   {0x904, 0x939},   {0xE01, 0xE30},
          {0x10A0, 0x10FF}, {0x1100, 0x11FF},  {0x1E00, 0x1FBC}, {0x3041, 0x3096}, {0x30A1, 0x30FA},
          {0x3400, 0x4DBF}, {0x4E00, 0x9FFF},  {0xAC00, 0xD7A3}, {0xF900, 0xFAFF}, {0xFF21, 0xFF3A},
          {0xFF41, 0xFF5A}, {0x20000, 0x2FA1F}});
}

int decimal_value(char32_t c) {
  if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
  static constexpr std::pair<char32_t, char32_t> kDigitRanges[] = {
      {0x660, 0x669}, {0x6F0, 0x6F9},   {0x966, 0x96F},    {0x9E6, 0x9EF},
      {0xE50, 0xE59}, {0xFF10, 0xFF19}, {0x1D7CE, 0x1D7FF}};
  for (const auto& [lo, hi] : kDigitRanges) {
    if (c >= lo && c <= hi) return static_cast<int>((c - lo) % 10);
  }
  return -1;
}

bool is_decimal(char32_t c) { return decimal_value(c) >= 0; }

bool is_digit(char32_t c) {
  if (is_decimal(c)) return true;
  return in_ranges(c, {{0xB2, 0xB3},
                       {0xB9, 0xB9},
                       {0x2070, 0x2070},
                       {0x2074, 0x2079},
                       {0x2080, 0x2089},
                       {0x2460, 0x2468},
                       {0x2474, 0x247C},
                       {0x2488, 0x2490},
                       {0x24EA, 0x24EA},
                       {0x24F5, 0x24FD},
                       {0x24FF, 0x24FF},
                       {0x2776, 0x277E},
                       {0x2780, 0x2788},
                       {0x278A, 0x2792}});
}

bool is_numeric(char32_t c) {
  if (is_digit(c)) return true;
  switch (c) {
    case 0x3007:
    case 0x4E00:
    case 0x4E8C:
    case 0x4E09:
    case 0x56DB:
    case 0x4E94:
    case 0x516D:
    case 0x4E03:
    case 0x516B:
    case 0x4E5D:
    case 0x5341:
    case 0x767E:
    case 0x5343:
    case 0x4E07:
      return true;
    default:
      return in_ranges(c, {{0xBC, 0xBE}, {0x2150, 0x2182}});
  }
}

bool is_alnum(char32_t c) { return is_alpha(c) || is_numeric(c); }
bool is_word(char32_t c) { return c == '_' || is_alnum(c); }

bool is_printable(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7F;
  if (c <= 0xA0 || c == 0xAD) return false;
  if (c >= 0xD800 && c <= 0xDFFF) return false;
  return !in_ranges(
      c, {{0x600, 0x605},     {0x61C, 0x61C},     {0x6DD, 0x6DD},     {0x70F, 0x70F},
          {0x1680, 0x1680},   {0x180E, 0x180E},   {0x2000, 0x200F},   {0x2028, 0x202F},
          {0x205F, 0x2064},   {0x2066, 0x206F},   {0x3000, 0x3000},   {0xE000, 0xF8FF},
          {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0xFFFE, 0xFFFF},   {0x110BD, 0x110BD},
          {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF}});
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out.push_back((c >= 'a' && c <= 'z') ? c - 32 : c);
    return out;
  }
  for (char32_t c : decode(s)) {
    if (c == 0xDF) {
      out += "SS";
    } else {
      append_cp(out, upper_simple(c));
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out.push_back((c >= 'A' && c <= 'Z') ? c + 32 : c);
    return out;
  }
  for (char32_t c : decode(s)) append_cp(out, lower_simple(c));
  return out;
}

std::string swapcase(std::string_view s) {
  std::string out;
  for (char32_t c : decode(s)) {
    if (is_upper(c)) {
      append_cp(out, lower_simple(c));
    } else if (c == 0xDF) {
      out += "SS";
    } else {
      append_cp(out, upper_simple(c));
    }
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::u32string cps = decode(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      if (cps[i] == 0xDF) {
        out += "Ss";
      } else {
        append_cp(out, upper_simple(cps[i]));
      }
    } else {
      append_cp(out, lower_simple(cps[i]));
    }
  }
  return out;
}

std::string title(std::string_view s) {
  std::string out;
  bool previous_is_cased = false;
  for (char32_t c : decode(s)) {
    if (previous_is_cased) {
      append_cp(out, lower_simple(c));
    } else if (c == 0xDF) {
      out += "Ss";
    } else {
      append_cp(out, upper_simple(c));
    }
    previous_is_cased = is_cased(c);
  }
  return out;
}

bool all_of(std::string_view s, bool (*pred)(char32_t)) {
  if (s.empty()) return false;
  for (char32_t c : decode(s)) {
    if (!pred(c)) return false;
  }
  return true;
}

bool is_upper_str(std::string_view s) {
  bool cased = false;
  for (char32_t c : decode(s)) {
    if (is_lower(c)) return false;
    if (is_upper(c)) cased = true;
  }
  return cased;
}

bool is_lower_str(std::string_view s) {
  bool cased = false;
  for (char32_t c : decode(s)) {
    if (is_upper(c)) return false;
    if (is_lower(c)) cased = true;
  }
  return cased;
}

bool is_title_str(std::string_view s) {
  bool cased = false, previous_is_cased = false;
  for (char32_t c : decode(s)) {
    if (is_upper(c)) {
      if (previous_is_cased) return false;
      previous_is_cased = cased = true;
    } else if (is_lower(c)) {
      if (!previous_is_cased) return false;
      previous_is_cased = cased = true;
    } else {
      previous_is_cased = false;
    }
  }
  return cased;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right) {
  std::u32string set;
  if (chars) set = decode(*chars);
  auto strippable = [&](char32_t c) {
    return chars ? set.find(c) != std::u32string::npos : is_space(c);
  };
  // Work on byte offsets: decode forward for the left edge, backward for the right edge.
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      uint32_t cp;
      size_t len;
      if (!utf8::decode(s, begin, &cp, &len)) cp = 0xFFFD;
      if (!strippable(cp)) break;
      begin += len;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      uint32_t cp;
      size_t len;
      if (!utf8::decode(s, start, &cp, &len)) cp = 0xFFFD;
      if (!strippable(cp)) break;
      end = start;
    }
  }
  return std::string(s.substr(begin, end - begin));
}

namespace {

// Splits at whitespace runs, left to right, as CPython's split_whitespace.
std::vector<std::string> split_whitespace(std::string_view s, int64_t maxsplit) {
  std::u32string cps = decode(s);
  std::vector<std::string> out;
  size_t n = cps.size(), i = 0, j;
  int64_t maxcount = maxsplit < 0 ? INT64_MAX : maxsplit;
  while (maxcount-- > 0) {
    while (i < n && is_space(cps[i])) ++i;
    if (i == n) break;
    j = i++;
    while (i < n && !is_space(cps[i])) ++i;
    out.push_back(encode(std::u32string_view(cps).substr(j, i - j)));
  }
  if (i < n) {
    while (i < n && is_space(cps[i])) ++i;
    if (i != n) out.push_back(encode(std::u32string_view(cps).substr(i)));
  }
  return out;
}

std::vector<std::string> rsplit_whitespace(std::string_view s, int64_t maxsplit) {
  std::u32string cps = decode(s);
  std::vector<std::string> out;
  int64_t i = static_cast<int64_t>(cps.size()) - 1, j;
  int64_t maxcount = maxsplit < 0 ? INT64_MAX : maxsplit;
  while (maxcount-- > 0) {
    while (i >= 0 && is_space(cps[i])) --i;
    if (i < 0) break;
    j = i--;
    while (i >= 0 && !is_space(cps[i])) --i;
    out.push_back(encode(std::u32string_view(cps).substr(i + 1, j - i)));
  }
  if (i >= 0) {
    while (i >= 0 && is_space(cps[i])) --i;
    if (i >= 0) out.push_back(encode(std::u32string_view(cps).substr(0, i + 1)));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit) {
  if (!sep) return split_whitespace(s, maxsplit);
  std::vector<std::string> out;
  int64_t maxcount = maxsplit < 0 ? INT64_MAX : maxsplit;
  size_t i = 0;
  while (maxcount-- > 0) {
    size_t pos = s.find(*sep, i);
    if (pos == std::string_view::npos) break;
    out.emplace_back(s.substr(i, pos - i));
    i = pos + sep->size();
  }
  out.emplace_back(s.substr(i));
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit) {
  if (!sep) return rsplit_whitespace(s, maxsplit);
  std::vector<std::string> out;
  int64_t maxcount = maxsplit < 0 ? INT64_MAX : maxsplit;
  size_t end = s.size();
  while (maxcount-- > 0) {
    if (end < sep->size()) break;
    size_t pos = s.substr(0, end).rfind(*sep);
    if (pos == std::string_view::npos) break;
    out.emplace_back(s.substr(pos + sep->size(), end - pos - sep->size()));
    end = pos;
  }
  out.emplace_back(s.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  std::u32string cps = decode(s);
  std::vector<std::string> out;
  size_t i = 0, n = cps.size();
  while (i < n) {
    size_t j = i;
    while (j < n && !is_linebreak(cps[j])) ++j;
    size_t eol = j;
    if (j < n) {
      if (cps[j] == '\r' && j + 1 < n && cps[j + 1] == '\n') {
        j += 2;
      } else {
        ++j;
      }
      if (keepends) eol = j;
    }
    out.push_back(encode(std::u32string_view(cps).substr(i, eol - i)));
    i = j;
  }
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl,
                    int64_t count) {
  std::string out;
  if (count < 0) count = INT64_MAX;
  if (old.empty()) {
    std::u32string cps = decode(s);
    for (size_t i = 0; i < cps.size(); ++i) {
      if (count > 0) {
        out += repl;
        --count;
      }
      append_cp(out, cps[i]);
    }
    if (count > 0) out += repl;
    return out;
  }
  size_t i = 0;
  while (count > 0) {
    size_t pos = s.find(old, i);
    if (pos == std::string_view::npos) break;
    out.append(s.substr(i, pos - i));
    out.append(repl);
    i = pos + old.size();
    --count;
  }
  out.append(s.substr(i));
  return out;
}

std::pair<int64_t, int64_t> clamp_range(std::optional<int64_t> start, std::optional<int64_t> stop,
                                        int64_t n) {
  int64_t b = start.value_or(0), e = stop.value_or(n);
  if (b < 0) b = std::max<int64_t>(0, b + n);
  if (e < 0) e = std::max<int64_t>(0, e + n);
  b = std::min(b, n);
  e = std::min(e, n);
  return {b, e};
}

namespace {

// Byte range of the code point range [start, stop) after Python index adjustment; returns false
// when start is past the end (where find() gives -1 even for an empty needle).
bool byte_window(std::string_view s, std::optional<int64_t> start, std::optional<int64_t> stop,
                 size_t* b, size_t* e, int64_t* cp_start) {
  int64_t n = static_cast<int64_t>(length(s));
  int64_t lo = start.value_or(0), hi = stop.value_or(n);
  if (lo < 0) lo = std::max<int64_t>(0, lo + n);
  if (hi < 0) hi = std::max<int64_t>(0, hi + n);
  if (hi > n) hi = n;
  if (lo > n) return false;
  if (hi < lo) hi = lo;
  *b = byte_offset(s, lo);
  *e = byte_offset(s, hi);
  *cp_start = lo;
  return true;
}

}  // namespace

int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
             std::optional<int64_t> stop, bool reverse) {
  size_t b, e;
  int64_t cp_start;
  if (!byte_window(s, start, stop, &b, &e, &cp_start)) return -1;
  std::string_view win = s.substr(b, e - b);
  if (sub.size() > win.size()) return -1;
  size_t pos = reverse ? win.rfind(sub) : win.find(sub);
  if (pos == std::string_view::npos) return -1;
  return cp_start + static_cast<int64_t>(length(win.substr(0, pos)));
}

int64_t count(std::string_view s, std::string_view sub, std::optional<int64_t> start,
              std::optional<int64_t> stop) {
  size_t b, e;
  int64_t cp_start;
  if (!byte_window(s, start, stop, &b, &e, &cp_start)) return 0;
  std::string_view win = s.substr(b, e - b);
  if (sub.empty()) return static_cast<int64_t>(length(win)) + 1;
  int64_t n = 0;
  size_t pos = 0;
  while ((pos = win.find(sub, pos)) != std::string_view::npos) {
    ++n;
    pos += sub.size();
  }
  return n;
}

namespace {
std::string repeat_cp(char32_t c, int64_t n) {
  std::string unit;
  append_cp(unit, c);
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += unit;
  return out;
}
}  // namespace

std::string expandtabs(std::string_view s, int64_t tabsize) {
  std::string out;
  int64_t column = 0;
  for (char32_t c : decode(s)) {
    if (c == '\t') {
      if (tabsize > 0) {
        int64_t n = tabsize - column % tabsize;
        out.append(static_cast<size_t>(n), ' ');
        column += n;
      }
    } else {
      append_cp(out, c);
      column = (c == '\n' || c == '\r') ? 0 : column + 1;
    }
  }
  return out;
}

std::string center(std::string_view s, int64_t width, char32_t fill) {
  int64_t n = static_cast<int64_t>(length(s));
  if (width <= n) return std::string(s);
  int64_t marg = width - n;
  int64_t left = marg / 2 + (marg & width & 1);
  return repeat_cp(fill, left) + std::string(s) + repeat_cp(fill, marg - left);
}

std::string ljust(std::string_view s, int64_t width, char32_t fill) {
  int64_t n = static_cast<int64_t>(length(s));
  if (width <= n) return std::string(s);
  return std::string(s) + repeat_cp(fill, width - n);
}

std::string rjust(std::string_view s, int64_t width, char32_t fill) {
  int64_t n = static_cast<int64_t>(length(s));
  if (width <= n) return std::string(s);
  return repeat_cp(fill, width - n) + std::string(s);
}

std::string zfill(std::string_view s, int64_t width) {
  int64_t n = static_cast<int64_t>(length(s));
  if (width <= n) return std::string(s);
  std::string zeros(static_cast<size_t>(width - n), '0');
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    return std::string(1, s[0]) + zeros + std::string(s.substr(1));
  }
  return zeros + std::string(s);
}

void append_repr(std::string& out, std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  out.push_back(quote);
  static const char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    uint32_t c;
    size_t len;
    if (!utf8::decode(s, i, &c, &len)) c = 0xFFFD;
    i += len;
    if (c == static_cast<uint32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (is_printable(c)) {
      append_cp(out, c);
    } else if (c <= 0xFF) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else if (c <= 0xFFFF) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(c >> shift) & 15]);
    } else {
      out += "\\U";
      for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(c >> shift) & 15]);
    }
  }
  out.push_back(quote);
}

}  // namespace sgl::tokenizer::jinja::py
