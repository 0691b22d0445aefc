// Safetensors reader (Hugging Face checkpoints): single files and sharded checkpoints described by
// model.safetensors.index.json, memory-mapped; plus a small writer for synthetic checkpoints.
//
// File layout: u64 little-endian header size N, N bytes of JSON, then the data section. The JSON
// is an object mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data section), plus an optional "__metadata__" string-to-string map.
// A file is untrusted: the header size is bounded (<= kMaxHeaderSize and the file), the JSON must
// be a well-formed object without duplicate names or deep nesting, every dtype must be known,
// every shape's byte size must equal end - begin (overflow-safe), and tensors lie inside the data
// section without overlapping. Shapes are in PyTorch order: shape.back() is the contiguous dim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/mapped_file.h"
#include "support/status.h"

namespace sgl::model {

enum class SafetensorsDtype {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kI64,
  kU64,
  kF64,
};

// The dtype as spelled in the header ("F32", "BF16", "F8_E4M3", ...).
std::string_view safetensors_dtype_name(SafetensorsDtype dtype);
std::optional<SafetensorsDtype> safetensors_dtype_from_name(std::string_view name);
// Bytes per element.
size_t safetensors_dtype_size(SafetensorsDtype dtype);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<uint64_t> shape;    // PyTorch order: shape.back() is contiguous; {} for a scalar
  const uint8_t* data = nullptr;  // points into the mapping; not necessarily aligned
  uint64_t n_bytes = 0;

  uint64_t n_elements() const;
  // Converts the elements to f32 into out[0..n). kUnsupported unless the dtype is F32, F16 or
  // BF16; kInvalidArgument if n != n_elements().
  Status to_f32(float* out, size_t n) const;
  Result<std::vector<float>> to_f32() const;
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderSize = 100ull << 20;  // 100 MB, as the reference library
  static constexpr int kMaxJsonDepth = 16;

  // Maps and validates the file; errors carry the path.
  static Result<SafetensorsFile> open(const std::string& path);
  // Validates a file held in memory; owns the bytes (tests, fuzzing).
  static Result<SafetensorsFile> from_buffer(std::vector<uint8_t> bytes);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Tensors in header order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // The tensor named `name`, or null.
  const SafetensorsTensor* find_tensor(std::string_view name) const;
  // The "__metadata__" map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  Status parse();

  MappedFile mapped_;
  std::vector<uint8_t> buffer_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// A whole checkpoint: one .safetensors file, or every shard named by an index json.
class SafetensorsCheckpoint {
 public:
  // `path` may be
  //  - a .safetensors file;
  //  - an index json (model.safetensors.index.json): its "weight_map" (tensor name -> shard file
  //    name, resolved next to the index) names the shards; every mapped tensor must be in its
  //    shard; shard names must be plain file names (no directories, no "..");
  //  - a directory: its model.safetensors.index.json if present, else model.safetensors, else
  //    every *.safetensors file in it (sorted by name).
  // A tensor name present in two shards is an error.
  static Result<SafetensorsCheckpoint> open(const std::string& path);

  SafetensorsCheckpoint(SafetensorsCheckpoint&&) noexcept = default;
  SafetensorsCheckpoint& operator=(SafetensorsCheckpoint&&) noexcept = default;

  // All tensors of all shards, shard by shard in header order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find_tensor(std::string_view name) const;
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // The directory holding the shards (for finding config.json and tokenizer.json next to them).
  const std::string& directory() const { return directory_; }

 private:
  SafetensorsCheckpoint() = default;
  Status add_shard(SafetensorsFile shard);

  std::string directory_;
  std::vector<SafetensorsFile> shards_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// ---------------------------------------------------------------------------------------------
// Writing (synthetic checkpoints for tests)

struct SafetensorsWriteTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<uint64_t> shape;  // PyTorch order
  std::vector<uint8_t> data;    // exactly product(shape) * dtype size bytes, little-endian
};

// Encodes floats as F32, F16 or BF16 (round to nearest even); other dtypes are kUnsupported.
Result<std::vector<uint8_t>> safetensors_encode_f32(SafetensorsDtype dtype,
                                                    const std::vector<float>& values);

// The bytes of a .safetensors file holding `tensors` (data in the given order, header padded with
// spaces to a multiple of 8 bytes as the reference writer does). Fails on duplicate or empty
// names, "__metadata__" as a tensor name, or a data size that does not match the shape.
Result<std::vector<uint8_t>> safetensors_to_bytes(
    const std::vector<SafetensorsWriteTensor>& tensors,
    const std::map<std::string, std::string>& metadata = {});
Status write_safetensors(const std::string& path,
                         const std::vector<SafetensorsWriteTensor>& tensors,
                         const std::map<std::string, std::string>& metadata = {});
// Writes a model.safetensors.index.json mapping each tensor name to its shard's file name.
Status write_safetensors_index(const std::string& path,
                               const std::map<std::string, std::string>& weight_map);

}  // namespace sgl::model
