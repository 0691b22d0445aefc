#include "support/utf8.h"

#include "support/check.h"

namespace sgl::utf8 {

bool decode(std::string_view s, size_t pos, uint32_t* cp, size_t* len) {
  SGL_CHECK(pos < s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
  size_t avail = s.size() - pos;
  unsigned char b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    *len = 1;
    return true;
  }
  int need;
  uint32_t c;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    c = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    c = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    c = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *len = 1;
    return false;
  }
  for (int i = 1; i <= need; ++i) {
    if (static_cast<size_t>(i) >= avail) {
      *len = i;
      return false;
    }
    unsigned char b = p[i];
    unsigned char l = (i == 1) ? lo : 0x80, h = (i == 1) ? hi : 0xBF;
    if (b < l || b > h) {
      *len = i;
      return false;
    }
    c = (c << 6) | (b & 0x3F);
  }
  *cp = c;
  *len = need + 1;
  return true;
}

bool is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    uint32_t cp;
    size_t len;
    if (!decode(s, i, &cp, &len)) return false;
    i += len;
  }
  return true;
}

void append(std::string& out, uint32_t cp) {
  SGL_CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF), "invalid code point");
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode(uint32_t cp) {
  std::string s;
  append(s, cp);
  return s;
}

size_t complete_prefix_length(std::string_view s) {
  // Only the last (up to 3) bytes can start an incomplete sequence.
  size_t n = s.size();
  size_t start = n >= 3 ? n - 3 : 0;
  for (size_t i = n; i-- > start;) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) return n;               // ASCII: everything is complete
    if ((b & 0xC0) == 0x80) continue;     // continuation byte: look further back
    // Lead byte at i: is s[i..n) a valid but truncated sequence?
    size_t want = (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3
                : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
    if (want == 0 || i + want <= n) return n;  // invalid lead, or a full-length sequence
    uint32_t cp;
    size_t len;
    decode(s, i, &cp, &len);
    return (i + len >= n) ? i : n;  // failed only because input ran out: wait for more
  }
  return n;
}

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    size_t len;
    if (decode(s, i, &cp, &len)) {
      out.append(s.data() + i, len);
    } else {
      out += "\xEF\xBF\xBD";
    }
    i += len;
  }
  return out;
}

}  // namespace sgl::utf8
