// GgufWriter: builds GGUF files (version 3 by default, 2 on request) in memory or on disk. Used to
// write synthetic models (random weights with a real model's shape) and test fixtures.
//
// The builder collects metadata and tensors in insertion order. Calls chain and never fail on
// the spot: the first problem (duplicate key or tensor name, a shape the type cannot hold, a byte
// count that does not match the shape, ...) is remembered and returned by status(), to_bytes()
// and write_file(). Tensor data is laid out back to back in insertion order, each tensor padded
// to the alignment, exactly as ggml and the gguf Python package do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/ggml_type.h"
#include "model/gguf.h"
#include "support/status.h"

namespace sgl::model {

class GgufWriter {
 public:
  GgufWriter() = default;

  // File format version: 2 or 3 (the two differ only in what they promise about endianness).
  GgufWriter& set_version(uint32_t version);
  // Alignment of the data section and of every tensor (a power of two). Also records
  // general.alignment (u32) in the metadata, at the position of the first call.
  GgufWriter& set_alignment(uint32_t alignment);

  // Adds one key. general.alignment must be a u32 power of two and acts like set_alignment().
  GgufWriter& add_kv(std::string key, GgufValue value);
  GgufWriter& add_u8(std::string key, uint8_t v) {
    return add_kv(std::move(key), GgufValue::make_u8(v));
  }
  GgufWriter& add_i8(std::string key, int8_t v) {
    return add_kv(std::move(key), GgufValue::make_i8(v));
  }
  GgufWriter& add_u16(std::string key, uint16_t v) {
    return add_kv(std::move(key), GgufValue::make_u16(v));
  }
  GgufWriter& add_i16(std::string key, int16_t v) {
    return add_kv(std::move(key), GgufValue::make_i16(v));
  }
  GgufWriter& add_u32(std::string key, uint32_t v) {
    return add_kv(std::move(key), GgufValue::make_u32(v));
  }
  GgufWriter& add_i32(std::string key, int32_t v) {
    return add_kv(std::move(key), GgufValue::make_i32(v));
  }
  GgufWriter& add_u64(std::string key, uint64_t v) {
    return add_kv(std::move(key), GgufValue::make_u64(v));
  }
  GgufWriter& add_i64(std::string key, int64_t v) {
    return add_kv(std::move(key), GgufValue::make_i64(v));
  }
  GgufWriter& add_f32(std::string key, float v) {
    return add_kv(std::move(key), GgufValue::make_f32(v));
  }
  GgufWriter& add_f64(std::string key, double v) {
    return add_kv(std::move(key), GgufValue::make_f64(v));
  }
  GgufWriter& add_bool(std::string key, bool v) {
    return add_kv(std::move(key), GgufValue::make_bool(v));
  }
  GgufWriter& add_string(std::string key, std::string v) {
    return add_kv(std::move(key), GgufValue::make_string(std::move(v)));
  }
  GgufWriter& add_string_array(std::string key, const std::vector<std::string>& v) {
    return add_kv(std::move(key), GgufValue::make_string_array(v));
  }
  GgufWriter& add_i32_array(std::string key, const std::vector<int32_t>& v) {
    return add_kv(std::move(key), GgufValue::make_i32_array(v));
  }
  GgufWriter& add_u32_array(std::string key, const std::vector<uint32_t>& v) {
    return add_kv(std::move(key), GgufValue::make_u32_array(v));
  }
  GgufWriter& add_f32_array(std::string key, const std::vector<float>& v) {
    return add_kv(std::move(key), GgufValue::make_f32_array(v));
  }

  // Adds a tensor. `shape` is in ggml order (shape[0] contiguous, 1..4 dims, each > 0, shape[0]
  // a multiple of the type's block size) and `data` must hold exactly the tensor's byte size.
  GgufWriter& add_tensor(std::string name, std::vector<uint64_t> shape, GgmlType type,
                         std::vector<uint8_t> data);
  GgufWriter& add_tensor(std::string name, std::vector<uint64_t> shape, GgmlType type,
                         const void* data, size_t n_bytes);
  // Convenience for f32 tensors.
  GgufWriter& add_f32_tensor(std::string name, std::vector<uint64_t> shape,
                             const std::vector<float>& values);

  // The first error so far, or ok.
  const Status& status() const { return status_; }
  size_t tensor_count() const { return tensors_.size(); }
  size_t kv_count() const { return kvs_.size(); }

  // The whole file. Fails with the first recorded error.
  Result<std::vector<uint8_t>> to_bytes() const;
  // Writes the file (streaming the tensor data; nothing is built in memory). Errors name the path.
  Status write_file(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> shape;
    GgmlType type;
    std::vector<uint8_t> data;
    uint64_t offset;  // within the data section
  };
  void fail(Status s);
  bool has_key(const std::string& key) const;
  // Everything before the data section, including the padding after the tensor infos.
  std::vector<uint8_t> header_bytes() const;

  uint32_t version_ = 3;
  uint32_t alignment_ = GgufFile::kDefaultAlignment;
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::vector<Tensor> tensors_;
  uint64_t data_size_ = 0;  // running end of the data section, padded
  Status status_;
};

}  // namespace sgl::model
