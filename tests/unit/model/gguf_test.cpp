#include "model/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/gguf_writer.h"
#include "support/fp16.h"
#include "test_files.h"

namespace sgl::model {
namespace {

using testing::default_model_path;
using testing::TempDir;
using testing::test_data;

// ---------------------------------------------------------------------------------------------
// Hand-made byte streams for corrupt files (the writer refuses to make them).

struct Raw {
  std::vector<uint8_t> b;
  Raw& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Raw& u32(uint32_t v) { return put(&v, 4); }
  Raw& u64(uint64_t v) { return put(&v, 8); }
  Raw& f32(float v) { return put(&v, 4); }
  Raw& str(std::string_view s) {
    u64(s.size());
    return put(s.data(), s.size());
  }
  Raw& put(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  Raw& pad_to(size_t a) {
    while (b.size() % a) b.push_back(0);
    return *this;
  }
  // "GGUF", version, tensor_count, kv_count
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    put("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Raw& kv_u32(std::string_view key, uint32_t v) {
    str(key);
    u32(static_cast<uint32_t>(GgufValueType::kU32));
    return u32(v);
  }
  Raw& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
};

// Expects from_buffer to fail with an error whose message contains every fragment.
void expect_error(const std::vector<uint8_t>& bytes, std::vector<std::string> fragments,
                  std::optional<StatusCode> code = std::nullopt) {
  Result<GgufFile> r = GgufFile::from_buffer(bytes);
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << fragments[0] << "'";
  for (const std::string& f : fragments)
    EXPECT_NE(r.status().message().find(f), std::string::npos)
        << "message: " << r.status().message() << "\nmissing: " << f;
  if (code) {
    EXPECT_EQ(r.status().code(), *code) << r.status().to_string();
  }
}

// A small valid file: one f32 tensor [8] (32 bytes) at offset 0.
Raw valid_one_tensor(uint32_t type = 0, std::vector<uint64_t> dims = {8}, uint64_t offset = 0) {
  Raw r;
  r.header(1, 1).kv_u32("k", 1).tensor("w", dims, type, offset).pad_to(32).zeros(32);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Golden file written by llama.cpp's gguf-py (tests/data/model/make_golden.py)

TEST(Gguf, ReadsFileWrittenByGgufPy) {
  Result<GgufFile> r = GgufFile::open(test_data("model/tiny.gguf"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const GgufFile& f = *r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.architecture(), "llama");
  ASSERT_EQ(f.metadata().size(), 18u);
  EXPECT_EQ(f.metadata()[0].first, "general.architecture");
  EXPECT_EQ(f.metadata()[1].first, "general.alignment");

  EXPECT_EQ(f.find("test.u8")->type(), GgufValueType::kU8);
  EXPECT_EQ(*f.find("test.u8")->as_u64(), 200u);
  EXPECT_EQ(*f.find("test.i8")->as_i64(), -100);
  EXPECT_EQ(*f.find("test.u16")->as_u64(), 60000u);
  EXPECT_EQ(*f.find("test.i16")->as_i64(), -30000);
  EXPECT_EQ(*f.get_u32("test.u32"), 4000000000u);
  EXPECT_EQ(*f.find("test.i32")->as_i64(), -2000000000);
  EXPECT_EQ(*f.get_u64("test.u64"), 18000000000000000000ull);
  EXPECT_EQ(*f.get_i64("test.i64"), -9000000000000000000ll);
  EXPECT_EQ(*f.get_f32("test.f32"), 0.15625f);
  EXPECT_EQ(f.find("test.f64")->type(), GgufValueType::kF64);
  EXPECT_EQ(*f.find("test.f64")->as_f64(), -2.5e100);
  EXPECT_EQ(*f.get_bool("test.bool"), true);
  EXPECT_EQ(*f.get_string("test.string"), "h\xC3\xA9llo w\xC3\xB6rld");
  EXPECT_EQ(*f.get_string_array("test.str_array"),
            (std::vector<std::string>{"a", "bc", "", "\xE2\x9C\x93"}));
  EXPECT_EQ(*f.find("test.i32_array")->as_i32_array(), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(*f.find("test.f32_array")->as_f32_array(), (std::vector<float>{0.5f, -1.25f}));
  const GgufValue& nested = *f.find("test.nested");
  ASSERT_EQ(nested.array_type(), GgufValueType::kArray);
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(*nested.at(0).as_i32_array(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(*nested.at(1).as_i32_array(), (std::vector<int32_t>{3}));

  ASSERT_EQ(f.tensors().size(), 3u);
  const GgufTensorInfo* t = f.find_tensor("t.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{2, 3}));  // numpy [3, 2] reversed
  EXPECT_EQ(t->type, GgmlType::kF32);
  EXPECT_EQ(t->n_elements, 6u);
  EXPECT_EQ(t->n_bytes, 24u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  for (int i = 0; i < 6; ++i) {
    float v;
    std::memcpy(&v, t->data + 4 * i, 4);
    EXPECT_EQ(v, static_cast<float>(i));
  }
  t = f.find_tensor("t.f16");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, GgmlType::kF16);
  EXPECT_EQ(t->offset, 64u);
  for (int i = 0; i < 4; ++i) {
    uint16_t h;
    std::memcpy(&h, t->data + 2 * i, 2);
    EXPECT_EQ(fp16_to_fp32(h), static_cast<float>(i + 1));
  }
  t = f.find_tensor("t.q8_0");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, GgmlType::kQ8_0);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{32, 2}));
  EXPECT_EQ(t->offset, 128u);
  EXPECT_EQ(t->n_bytes, 68u);
  for (int i = 0; i < 68; ++i) EXPECT_EQ(t->data[i], i);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_EQ(f.find("nope"), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Writer round trips

GgufValue nested_value() {
  std::vector<GgufValue> inner1 = {GgufValue::make_i32_array({1, 2, 3}),
                                   GgufValue::make_i32_array({})};
  std::vector<GgufValue> inner2 = {GgufValue::make_string_array({"x", "yz"})};
  std::vector<GgufValue> outer = {*GgufValue::make_array(GgufValueType::kArray, inner1),
                                  *GgufValue::make_array(GgufValueType::kArray, inner2)};
  return *GgufValue::make_array(GgufValueType::kArray, outer);
}

const GgmlType kAllTypes[] = {
    GgmlType::kF32,  GgmlType::kF16,  GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
    GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ8_1, GgmlType::kQ2_K, GgmlType::kQ3_K,
    GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_K, GgmlType::kI8,
    GgmlType::kI16,  GgmlType::kI32,  GgmlType::kI64,  GgmlType::kF64,  GgmlType::kBF16,
};

struct RoundTripCase {
  uint32_t version;
  uint32_t alignment;
};

class GgufRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(GgufRoundTrip, EveryValueTypeAndTensorTypeSurvives) {
  const RoundTripCase c = GetParam();
  std::mt19937 rng(1234);
  GgufWriter w;
  w.set_version(c.version);
  if (c.alignment != 32) w.set_alignment(c.alignment);
  w.add_string("general.architecture", "llama")
      .add_u8("v.u8", 255)
      .add_i8("v.i8", -128)
      .add_u16("v.u16", 65535)
      .add_i16("v.i16", -32768)
      .add_u32("v.u32", 0xFFFFFFFFu)
      .add_i32("v.i32", INT32_MIN)
      .add_u64("v.u64", UINT64_MAX)
      .add_i64("v.i64", INT64_MIN)
      .add_f32("v.f32", -3.25f)
      .add_f64("v.f64", 1.0 / 3.0)
      .add_bool("v.true", true)
      .add_bool("v.false", false)
      .add_string("v.empty", "")
      .add_string("v.utf8", "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80")
      .add_string_array("v.strings", {"a", "", "\xC3\xA9", std::string("nul\0in", 6)})
      .add_i32_array("v.i32s", {INT32_MIN, 0, INT32_MAX})
      .add_u32_array("v.u32s", {0, 7, 0xFFFFFFFFu})
      .add_f32_array("v.f32s", {1.5f, -0.0f, 1e30f})
      .add_kv("v.empty_array", *GgufValue::make_array(GgufValueType::kF64, {}))
      .add_kv("v.bools",
              *GgufValue::make_array(GgufValueType::kBool,
                                     {GgufValue::make_bool(true), GgufValue::make_bool(false)}))
      .add_kv("v.nested", nested_value());
  std::vector<std::vector<uint8_t>> payloads;
  for (GgmlType type : kAllTypes) {
    const GgmlTypeTraits& tr = ggml_type_traits(type);
    const std::vector<uint64_t> shape = {tr.block_size * 2, 3};
    std::vector<uint8_t> bytes(*ggml_row_size(type, shape[0]) * 3);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    payloads.push_back(bytes);
    w.add_tensor("t." + std::string(tr.name), shape, type, bytes);
  }
  ASSERT_TRUE(w.status().is_ok()) << w.status().to_string();
  Result<std::vector<uint8_t>> bytes = w.to_bytes();
  ASSERT_TRUE(bytes.is_ok());

  TempDir dir;
  ASSERT_TRUE(w.write_file(dir.file("rt.gguf")).is_ok());
  EXPECT_EQ(testing::read_file_bytes(dir.file("rt.gguf")), *bytes);

  for (int from_disk = 0; from_disk < 2; ++from_disk) {
    Result<GgufFile> r =
        from_disk ? GgufFile::open(dir.file("rt.gguf")) : GgufFile::from_buffer(*bytes);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    const GgufFile& f = *r;
    EXPECT_EQ(f.version(), c.version);
    EXPECT_EQ(f.alignment(), c.alignment);
    EXPECT_EQ(f.architecture(), "llama");
    EXPECT_EQ(*f.find("v.u8")->as_u64(), 255u);
    EXPECT_EQ(*f.find("v.i8")->as_i64(), -128);
    EXPECT_EQ(*f.find("v.u16")->as_u64(), 65535u);
    EXPECT_EQ(*f.find("v.i16")->as_i64(), -32768);
    EXPECT_EQ(*f.get_u32("v.u32"), 0xFFFFFFFFu);
    EXPECT_EQ(*f.find("v.i32")->as_i64(), INT32_MIN);
    EXPECT_EQ(*f.get_u64("v.u64"), UINT64_MAX);
    EXPECT_EQ(*f.get_i64("v.i64"), INT64_MIN);
    EXPECT_EQ(*f.get_f32("v.f32"), -3.25f);
    EXPECT_EQ(*f.find("v.f64")->as_f64(), 1.0 / 3.0);
    EXPECT_TRUE(*f.get_bool("v.true"));
    EXPECT_FALSE(*f.get_bool("v.false"));
    EXPECT_EQ(*f.get_string("v.empty"), "");
    EXPECT_EQ(*f.get_string("v.utf8"), "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80");
    EXPECT_EQ(*f.get_string_array("v.strings"),
              (std::vector<std::string>{"a", "", "\xC3\xA9", std::string("nul\0in", 6)}));
    EXPECT_EQ(*f.find("v.i32s")->as_i32_array(), (std::vector<int32_t>{INT32_MIN, 0, INT32_MAX}));
    EXPECT_EQ(f.find("v.u32s")->array_type(), GgufValueType::kU32);
    EXPECT_FALSE(f.find("v.u32s")->as_i32_array().has_value());  // 0xFFFFFFFF > INT32_MAX
    EXPECT_EQ(*f.find("v.u32s")->at(2).as_u64(), 0xFFFFFFFFu);
    const std::vector<float> floats = *f.find("v.f32s")->as_f32_array();
    EXPECT_EQ(floats[0], 1.5f);
    EXPECT_TRUE(std::signbit(floats[1]));
    EXPECT_EQ(floats[2], 1e30f);
    EXPECT_EQ(f.find("v.empty_array")->array_type(), GgufValueType::kF64);
    EXPECT_EQ(f.find("v.empty_array")->size(), 0u);
    EXPECT_EQ(*f.find("v.bools")->at(0).as_bool(), true);
    EXPECT_EQ(*f.find("v.bools")->at(1).as_bool(), false);
    const GgufValue& n = *f.find("v.nested");
    ASSERT_EQ(n.size(), 2u);
    EXPECT_EQ(*n.at(0).at(0).as_i32_array(), (std::vector<int32_t>{1, 2, 3}));
    EXPECT_EQ(n.at(0).at(1).size(), 0u);
    EXPECT_EQ(*n.at(1).at(0).as_string_array(), (std::vector<std::string>{"x", "yz"}));
    EXPECT_EQ(n.to_string(), "[[[1, 2, 3], []], [[\"x\", \"yz\"]]]");

    // Metadata order is file order (general.alignment first when set, as the writer records it).
    std::vector<std::string> keys;
    for (const auto& kv : f.metadata()) keys.push_back(kv.first);
    EXPECT_EQ(keys.back(), "v.nested");
    EXPECT_EQ(keys.size(), c.alignment != 32 ? 23u : 22u);

    ASSERT_EQ(f.tensors().size(), std::size(kAllTypes));
    for (size_t i = 0; i < std::size(kAllTypes); ++i) {
      const GgufTensorInfo& t = f.tensors()[i];
      const GgmlTypeTraits& tr = ggml_type_traits(kAllTypes[i]);
      EXPECT_EQ(t.name, "t." + std::string(tr.name));
      EXPECT_EQ(t.type, kAllTypes[i]);
      EXPECT_EQ(t.shape, (std::vector<uint64_t>{tr.block_size * 2, 3}));
      EXPECT_EQ(t.n_elements, tr.block_size * 6u);
      EXPECT_EQ(t.n_bytes, 6u * tr.type_size) << t.name;
      EXPECT_EQ(t.offset % c.alignment, 0u);
      EXPECT_EQ((f.data_offset() + t.offset) % c.alignment, 0u);
      ASSERT_EQ(t.n_bytes, payloads[i].size());
      EXPECT_EQ(std::memcmp(t.data, payloads[i].data(), t.n_bytes), 0) << t.name;
      EXPECT_EQ(f.find_tensor(t.name), &t);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(VersionsAndAlignments, GgufRoundTrip,
                         ::testing::Values(RoundTripCase{3, 32}, RoundTripCase{3, 64},
                                           RoundTripCase{2, 32}, RoundTripCase{2, 64}),
                         [](const auto& info) {
                           std::string name = "v";
                           name += std::to_string(info.param.version);
                           name += "_align";
                           name += std::to_string(info.param.alignment);
                           return name;
                         });

TEST(Gguf, EmptyFileWithNoTensorsOrKeys) {
  GgufWriter w;
  Result<std::vector<uint8_t>> bytes = w.to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  EXPECT_EQ(bytes->size(), 24u);
  Result<GgufFile> f = GgufFile::from_buffer(*bytes);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->architecture(), "");
}

TEST(Gguf, WriterRecordsErrors) {
  {
    GgufWriter w;
    w.add_u32("a", 1).add_u32("a", 2);
    EXPECT_NE(w.status().message().find("duplicate key 'a'"), std::string::npos);
    EXPECT_FALSE(w.to_bytes().is_ok());
  }
  {
    GgufWriter w;
    w.add_tensor("t", {31}, GgmlType::kQ4_0, std::vector<uint8_t>(18));
    EXPECT_FALSE(w.status().is_ok());
  }
  {
    GgufWriter w;
    w.add_tensor("t", {32}, GgmlType::kQ4_0, std::vector<uint8_t>(17));
    EXPECT_NE(w.status().message().find("17 bytes"), std::string::npos);
  }
  {
    GgufWriter w;
    w.add_f32_tensor("t", {1}, {1.0f}).add_f32_tensor("t", {1}, {2.0f});
    EXPECT_NE(w.status().message().find("duplicate tensor name"), std::string::npos);
  }
  {
    GgufWriter w;
    w.set_alignment(24);
    EXPECT_FALSE(w.status().is_ok());
  }
  {
    GgufWriter w;
    w.add_string("general.alignment", "64");
    EXPECT_FALSE(w.status().is_ok());
  }
  {
    GgufWriter w;
    w.set_version(1);
    EXPECT_FALSE(w.status().is_ok());
  }
  EXPECT_FALSE(GgufValue::make_array(GgufValueType::kU32, {GgufValue::make_i32(1)}).is_ok());
  TempDir dir;
  GgufWriter ok;
  EXPECT_EQ(ok.write_file(dir.file("no/such/dir/x.gguf")).code(), StatusCode::kIoError);
}

TEST(Gguf, AlignmentKeyFromAddKvSetsTheLayout) {
  GgufWriter w;
  w.add_u32("general.alignment", 128)
      .add_f32_tensor("a", {3}, {1, 2, 3})
      .add_f32_tensor("b", {1}, {4});
  Result<GgufFile> f = GgufFile::from_buffer(*w.to_bytes());
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->alignment(), 128u);
  EXPECT_EQ(f->find_tensor("b")->offset, 128u);
  EXPECT_EQ(f->data_offset() % 128, 0u);
}

// ---------------------------------------------------------------------------------------------
// Values and typed getters

TEST(GgufValue, ConversionsCheckRanges) {
  EXPECT_FALSE(GgufValue::make_i32(-1).as_u64().has_value());
  EXPECT_EQ(*GgufValue::make_i32(-1).as_i64(), -1);
  EXPECT_FALSE(GgufValue::make_u64(UINT64_MAX).as_i64().has_value());
  EXPECT_EQ(*GgufValue::make_u64(UINT64_MAX).as_u64(), UINT64_MAX);
  EXPECT_EQ(*GgufValue::make_u16(7).as_f64(), 7.0);
  EXPECT_FALSE(GgufValue::make_string("7").as_u64().has_value());
  EXPECT_FALSE(GgufValue::make_u8(1).as_bool().has_value());
  EXPECT_FALSE(GgufValue::make_bool(true).is_integer());
  EXPECT_TRUE(GgufValue::make_i8(1).is_integer());
  EXPECT_TRUE(GgufValue::make_f64(1).is_float());
  EXPECT_FALSE(GgufValue::make_f32(1).as_string().has_value());
  EXPECT_EQ(*GgufValue::make_string("abc").as_string_view(), "abc");

  const GgufValue i64s = *GgufValue::make_array(
      GgufValueType::kI64, {GgufValue::make_i64(5), GgufValue::make_i64(-(int64_t{1} << 40))});
  EXPECT_FALSE(i64s.as_i32_array().has_value());  // -2^40 does not fit
  const GgufValue u8s =
      *GgufValue::make_array(GgufValueType::kU8, {GgufValue::make_u8(0), GgufValue::make_u8(255)});
  EXPECT_EQ(*u8s.as_i32_array(), (std::vector<int32_t>{0, 255}));
  EXPECT_FALSE(u8s.as_f32_array().has_value());
  EXPECT_FALSE(u8s.as_string_array().has_value());
  EXPECT_FALSE(GgufValue::make_string_array({"a"}).as_i32_array().has_value());
  const GgufValue f64s = *GgufValue::make_array(GgufValueType::kF64, {GgufValue::make_f64(0.25)});
  EXPECT_EQ(*f64s.as_f32_array(), (std::vector<float>{0.25f}));
  EXPECT_EQ(GgufValue::make_i32_array({1, 2, 3, 4, 5}).to_string(2), "[1, 2, ... 3 more]");
  EXPECT_EQ(GgufValue::make_string("a\"b\n").to_string(), "\"a\\\"b\\n\"");
}

TEST(GgufFile, TypedGettersNameKeyAndTypes) {
  GgufWriter w;
  w.add_string("s", "text")
      .add_i32("neg", -5)
      .add_u64("big", uint64_t{1} << 40)
      .add_f64("huge", 1e300)
      .add_u8("small", 9)
      .add_i32_array("arr", {1});
  Result<GgufFile> r = GgufFile::from_buffer(*w.to_bytes());
  ASSERT_TRUE(r.is_ok());
  const GgufFile& f = *r;

  Result<uint32_t> u = f.get_u32("s");
  ASSERT_FALSE(u.is_ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(u.status().message().find("'s'"), std::string::npos);
  EXPECT_NE(u.status().message().find("expected u32, got string"), std::string::npos);

  EXPECT_EQ(f.get_u32("missing").status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.get_u32("missing").status().message().find("'missing'"), std::string::npos);
  EXPECT_EQ(f.get_u32("neg").status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(f.get_u32("big").status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(*f.get_u64("big"), uint64_t{1} << 40);
  EXPECT_EQ(*f.get_i64("neg"), -5);
  EXPECT_EQ(*f.get_u32("small"), 9u);  // any integer type that fits
  EXPECT_EQ(*f.get_f32("small"), 9.0f);
  EXPECT_EQ(f.get_f32("huge").status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(f.get_f32("s").status().message().find("expected f32, got string"), std::string::npos);
  EXPECT_NE(f.get_bool("small").status().message().find("expected bool, got u8"),
            std::string::npos);
  EXPECT_NE(f.get_string("arr").status().message().find("got array of i32"), std::string::npos);
  EXPECT_NE(f.get_string_array("arr").status().message().find("expected array of string"),
            std::string::npos);

  EXPECT_EQ(*f.get_u32_or("missing", 77), 77u);
  EXPECT_EQ(*f.get_u64_or("missing", 78), 78u);
  EXPECT_EQ(*f.get_f32_or("missing", 1.5f), 1.5f);
  EXPECT_EQ(*f.get_bool_or("missing", true), true);
  EXPECT_EQ(*f.get_string_or("missing", "d"), "d");
  EXPECT_EQ(*f.get_string_or("s", "d"), "text");
  EXPECT_FALSE(f.get_u32_or("s", 1).is_ok());  // present with the wrong type: still an error
  EXPECT_FALSE(f.get_bool_or("s", true).is_ok());
  EXPECT_FALSE(f.get_string_or("small", "d").is_ok());
  EXPECT_FALSE(f.get_f32_or("s", 1).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Corrupt files: each is refused with an error naming the bad field.

TEST(GgufCorrupt, BadMagicAndVersions) {
  expect_error({}, {"magic", "truncated"}, StatusCode::kOutOfRange);
  Raw bad;
  bad.put("GGUX", 4).u32(3).u64(0).u64(0);
  expect_error(bad.b, {"bad magic"}, StatusCode::kInvalidArgument);
  Raw v1;
  v1.header(0, 0, 1);
  expect_error(v1.b, {"version 1 "}, StatusCode::kUnsupported);
  Raw v99;
  v99.header(0, 0, 99);
  expect_error(v99.b, {"version 99", "only 2 and 3"}, StatusCode::kUnsupported);
  Raw big_endian;
  big_endian.header(0, 0, 0x03000000);
  expect_error(big_endian.b, {"big-endian"}, StatusCode::kUnsupported);
  Raw v2;
  v2.header(0, 0, 2);
  EXPECT_TRUE(GgufFile::from_buffer(v2.b).is_ok());
}

TEST(GgufCorrupt, AbsurdCounts) {
  Raw kv;
  kv.header(0, uint64_t{1} << 62);
  expect_error(kv.b, {"kv_count 4611686018427387904"}, StatusCode::kOutOfRange);
  Raw tensors;
  tensors.header(uint64_t{1} << 62, 0);
  expect_error(tensors.b, {"tensor_count 4611686018427387904"}, StatusCode::kOutOfRange);
  Raw arr;
  arr.header(0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(uint64_t{1} << 62);
  expect_error(arr.b, {"key 'tokenizer.ggml.tokens'", "count 4611686018427387904"},
               StatusCode::kOutOfRange);
  Raw arr_u8;
  arr_u8.header(0, 1).str("a").u32(9).u32(0).u64(100).zeros(99);
  expect_error(arr_u8.b, {"key 'a'", "count 100"});
  Raw arr_nested;
  arr_nested.header(0, 1).str("a").u32(9).u32(9).u64(uint64_t{1} << 60);
  expect_error(arr_nested.b, {"key 'a'", "array of array"});
}

TEST(GgufCorrupt, StringLengthsPastEnd) {
  Raw key;
  key.header(0, 1).u64(1000).put("abc", 3).zeros(20);
  expect_error(key.b, {"key #0", "length 1000", "past end of file"}, StatusCode::kOutOfRange);
  Raw value;
  value.header(0, 1).str("general.name").u32(8).u64(uint64_t{1} << 40).put("x", 1);
  expect_error(value.b, {"key 'general.name'", "string value length 1099511627776"});
  Raw name;
  name.header(1, 0).u64(UINT64_MAX).zeros(40);
  expect_error(name.b, {"tensor #0", "name length"}, StatusCode::kOutOfRange);
}

TEST(GgufCorrupt, TensorDataPastEndOfFile) {
  Raw r;
  r.header(1, 0).tensor("blk.0.attn_q.weight", {1024}, 0, 0).pad_to(32);
  const size_t data_start = r.b.size();
  r.zeros(100);
  expect_error(r.b,
               {"tensor 'blk.0.attn_q.weight'",
                "data [" + std::to_string(data_start) + ", " + std::to_string(data_start + 4096) +
                    ") past end of file (size " + std::to_string(data_start + 100) + ")"},
               StatusCode::kOutOfRange);
  Raw huge;  // offset + size overflows 64 bits
  huge.header(1, 0).tensor("w", {8}, 0, UINT64_MAX - 31).pad_to(32).zeros(32);
  expect_error(huge.b, {"tensor 'w'", "past end of file"}, StatusCode::kOutOfRange);
  Raw no_data;  // the data section itself is missing (file ends inside the padding)
  no_data.header(1, 0).tensor("w", {8}, 0, 0);
  expect_error(no_data.b, {"data section starts at"}, StatusCode::kOutOfRange);
}

TEST(GgufCorrupt, TensorOffsetNotAligned) {
  Raw r;
  r.header(1, 0).tensor("w", {8}, 0, 4).pad_to(32).zeros(64);
  expect_error(r.b, {"tensor 'w'", "offset 4", "alignment 32"});
}

TEST(GgufCorrupt, BadAlignmentValues) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Raw r;
    r.header(0, 1).kv_u32("general.alignment", a);
    expect_error(r.b, {"general.alignment", "power of two"});
  }
  Raw wrong_type;
  wrong_type.header(0, 1).str("general.alignment").u32(8).str("32");
  expect_error(wrong_type.b, {"general.alignment", "expected u32, got string"});
  Raw u64;
  u64.header(0, 1).str("general.alignment").u32(10).u64(32);
  expect_error(u64.b, {"general.alignment", "expected u32, got u64"});
  Raw ok;
  ok.header(0, 1).kv_u32("general.alignment", 16);
  Result<GgufFile> f = GgufFile::from_buffer(ok.b);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->alignment(), 16u);
}

TEST(GgufCorrupt, UnsupportedTensorTypes) {
  expect_error(valid_one_tensor(17).b, {"tensor 'w'", "unsupported", "17", "iq2_xs"},
               StatusCode::kUnsupported);
  expect_error(valid_one_tensor(1000).b, {"tensor 'w'", "unsupported", "1000"},
               StatusCode::kUnsupported);
  EXPECT_TRUE(GgufFile::from_buffer(valid_one_tensor(0).b).is_ok());
}

TEST(GgufCorrupt, BadShapes) {
  Raw five;
  five.header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).pad_to(32).zeros(32);
  expect_error(five.b, {"tensor 'w'", "n_dims 5"});
  Raw zero_dims;
  zero_dims.header(1, 0).tensor("w", {}, 0, 0).pad_to(32).zeros(32);
  expect_error(zero_dims.b, {"tensor 'w'", "n_dims 0"});
  expect_error(valid_one_tensor(0, {4, 0}).b, {"tensor 'w'", "dimension 1 is 0"});
  expect_error(valid_one_tensor(0, {uint64_t{1} << 32, uint64_t{1} << 32}).b,
               {"tensor 'w'", "overflows"}, StatusCode::kOutOfRange);
  expect_error(valid_one_tensor(0, {uint64_t{1} << 62, 4}).b, {"tensor 'w'", "overflows"});
  // Elements fit but bytes overflow: f64 with 2^61 elements.
  expect_error(valid_one_tensor(28, {uint64_t{1} << 61}).b, {"tensor 'w'", "overflows"});
  expect_error(valid_one_tensor(2, {31}).b, {"tensor 'w'", "shape[0] = 31", "block size 32"});
}

TEST(GgufCorrupt, DuplicatesAndOverlaps) {
  Raw keys;
  keys.header(0, 2).kv_u32("llama.block_count", 1).kv_u32("llama.block_count", 2);
  expect_error(keys.b, {"key 'llama.block_count'", "duplicate key"});
  Raw names;
  names.header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad_to(32).zeros(64);
  expect_error(names.b, {"tensor 'w'", "duplicate tensor name"});
  Raw overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad_to(32).zeros(96);
  expect_error(overlap.b, {"overlaps tensor 'a'"});
}

TEST(GgufCorrupt, KeysAndValues) {
  Raw empty_key;
  empty_key.header(0, 1).str("").u32(4).u32(1);
  expect_error(empty_key.b, {"empty key"});
  Raw bad_utf8;
  bad_utf8.header(0, 1).str("a\xFF").u32(4).u32(1);
  expect_error(bad_utf8.b, {"not valid UTF-8"});
  Raw bad_type;
  bad_type.header(0, 1).str("k").u32(13).u32(1);
  expect_error(bad_type.b, {"key 'k'", "unknown value type 13"});
  Raw bad_elem;
  bad_elem.header(0, 1).str("k").u32(9).u32(42).u64(1);
  expect_error(bad_elem.b, {"key 'k'", "unknown array element type 42"});
  Raw bad_bool;
  bad_bool.header(0, 1).str("k").u32(7).u8(2);
  expect_error(bad_bool.b, {"key 'k'", "bool value 2"});
  Raw bad_bool_array;
  bad_bool_array.header(0, 1).str("k").u32(9).u32(7).u64(3).u8(1).u8(0).u8(5);
  expect_error(bad_bool_array.b, {"key 'k'", "bool array element 5"});
  Raw truncated_scalar;
  truncated_scalar.header(0, 1).str("k").u32(10).u32(1);
  expect_error(truncated_scalar.b, {"key 'k'", "u64 value", "needs 8 bytes"});
}

TEST(GgufCorrupt, NestedArrayDepthBomb) {
  // 9 levels deep: one more than allowed.
  Raw nine;
  nine.header(0, 1).str("bomb").u32(9);
  for (int i = 0; i < 8; ++i) nine.u32(9).u64(1);
  nine.u32(4).u64(1).u32(7);
  expect_error(nine.b, {"key 'bomb'", "nested deeper than 8"});
  // Exactly 8 levels is fine.
  Raw eight;
  eight.header(0, 1).str("ok").u32(9);
  for (int i = 0; i < 7; ++i) eight.u32(9).u64(1);
  eight.u32(4).u64(1).u32(7);
  Result<GgufFile> f = GgufFile::from_buffer(eight.b);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const GgufValue* v = f->find("ok");
  for (int i = 0; i < 7; ++i) v = &v->at(0);
  EXPECT_EQ(*v->at(0).as_u64(), 7u);
  // A million levels: refused at level 9 without deep recursion.
  Raw deep;
  deep.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 1000000; ++i) deep.u32(9).u64(1);
  expect_error(deep.b, {"nested deeper"});
}

TEST(GgufCorrupt, MetadataElementBudget) {
  const uint64_t n = GgufFile::kMaxMetadataElements + 1;
  Raw r;
  r.header(0, 1).str("big").u32(9).u32(0).u64(n).zeros(n);
  expect_error(r.b, {"key 'big'", "elements in total"}, StatusCode::kResourceExhausted);
}

// Every strict prefix of a valid file is an error (never a crash). The last tensor's size is a
// multiple of the alignment so that no prefix ends in harmless trailing padding.
TEST(GgufCorrupt, EveryTruncationIsAnError) {
  GgufWriter w;
  w.add_string("general.architecture", "llama")
      .add_u32("llama.block_count", 1)
      .add_string_array("tokenizer.ggml.tokens", {"a", "b", "cd"})
      .add_kv("nested", nested_value())
      .add_f32_array("f", {1, 2})
      .add_tensor("q", {32, 2}, GgmlType::kQ8_0, std::vector<uint8_t>(68, 1))
      .add_f32_tensor("w", {16}, std::vector<float>(16, 2.0f));
  const std::vector<uint8_t> bytes = *w.to_bytes();
  ASSERT_TRUE(GgufFile::from_buffer(bytes).is_ok());
  for (size_t len = 0; len < bytes.size(); ++len) {
    Result<GgufFile> r =
        GgufFile::from_buffer(std::vector<uint8_t>(bytes.begin(), bytes.begin() + len));
    EXPECT_FALSE(r.is_ok()) << "prefix of " << len << " bytes opened";
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().message().rfind("gguf: ", 0), 0u);
    }
  }
}

// Random byte flips: each mutant opens or fails cleanly; a mutant that opens still satisfies
// every layout invariant (checked here, and by ASan when the tensor bytes are read).
TEST(GgufCorrupt, RandomMutationsNeverCrash) {
  GgufWriter w;
  w.add_string("general.architecture", "llama")
      .add_u32("llama.block_count", 2)
      .add_f32("llama.rope.freq_base", 10000)
      .add_string_array("tokenizer.ggml.tokens", {"<s>", "a", "b"})
      .add_i32_array("tokenizer.ggml.token_type", {3, 1, 1})
      .add_kv("nested", nested_value())
      .add_tensor("token_embd.weight", {32, 3}, GgmlType::kQ4_1, std::vector<uint8_t>(60, 7))
      .add_f32_tensor("output_norm.weight", {8}, std::vector<float>(8, 1.0f));
  const std::vector<uint8_t> valid = *w.to_bytes();
  std::mt19937_64 rng(20240611);
  int opened = 0, failed = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<uint8_t> m = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = rng() % m.size();
      m[pos] = (rng() % 3 == 0) ? static_cast<uint8_t>(rng()) : m[pos] ^ (1u << (rng() % 8));
    }
    Result<GgufFile> r = GgufFile::from_buffer(std::move(m));
    if (!r.is_ok()) {
      ++failed;
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++opened;
    const GgufFile& f = *r;
    uint64_t sum = 0;
    for (const GgufTensorInfo& t : f.tensors()) {
      EXPECT_EQ(t.offset % f.alignment(), 0u);
      EXPECT_LE(f.data_offset() + t.offset + t.n_bytes, f.file_size());
      for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
    }
    for (const auto& kv : f.metadata()) sum += kv.second.to_string().size();
    volatile uint64_t sink = sum;  // keep the reads
    (void)sink;
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(opened, 0);  // flips inside tensor data or string contents leave a valid file
}

TEST(Gguf, OpenReportsMissingFileWithPath) {
  Result<GgufFile> r = GgufFile::open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/dir/model.gguf"), std::string::npos);
  TempDir dir;
  testing::write_file_bytes(dir.file("bad.gguf"), {'G', 'G', 'U', 'F', 1, 0, 0, 0});
  r = GgufFile::open(dir.file("bad.gguf"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("bad.gguf"), std::string::npos);
  EXPECT_NE(r.status().message().find("version 1"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The real default model

TEST(Gguf, OpensTheDefaultModel) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not found at " << path;
  Result<GgufFile> r = GgufFile::open(path);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const GgufFile& f = *r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.architecture(), "llama");
  EXPECT_EQ(f.metadata().size(), 33u);
  EXPECT_EQ(f.tensors().size(), 272u);
  std::set<int> blocks;
  for (const GgufTensorInfo& t : f.tensors()) {
    int n;
    if (std::sscanf(t.name.c_str(), "blk.%d.", &n) == 1) blocks.insert(n);
  }
  EXPECT_EQ(blocks.size(), 30u);
  EXPECT_EQ(*blocks.rbegin(), 29);
  EXPECT_EQ(*f.get_u32("llama.block_count"), 30u);
  EXPECT_EQ(*f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f.get_string("tokenizer.ggml.pre"), "smollm");
  Result<std::vector<std::string>> tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.is_ok());
  EXPECT_EQ(tokens->size(), 49152u);
  EXPECT_EQ((*tokens)[1], "<|im_start|>");
  EXPECT_EQ(f.find("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ(f.find("tokenizer.ggml.token_type")->as_i32_array()->size(), 49152u);

  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, GgmlType::kQ8_0);
  EXPECT_EQ(embd->shape, (std::vector<uint64_t>{576, 49152}));
  EXPECT_EQ(embd->n_bytes, 576u / 32 * 34 * 49152);
  const GgufTensorInfo* q = f.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kQ4_1);
  EXPECT_EQ(q->shape, (std::vector<uint64_t>{576, 576}));
  const GgufTensorInfo* k = f.find_tensor("blk.29.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape, (std::vector<uint64_t>{576, 192}));
  EXPECT_EQ(f.find_tensor("blk.0.attn_norm.weight")->type, GgmlType::kF32);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied embeddings
  uint64_t total = 0;
  for (const GgufTensorInfo& t : f.tensors()) total += t.n_bytes;
  EXPECT_LE(f.data_offset() + total, f.file_size());
}

}  // namespace
}  // namespace sgl::model
