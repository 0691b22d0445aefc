#include "tokenizer/unicode.h"

#include <array>
#include <unordered_map>
#include <vector>

#include "support/check.h"

namespace sgl::tokenizer::unicode {
namespace {

constexpr uint32_t kMaxCodepoint = 0x110000;
constexpr uint32_t kBlockBits = 8;
constexpr uint32_t kBlockSize = 1u << kBlockBits;
constexpr uint32_t kNumBlocks = kMaxCodepoint >> kBlockBits;

// Two-level lookup: block index per 256 code points, then the (deduplicated) blocks' flags.
struct FlagTables {
  std::array<uint16_t, kNumBlocks> block_of{};
  std::vector<uint8_t> blocks;  // [n_unique_blocks * kBlockSize]

  FlagTables() {
    std::vector<uint8_t> all(kMaxCodepoint);
    SGL_CHECK(kNumCodepointRanges > 0 && kCodepointRanges[0].start == 0, "bad unicode tables");
    for (size_t i = 0; i < kNumCodepointRanges; ++i) {
      uint32_t end = i + 1 < kNumCodepointRanges ? kCodepointRanges[i + 1].start : kMaxCodepoint;
      SGL_CHECK(kCodepointRanges[i].start < end && end <= kMaxCodepoint, "unsorted unicode tables");
      for (uint32_t cp = kCodepointRanges[i].start; cp < end; ++cp)
        all[cp] = kCodepointRanges[i].flags;
    }
    std::unordered_map<std::string, uint16_t> seen;
    for (uint32_t b = 0; b < kNumBlocks; ++b) {
      std::string block(reinterpret_cast<const char*>(all.data()) + b * kBlockSize, kBlockSize);
      auto [it, inserted] = seen.emplace(std::move(block), static_cast<uint16_t>(seen.size()));
      if (inserted) blocks.insert(blocks.end(), it->first.begin(), it->first.end());
      block_of[b] = it->second;
    }
  }
};

const FlagTables& tables() {
  static const FlagTables t;
  return t;
}

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // code points 0..323 cover the whole alphabet

  ByteMap() {
    to_byte.fill(-1);
    std::array<bool, 256> direct{};
    for (int b = 0x21; b <= 0x7E; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) to_cp[b] = direct[b] ? static_cast<uint32_t>(b) : next++;
    for (int b = 0; b < 256; ++b) to_byte[to_cp[b]] = static_cast<int16_t>(b);
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

uint8_t flags(uint32_t cp) {
  if (cp >= kMaxCodepoint) return 0;
  const FlagTables& t = tables();
  return t.blocks[(static_cast<size_t>(t.block_of[cp >> kBlockBits]) << kBlockBits) |
                  (cp & (kBlockSize - 1))];
}

uint32_t decode_lenient(std::string_view s, size_t pos, size_t* len) {
  SGL_CHECK(pos < s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
  const size_t avail = s.size() - pos;
  const unsigned char b0 = p[0];
  *len = 1;
  if (b0 < 0x80) return b0;
  if ((b0 & 0x40) == 0) return kReplacement;  // stray continuation byte
  size_t need;
  uint32_t cp;
  if ((b0 & 0x20) == 0) {
    need = 1;
    cp = b0 & 0x1F;
  } else if ((b0 & 0x10) == 0) {
    need = 2;
    cp = b0 & 0x0F;
  } else if ((b0 & 0x08) == 0) {
    need = 3;
    cp = b0 & 0x07;
  } else {
    return kReplacement;  // F8..FF
  }
  if (need >= avail) return kReplacement;  // truncated: llama.cpp rejects the lead byte only
  for (size_t i = 1; i <= need; ++i) {
    if ((p[i] & 0xC0) != 0x80) return kReplacement;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp >= kMaxCodepoint) return kReplacement;
  *len = need + 1;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  SGL_DCHECK(cp < kMaxCodepoint);
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

uint32_t byte_to_codepoint(uint8_t b) { return byte_map().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) {
  const ByteMap& m = byte_map();
  return cp < m.to_byte.size() ? m.to_byte[cp] : -1;
}

}  // namespace sgl::tokenizer::unicode
