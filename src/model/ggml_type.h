// ggml tensor element types as stored in GGUF files: ids, names, block sizes and bytes per block.
// Reading a type id from a file goes through ggml_type_from_id(), which refuses unknown or
// unsupported ids (IQ* and friends) with a clear error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sgl::model {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;  // as ggml spells it: "f32", "q4_K", ...
  uint32_t block_size;    // elements per block (1 for plain types)
  uint32_t type_size;     // bytes per block
};

// Traits for a supported type id, or nullopt for ids we do not read (unknown, IQ*, TQ*, ...).
std::optional<GgmlTypeTraits> ggml_type_from_id(uint32_t id);
const GgmlTypeTraits& ggml_type_traits(GgmlType type);
std::string_view ggml_type_name(GgmlType type);
// ggml's name for any type id it has defined, supported here or not ("iq2_xs" for 17), or "" for
// an id ggml never defined. For error messages about ids that ggml_type_from_id() refuses.
std::string_view ggml_type_id_name(uint32_t id);

// Bytes of one row of `n` elements; nullopt if n is not a multiple of the block size or the
// product overflows.
std::optional<uint64_t> ggml_row_size(GgmlType type, uint64_t n);

}  // namespace sgl::model
