// KV cache element types: the names accepted (SGLang's --kv-cache-dtype names included), the
// names printed, the bytes per element. Weight types (--dtype): the names accepted and printed.
#include <gtest/gtest.h>

#include "backend/backend.h"

namespace sgl::backend {
namespace {

TEST(KvDtype, ParseNamesAndBytes) {
  struct Case {
    const char* name;
    KvDtype want;
    int bytes;
  };
  for (const Case& c :
       {Case{"f16", KvDtype::kF16, 2}, Case{"fp16", KvDtype::kF16, 2},
        Case{"auto", KvDtype::kF16, 2}, Case{"bf16", KvDtype::kBF16, 2},
        Case{"bfloat16", KvDtype::kBF16, 2}, Case{"f32", KvDtype::kF32, 4},
        Case{"fp8_e4m3", KvDtype::kFp8E4M3, 1}, Case{"fp8_e5m2", KvDtype::kFp8E5M2, 1}}) {
    auto t = parse_kv_dtype(c.name);
    ASSERT_TRUE(t.is_ok()) << c.name;
    EXPECT_EQ(*t, c.want) << c.name;
    EXPECT_EQ(kv_dtype_bytes(*t), c.bytes) << c.name;
    // The printed name parses back to the same type.
    auto back = parse_kv_dtype(kv_dtype_name(*t));
    ASSERT_TRUE(back.is_ok()) << kv_dtype_name(*t);
    EXPECT_EQ(*back, *t);
  }
  EXPECT_TRUE(kv_dtype_is_fp8(KvDtype::kFp8E4M3));
  EXPECT_TRUE(kv_dtype_is_fp8(KvDtype::kFp8E5M2));
  EXPECT_FALSE(kv_dtype_is_fp8(KvDtype::kBF16));
  for (const char* bad : {"fp8", "e4m3", "fp8_e4m3fn", "int8", ""}) {
    auto t = parse_kv_dtype(bad);
    ASSERT_FALSE(t.is_ok()) << bad;
    EXPECT_NE(t.status().message().find("fp8_e4m3"), std::string::npos);  // lists the choices
  }
}

TEST(WeightDtype, ParseNames) {
  struct Case {
    const char* name;
    WeightDtype want;
  };
  for (const Case& c : {Case{"auto", WeightDtype::kAuto}, Case{"half", WeightDtype::kF16},
                        Case{"float16", WeightDtype::kF16}, Case{"fp16", WeightDtype::kF16},
                        Case{"f16", WeightDtype::kF16}, Case{"bfloat16", WeightDtype::kBF16},
                        Case{"bf16", WeightDtype::kBF16}, Case{"float", WeightDtype::kF32},
                        Case{"float32", WeightDtype::kF32}}) {
    auto t = parse_weight_dtype(c.name);
    ASSERT_TRUE(t.is_ok()) << c.name;
    EXPECT_EQ(*t, c.want) << c.name;
    auto back = parse_weight_dtype(weight_dtype_name(*t));
    ASSERT_TRUE(back.is_ok()) << weight_dtype_name(*t);
    EXPECT_EQ(*back, *t);
  }
  for (const char* bad : {"fp8", "float64", "int8", "Half", ""}) {
    auto t = parse_weight_dtype(bad);
    ASSERT_FALSE(t.is_ok()) << bad;
    EXPECT_NE(t.status().message().find("bfloat16"), std::string::npos);  // lists the choices
  }
}

}  // namespace
}  // namespace sgl::backend
