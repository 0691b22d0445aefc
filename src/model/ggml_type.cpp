#include "model/ggml_type.h"

#include <utility>

#include "support/check.h"

namespace sgl::model {
namespace {
constexpr GgmlTypeTraits kTraits[] = {
    {GgmlType::kF32, "f32", 1, 4},       {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", 32, 18},   {GgmlType::kQ4_1, "q4_1", 32, 20},
    {GgmlType::kQ5_0, "q5_0", 32, 22},   {GgmlType::kQ5_1, "q5_1", 32, 24},
    {GgmlType::kQ8_0, "q8_0", 32, 34},   {GgmlType::kQ8_1, "q8_1", 32, 36},
    {GgmlType::kQ2_K, "q2_K", 256, 84},  {GgmlType::kQ3_K, "q3_K", 256, 110},
    {GgmlType::kQ4_K, "q4_K", 256, 144}, {GgmlType::kQ5_K, "q5_K", 256, 176},
    {GgmlType::kQ6_K, "q6_K", 256, 210}, {GgmlType::kQ8_K, "q8_K", 256, 292},
    {GgmlType::kI8, "i8", 1, 1},         {GgmlType::kI16, "i16", 1, 2},
    {GgmlType::kI32, "i32", 1, 4},       {GgmlType::kI64, "i64", 1, 8},
    {GgmlType::kF64, "f64", 1, 8},       {GgmlType::kBF16, "bf16", 1, 2},
};
}  // namespace

std::optional<GgmlTypeTraits> ggml_type_from_id(uint32_t id) {
  for (const auto& t : kTraits)
    if (static_cast<uint32_t>(t.type) == id) return t;
  return std::nullopt;
}

const GgmlTypeTraits& ggml_type_traits(GgmlType type) {
  for (const auto& t : kTraits)
    if (t.type == type) return t;
  SGL_CHECK(false, "unknown GgmlType");
  __builtin_unreachable();
}

std::string_view ggml_type_name(GgmlType type) { return ggml_type_traits(type).name; }

std::string_view ggml_type_id_name(uint32_t id) {
  if (auto t = ggml_type_from_id(id)) return t->name;
  // Ids ggml defines (or once defined) that we do not read.
  static constexpr std::pair<uint32_t, std::string_view> kOther[] = {
      {4, "q4_2"},   {5, "q4_3"},        {16, "iq2_xxs"},    {17, "iq2_xs"},     {18, "iq3_xxs"},
      {19, "iq1_s"}, {20, "iq4_nl"},     {21, "iq3_s"},      {22, "iq2_s"},      {23, "iq4_xs"},
      {29, "iq1_m"}, {31, "q4_0_4_4"},   {32, "q4_0_4_8"},   {33, "q4_0_8_8"},   {34, "tq1_0"},
      {35, "tq2_0"}, {36, "iq4_nl_4_4"}, {37, "iq4_nl_4_8"}, {38, "iq4_nl_8_8"}, {39, "mxfp4"},
  };
  for (const auto& [other_id, name] : kOther)
    if (other_id == id) return name;
  return "";
}

std::optional<uint64_t> ggml_row_size(GgmlType type, uint64_t n) {
  const auto& t = ggml_type_traits(type);
  if (n % t.block_size != 0) return std::nullopt;
  uint64_t blocks = n / t.block_size;
  uint64_t bytes;
  if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(t.type_size), &bytes))
    return std::nullopt;
  return bytes;
}

}  // namespace sgl::model
