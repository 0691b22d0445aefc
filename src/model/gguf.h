// GGUF reader (llama.cpp's model format, versions 2 and 3), memory-mapped.
//
// A GGUF file is untrusted input. open()/from_buffer() validate the whole header before returning:
// every count, length, offset and size is checked (overflow-safe) against the bytes that are
// actually there, arrays may nest only kMaxArrayDepth deep, metadata arrays may hold at most
// kMaxMetadataElements elements in total, keys and tensor names are unique, tensor shapes and
// types are sane, and every tensor's data lies inside the file, aligned, without overlapping
// another. After a successful open, GgufTensorInfo::data can be read for n_bytes without further
// checks. Errors name the offending field, e.g.
//   "gguf: tensor 'blk.0.attn_q.weight': data [x, y) past end of file (size z)".
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv_count entries of
// (string key, u32 value type, value), tensor_count infos (string name, u32 n_dims, u64 dims[],
// u32 ggml type, u64 offset), padding to the alignment, tensor data. Strings are u64 length +
// bytes; arrays are u32 element type + u64 count + elements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/ggml_type.h"
#include "support/mapped_file.h"
#include "support/status.h"

namespace sgl::model {

enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u8", "i32", "f32", "bool", "string", "array", ...; "type#<id>" for an unknown id.
std::string gguf_value_type_name(GgufValueType type);
// True iff `id` is one of the thirteen value types above.
bool gguf_value_type_is_valid(uint32_t id);
// Encoded size of a scalar value type (1, 2, 4 or 8); 0 for kString and kArray.
size_t gguf_value_type_size(GgufValueType type);

// One metadata value: a scalar, a string, or an array of values (arrays may nest).
// Integers keep their exact value (signed ones as int64, unsigned ones as uint64); f32 values are
// held as double, which is exact.
class GgufValue {
 public:
  GgufValue() = default;  // a u8 holding 0

  static GgufValue make_u8(uint8_t v);
  static GgufValue make_i8(int8_t v);
  static GgufValue make_u16(uint16_t v);
  static GgufValue make_i16(int16_t v);
  static GgufValue make_u32(uint32_t v);
  static GgufValue make_i32(int32_t v);
  static GgufValue make_u64(uint64_t v);
  static GgufValue make_i64(int64_t v);
  static GgufValue make_f32(float v);
  static GgufValue make_f64(double v);
  static GgufValue make_bool(bool v);
  static GgufValue make_string(std::string v);
  // An array whose elements all have type `element_type`. Fails (kInvalidArgument) if an item's
  // type differs; for nested arrays (element_type kArray) the inner element types may differ.
  static Result<GgufValue> make_array(GgufValueType element_type, std::vector<GgufValue> items);
  static GgufValue make_string_array(const std::vector<std::string>& items);
  static GgufValue make_i32_array(const std::vector<int32_t>& items);
  static GgufValue make_u32_array(const std::vector<uint32_t>& items);
  static GgufValue make_f32_array(const std::vector<float>& items);

  GgufValueType type() const { return type_; }
  // True for the eight integer types (not bool).
  bool is_integer() const;
  // True for f32 and f64.
  bool is_float() const;
  bool is_array() const { return type_ == GgufValueType::kArray; }
  bool is_string() const { return type_ == GgufValueType::kString; }

  // Integer values that fit the target range; nullopt for other types or out of range.
  std::optional<uint64_t> as_u64() const;
  std::optional<int64_t> as_i64() const;
  // Float values, and integer values converted (possibly rounded).
  std::optional<double> as_f64() const;
  std::optional<bool> as_bool() const;
  std::optional<std::string> as_string() const;
  // No-copy view of a string value, valid while this value lives.
  std::optional<std::string_view> as_string_view() const;

  // Arrays. REQUIRES: is_array() for array_type(); at() REQUIRES i < size().
  GgufValueType array_type() const { return array_type_; }
  // Element count of an array; 0 for non-arrays.
  size_t size() const { return items_.size(); }
  const GgufValue& at(size_t i) const;
  const std::vector<GgufValue>& items() const { return items_; }

