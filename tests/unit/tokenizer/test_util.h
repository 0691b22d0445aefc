// Test-only helpers for the tokenizer tests: an in-memory GGUF writer for tokenizer metadata,
// printable escaping, and the paths of the test data.
#pragma once

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

namespace sgl::tokenizer::testing {

inline std::string escaped(const std::string& s) {
  std::ostringstream o;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      o << c;
    } else {
      o << "\\x" << std::hex << static_cast<int>(c) << std::dec;
    }
  }
  return o.str();
}

inline std::string default_model_path() {
  return std::string(SGL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline std::string data_path(const std::string& rel) {
  return std::string(SGL_TEST_DATA_DIR) + "/tokenizer/" + rel;
}

// Writes GGUF v3 metadata (no tensors) key by key; setting a key again replaces its value.
class GgufBuilder {
 public:
  GgufBuilder& str(const std::string& key, const std::string& v) {
    begin(key, 8);
    put_str(v);
    return *this;
  }
  GgufBuilder& u32(const std::string& key, uint32_t v) {
    begin(key, 4);
    put(v);
    return *this;
  }
  GgufBuilder& i32(const std::string& key, int32_t v) {
    begin(key, 5);
    put(v);
    return *this;
  }
  GgufBuilder& boolean(const std::string& key, bool v) {
    begin(key, 7);
    kv_ptr_->push_back(v ? 1 : 0);
    return *this;
  }
  GgufBuilder& strings(const std::string& key, const std::vector<std::string>& v) {
    begin(key, 9);
    put(uint32_t{8});
    put(static_cast<uint64_t>(v.size()));
    for (const auto& s : v) put_str(s);
    return *this;
  }
  GgufBuilder& i32s(const std::string& key, const std::vector<int32_t>& v) {
    begin(key, 9);
    put(uint32_t{5});
    put(static_cast<uint64_t>(v.size()));
    for (int32_t x : v) put(x);
    return *this;
  }
  GgufBuilder& u32s(const std::string& key, const std::vector<uint32_t>& v) {
    begin(key, 9);
    put(uint32_t{4});
    put(static_cast<uint64_t>(v.size()));
    for (uint32_t x : v) put(x);
    return *this;
  }
  GgufBuilder& f32s(const std::string& key, const std::vector<float>& v) {
    begin(key, 9);
    put(uint32_t{6});
    put(static_cast<uint64_t>(v.size()));
    for (float x : v) put(x);
    return *this;
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    auto add = [&out](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      out.insert(out.end(), b, b + n);
    };
    uint32_t version = 3;
    uint64_t n_tensors = 0;
    add(&version, 4);
    add(&n_tensors, 8);
    const uint64_t n_kv = entries_.size();
    add(&n_kv, 8);
    for (const auto& [key, bytes] : entries_) out.insert(out.end(), bytes.begin(), bytes.end());
    return out;
  }

  Result<model::GgufFile> file() const { return model::GgufFile::from_buffer(bytes()); }

 private:
  template <typename T>
  void put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    kv_ptr_->insert(kv_ptr_->end(), b, b + sizeof(T));
  }
  void put_str(const std::string& s) {
    put(static_cast<uint64_t>(s.size()));
    kv_ptr_->insert(kv_ptr_->end(), s.begin(), s.end());
  }
  // Starts the entry for `key` (dropping an earlier one); values are appended to kv_.
  void begin(const std::string& key, uint32_t type) {
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].first == key) entries_.erase(entries_.begin() + static_cast<long>(i));
    }
    entries_.emplace_back(key, std::vector<uint8_t>());
    kv_ptr_ = &entries_.back().second;
    put_str(key);
    put(type);
  }

  std::vector<std::pair<std::string, std::vector<uint8_t>>> entries_;
  std::vector<uint8_t>* kv_ptr_ = nullptr;
};

// The 256 single-byte tokens of GPT-2's byte alphabet, in byte order.
inline std::vector<std::string> byte_alphabet_tokens() {
  std::vector<std::string> out;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    uint32_t cp = direct ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace sgl::tokenizer::testing