  // Whole-array conversions; nullopt if this is not an array of the right kind.
  // as_string_array: array of strings. as_f32_array: array of f32/f64 (f64 narrowed).
  // as_i32_array: array of any integer type, each element range-checked into int32.
  std::optional<std::vector<std::string>> as_string_array() const;
  std::optional<std::vector<float>> as_f32_array() const;
  std::optional<std::vector<int32_t>> as_i32_array() const;

  // Human-readable rendering; arrays longer than `max_items` are elided ("... N more").
  std::string to_string(size_t max_items = 8) const;

 private:
  friend class GgufParser;
  static GgufValue scalar(GgufValueType type, uint64_t bits);

  GgufValueType type_ = GgufValueType::kU8;
  GgufValueType array_type_ = GgufValueType::kU8;  // meaningful only for arrays
  uint64_t bits_ = 0;  // unsigned ints as is, signed ints as int64 bits, floats as double bits
  std::string str_;
  std::vector<GgufValue> items_;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // [n_dims]; shape[0] is the contiguous dim, as in the file
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;            // relative to the data section; a multiple of the alignment
  uint64_t n_elements = 0;        // product of shape
  uint64_t n_bytes = 0;           // row size of shape[0] times the other dims
  const uint8_t* data = nullptr;  // points into the mapping (or the owned buffer)
};

class GgufFile {
 public:
  // Limits that keep a hostile file from exhausting memory or stack.
  static constexpr int kMaxArrayDepth = 8;  // an array of arrays of ... at most this deep
  static constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 22;  // over all arrays
  static constexpr uint32_t kMaxDims = 4;
  static constexpr uint32_t kDefaultAlignment = 32;

  // Maps and validates the file. Errors carry the path.
  static Result<GgufFile> open(const std::string& path);
  // Validates a file held in memory; the GgufFile owns the bytes (for tests and fuzzing).
  static Result<GgufFile> from_buffer(std::vector<uint8_t> bytes);

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // Byte offset of the tensor data section within the file.
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }
  // Path given to open(), or "<buffer>".
  const std::string& path() const { return path_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  // The value of `key`, or null when absent.
  const GgufValue* find(std::string_view key) const;

  // Typed getters. kNotFound if the key is absent; kInvalidArgument naming the key and the
  // expected vs actual type if it has the wrong type; kOutOfRange if an integer does not fit.
  // Integer getters accept any integer type whose value fits; get_f32 accepts f32, f64 and
  // integers.
  Result<std::string> get_string(std::string_view key) const;
  Result<uint32_t> get_u32(std::string_view key) const;
  Result<uint64_t> get_u64(std::string_view key) const;
  Result<int64_t> get_i64(std::string_view key) const;
  Result<float> get_f32(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  // Same, but an absent key yields `def`; a present key of the wrong type is still an error.
  Result<uint32_t> get_u32_or(std::string_view key, uint32_t def) const;
  Result<uint64_t> get_u64_or(std::string_view key, uint64_t def) const;
  Result<float> get_f32_or(std::string_view key, float def) const;
  Result<bool> get_bool_or(std::string_view key, bool def) const;
  Result<std::string> get_string_or(std::string_view key, std::string def) const;

  // Tensors in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // The tensor named `name`, or null.
  const GgufTensorInfo* find_tensor(std::string_view name) const;

  // general.architecture, or "" when absent or not a string.
  std::string architecture() const;

 private:
  friend class GgufParser;
  GgufFile() = default;
  static Result<GgufFile> parse(GgufFile file);

  MappedFile mapped_;              // set by open()
  std::vector<uint8_t> buffer_;    // set by from_buffer()
  const uint8_t* base_ = nullptr;  // start of the file bytes (mapping or buffer)
  uint64_t size_ = 0;
  std::string path_;

  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t, std::less<>> key_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace sgl::model
