#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "support/fp16.h"
#include "test_files.h"

namespace sgl::model {
namespace {

using testing::TempDir;
using testing::test_data;

// A file made of a header text and `data_size` data bytes (values i & 0xFF).
std::vector<uint8_t> make_file(const std::string& header, size_t data_size) {
  std::vector<uint8_t> out(8 + header.size() + data_size);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_size; ++i) out[8 + header.size() + i] = static_cast<uint8_t>(i);
  return out;
}

void expect_error(const std::vector<uint8_t>& bytes, std::vector<std::string> fragments,
                  std::optional<StatusCode> code = std::nullopt) {
  Result<SafetensorsFile> r = SafetensorsFile::from_buffer(bytes);
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << fragments[0] << "'";
  for (const std::string& f : fragments)
    EXPECT_NE(r.status().message().find(f), std::string::npos)
        << "message: " << r.status().message() << "\nmissing: " << f;
  if (code) {
    EXPECT_EQ(r.status().code(), *code) << r.status().to_string();
  }
}

SafetensorsWriteTensor f32_tensor(std::string name, std::vector<uint64_t> shape,
                                  const std::vector<float>& values,
                                  SafetensorsDtype dtype = SafetensorsDtype::kF32) {
  return {std::move(name), dtype, std::move(shape), *safetensors_encode_f32(dtype, values)};
}

// ---------------------------------------------------------------------------------------------

TEST(Safetensors, ReadsFileWrittenByPythonSafetensors) {
  Result<SafetensorsFile> r = SafetensorsFile::open(test_data("model/tiny.safetensors"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const SafetensorsFile& f = *r;
  EXPECT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "golden");

  const SafetensorsTensor* t = f.find_tensor("w.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, SafetensorsDtype::kF32);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(t->n_elements(), 6u);
  EXPECT_EQ(t->n_bytes, 24u);
  EXPECT_EQ(*t->to_f32(), (std::vector<float>{0, 1, 2, 3, 4, 5}));

  t = f.find_tensor("w.f16");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, SafetensorsDtype::kF16);
  EXPECT_EQ(*t->to_f32(), (std::vector<float>{0.5f, -1.0f, 2.0f, 65504.0f}));

  t = f.find_tensor("w.i64");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, SafetensorsDtype::kI64);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{1, 2}));
  int64_t v[2];
  std::memcpy(v, t->data, 16);
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[1], -2);
  Result<std::vector<float>> as_float = t->to_f32();
  ASSERT_FALSE(as_float.is_ok());
  EXPECT_EQ(as_float.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(as_float.status().message().find("'w.i64'"), std::string::npos);
  EXPECT_NE(as_float.status().message().find("I64"), std::string::npos);

  t = f.find_tensor("w.u8");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, SafetensorsDtype::kU8);
  EXPECT_EQ(t->data[0], 7);
  EXPECT_EQ(t->data[2], 9);
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
}

TEST(Safetensors, RoundTripAllFloatDtypesAndOthers) {
  std::vector<SafetensorsWriteTensor> tensors;
  tensors.push_back(f32_tensor("a.f32", {2, 2}, {1.0f, -2.5f, 3.25f, 1e-3f}));
  tensors.push_back(f32_tensor("b.f16", {3}, {1.0f, -0.5f, 1024.0f}, SafetensorsDtype::kF16));
  tensors.push_back(f32_tensor("c.bf16", {1, 3}, {1.0f, -3.0f, 256.0f}, SafetensorsDtype::kBF16));
  tensors.push_back({"d.i32", SafetensorsDtype::kI32, {2}, {1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}});
  tensors.push_back({"e.empty", SafetensorsDtype::kF32, {0, 4}, {}});
  tensors.push_back({"f.scalar", SafetensorsDtype::kU8, {}, {42}});
  tensors.push_back({"g.f8", SafetensorsDtype::kF8E4M3, {2}, {0x38, 0x40}});
  Result<std::vector<uint8_t>> bytes = safetensors_to_bytes(tensors, {{"format", "pt"}});
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  uint64_t header_size;
  std::memcpy(&header_size, bytes->data(), 8);
  EXPECT_EQ(header_size % 8, 0u);

  Result<SafetensorsFile> r = SafetensorsFile::from_buffer(*bytes);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const SafetensorsFile& f = *r;
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsTensor& t = f.tensors()[i];  // header order = write order
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.dtype, tensors[i].dtype);
    EXPECT_EQ(t.shape, tensors[i].shape);
    ASSERT_EQ(t.n_bytes, tensors[i].data.size());
    if (t.n_bytes) {
      EXPECT_EQ(std::memcmp(t.data, tensors[i].data.data(), t.n_bytes), 0);
    }
  }
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(*f.find_tensor("a.f32")->to_f32(), (std::vector<float>{1.0f, -2.5f, 3.25f, 1e-3f}));
  EXPECT_EQ(*f.find_tensor("b.f16")->to_f32(), (std::vector<float>{1.0f, -0.5f, 1024.0f}));
  EXPECT_EQ(*f.find_tensor("c.bf16")->to_f32(), (std::vector<float>{1.0f, -3.0f, 256.0f}));
  EXPECT_TRUE(f.find_tensor("e.empty")->to_f32()->empty());
  EXPECT_EQ(f.find_tensor("f.scalar")->n_elements(), 1u);
  EXPECT_EQ(f.find_tensor("g.f8")->to_f32().status().code(), StatusCode::kUnsupported);
  float out[2];
  EXPECT_EQ(f.find_tensor("a.f32")->to_f32(out, 2).code(), StatusCode::kInvalidArgument);

  TempDir dir;
  ASSERT_TRUE(write_safetensors(dir.file("x.safetensors"), tensors).is_ok());
  Result<SafetensorsFile> disk = SafetensorsFile::open(dir.file("x.safetensors"));
  ASSERT_TRUE(disk.is_ok()) << disk.status().to_string();
  EXPECT_EQ(disk->tensors().size(), tensors.size());
  EXPECT_EQ(disk->path(), dir.file("x.safetensors"));
}

TEST(Safetensors, WriterRefusesBadInput) {
  EXPECT_FALSE(safetensors_to_bytes({{"a", SafetensorsDtype::kF32, {2}, {0, 0, 0}}}).is_ok());
  EXPECT_FALSE(safetensors_to_bytes(
                   {{"a", SafetensorsDtype::kU8, {1}, {0}}, {"a", SafetensorsDtype::kU8, {1}, {0}}})
                   .is_ok());
  EXPECT_FALSE(safetensors_to_bytes({{"__metadata__", SafetensorsDtype::kU8, {1}, {0}}}).is_ok());
  EXPECT_FALSE(safetensors_to_bytes({{"", SafetensorsDtype::kU8, {1}, {0}}}).is_ok());
  EXPECT_EQ(safetensors_encode_f32(SafetensorsDtype::kI32, {1.0f}).status().code(),
            StatusCode::kUnsupported);
}

TEST(Safetensors, DtypeNames) {
  for (const char* name : {"BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "I16", "U16", "F16", "BF16",
                           "I32", "U32", "F32", "I64", "U64", "F64"}) {
    std::optional<SafetensorsDtype> d = safetensors_dtype_from_name(name);
    ASSERT_TRUE(d.has_value()) << name;
    EXPECT_EQ(safetensors_dtype_name(*d), name);
  }
  EXPECT_FALSE(safetensors_dtype_from_name("f32").has_value());
  EXPECT_EQ(safetensors_dtype_size(SafetensorsDtype::kBF16), 2u);
  EXPECT_EQ(safetensors_dtype_size(SafetensorsDtype::kF64), 8u);
}

// ---------------------------------------------------------------------------------------------
// Corrupt files

TEST(SafetensorsCorrupt, HeaderSize) {
  expect_error({1, 2, 3}, {"too small"}, StatusCode::kOutOfRange);
  std::vector<uint8_t> huge(16, 0);
  const uint64_t n = (100ull << 20) + 1;
  std::memcpy(huge.data(), &n, 8);
  expect_error(huge, {"header size 104857601", "limit"}, StatusCode::kOutOfRange);
  std::vector<uint8_t> past(16, ' ');
  const uint64_t m = 9;
  std::memcpy(past.data(), &m, 8);
  expect_error(past, {"header size 9", "past end of file"}, StatusCode::kOutOfRange);
  expect_error(make_file("", 0), {"not valid JSON"});
}

TEST(SafetensorsCorrupt, JsonStructure) {
  expect_error(make_file("{\"a\": ", 0), {"not valid JSON"});
  expect_error(make_file("[1, 2]", 0), {"JSON array", "expected an object"});
  expect_error(make_file("{\"a\": 5}", 0), {"tensor 'a'", "expected an object"});
  expect_error(make_file("{\"__metadata__\": {\"k\": 1}}", 0), {"__metadata__", "'k'"});
  expect_error(make_file("{\"__metadata__\": [1]}", 0), {"__metadata__"});
  expect_error(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                         8),
               {"duplicate entry 'a'"});
  std::string deep = "{\"a\":";
  for (int i = 0; i < 100000; ++i) deep += "[";
  expect_error(make_file(deep, 0), {"nested deeper"});
  EXPECT_TRUE(SafetensorsFile::from_buffer(make_file("{}", 0)).is_ok());
  EXPECT_TRUE(SafetensorsFile::from_buffer(make_file("{}      ", 0)).is_ok());  // space padding
}

TEST(SafetensorsCorrupt, TensorEntries) {
  auto one = [](const std::string& entry, size_t data) {
    return make_file("{\"w\":" + entry + "}", data);
  };
  expect_error(one("{\"shape\":[1],\"data_offsets\":[0,4]}", 4), {"tensor 'w'", "dtype"});
  expect_error(one("{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}", 4),
               {"tensor 'w'", "unknown dtype 'Q4'"});
  expect_error(one("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}", 4), {"tensor 'w'", "shape"});
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}", 4),
               {"tensor 'w'", "shape entry -1"});
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}", 4),
               {"tensor 'w'", "shape entry 1.5"});
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[1]}", 4), {"tensor 'w'", "data_offsets"});
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}", 4),
               {"tensor 'w'", "data_offsets"});
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}", 4),
               {"tensor 'w'", "backwards"});
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 3),
               {"tensor 'w'", "past end of the data section (3 bytes)"}, StatusCode::kOutOfRange);
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}", 8),
               {"tensor 'w'", "span 4 bytes", "needs 8"});
  expect_error(one("{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                   "\"data_offsets\":[0,4]}",
                   4),
               {"tensor 'w'", "overflows"}, StatusCode::kOutOfRange);
  expect_error(one("{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,4]}", 4),
               {"tensor 'w'", "overflows"}, StatusCode::kOutOfRange);
  expect_error(
      one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}", 4),
      {"tensor 'w'", "past end"});
  expect_error(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                         8),
               {"overlaps"});
  EXPECT_TRUE(SafetensorsFile::from_buffer(
                  one("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4))
                  .is_ok());
}

TEST(SafetensorsCorrupt, EveryTruncationIsAnError) {
  std::vector<SafetensorsWriteTensor> tensors = {
      f32_tensor("x", {2}, {1, 2}), f32_tensor("y", {3}, {1, 2, 3}, SafetensorsDtype::kBF16)};
  const std::vector<uint8_t> bytes = *safetensors_to_bytes(tensors, {{"k", "v"}});
  ASSERT_TRUE(SafetensorsFile::from_buffer(bytes).is_ok());
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_FALSE(
        SafetensorsFile::from_buffer(std::vector<uint8_t>(bytes.begin(), bytes.begin() + len))
            .is_ok())
        << "prefix of " << len << " bytes opened";
  }
}

TEST(SafetensorsCorrupt, RandomMutationsNeverCrash) {
  std::vector<SafetensorsWriteTensor> tensors = {
      f32_tensor("model.embed_tokens.weight", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}),
      f32_tensor("model.norm.weight", {2}, {1, 1}, SafetensorsDtype::kF16)};
  const std::vector<uint8_t> valid = *safetensors_to_bytes(tensors);
  std::mt19937_64 rng(7);
  int failed = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<uint8_t> m = valid;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) m[rng() % m.size()] = static_cast<uint8_t>(rng());
    Result<SafetensorsFile> r = SafetensorsFile::from_buffer(std::move(m));
    if (!r.is_ok()) {
      ++failed;
      continue;
    }
    for (const SafetensorsTensor& t : r->tensors()) {
      uint64_t sum = 0;
      for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
      volatile uint64_t sink = sum;
      (void)sink;
      Result<std::vector<float>> fl = t.to_f32();
      if (fl.is_ok()) {
        EXPECT_EQ(fl->size(), t.n_elements());
      }
    }
  }
  EXPECT_GT(failed, 0);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

class SafetensorsCheckpointTest : public ::testing::Test {
 protected:
  void write_shards() {
    ASSERT_TRUE(write_safetensors(dir_.file("model-00001-of-00002.safetensors"),
                                  {f32_tensor("a", {2}, {1, 2}), f32_tensor("b", {1}, {3})})
                    .is_ok());
    ASSERT_TRUE(write_safetensors(dir_.file("model-00002-of-00002.safetensors"),
                                  {f32_tensor("c", {3}, {4, 5, 6}, SafetensorsDtype::kBF16)})
                    .is_ok());
  }
  void write_index(std::map<std::string, std::string> wm) {
    ASSERT_TRUE(write_safetensors_index(dir_.file("model.safetensors.index.json"), wm).is_ok());
  }
  std::map<std::string, std::string> good_map() {
    return {{"a", "model-00001-of-00002.safetensors"},
            {"b", "model-00001-of-00002.safetensors"},
            {"c", "model-00002-of-00002.safetensors"}};
  }
  TempDir dir_;
};

TEST_F(SafetensorsCheckpointTest, ShardedViaIndex) {
  write_shards();
  write_index(good_map());
  for (const std::string& path : {dir_.path(), dir_.file("model.safetensors.index.json")}) {
    Result<SafetensorsCheckpoint> r = SafetensorsCheckpoint::open(path);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->shards().size(), 2u);
    EXPECT_EQ(r->tensors().size(), 3u);
    EXPECT_EQ(r->directory(), dir_.path());
    ASSERT_NE(r->find_tensor("c"), nullptr);
    EXPECT_EQ(*r->find_tensor("c")->to_f32(), (std::vector<float>{4, 5, 6}));
    EXPECT_EQ(*r->find_tensor("a")->to_f32(), (std::vector<float>{1, 2}));
    EXPECT_EQ(r->find_tensor("zzz"), nullptr);
  }
}

TEST_F(SafetensorsCheckpointTest, IndexErrors) {
  write_shards();
  auto wm = good_map();
  wm["c"] = "model-00001-of-00002.safetensors";  // wrong shard
  write_index(wm);
  Result<SafetensorsCheckpoint> r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("tensor 'c'"), std::string::npos) << r.status().message();

  wm = good_map();
  wm["d"] = "model-00003-of-00002.safetensors";  // missing shard
  write_index(wm);
  r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("model-00003-of-00002.safetensors"), std::string::npos);

  wm = good_map();
  wm["a"] = "../model-00001-of-00002.safetensors";  // escapes the directory
  write_index(wm);
  r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("not a plain file name"), std::string::npos);

  testing::write_file_bytes(dir_.file("model.safetensors.index.json"), {'{', '}'});
  r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("weight_map"), std::string::npos);

  testing::write_file_bytes(dir_.file("model.safetensors.index.json"), {'{', '"'});
  r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("not valid JSON"), std::string::npos);
}

TEST_F(SafetensorsCheckpointTest, DirectoryWithoutIndex) {
  EXPECT_EQ(SafetensorsCheckpoint::open(dir_.path()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsCheckpoint::open(dir_.file("nope")).status().code(), StatusCode::kNotFound);
  write_shards();
  // No index: every *.safetensors file, sorted.
  Result<SafetensorsCheckpoint> r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->tensors().size(), 3u);
  EXPECT_EQ(r->tensors()[0].name, "a");
  // A tensor in two shards is refused.
  ASSERT_TRUE(
      write_safetensors(dir_.file("model-extra.safetensors"), {f32_tensor("a", {1}, {9})}).is_ok());
  r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("tensor 'a'"), std::string::npos);
  // model.safetensors takes precedence over other files.
  ASSERT_TRUE(
      write_safetensors(dir_.file("model.safetensors"), {f32_tensor("only", {1}, {1})}).is_ok());
  r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->tensors().size(), 1u);
  EXPECT_EQ(r->tensors()[0].name, "only");
  // A single file path.
  r = SafetensorsCheckpoint::open(dir_.file("model-00002-of-00002.safetensors"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->tensors().size(), 1u);
  EXPECT_EQ(r->directory(), dir_.path());
}

TEST_F(SafetensorsCheckpointTest, CorruptShardNamesThePath) {
  testing::write_file_bytes(dir_.file("model.safetensors"), {1, 0, 0, 0, 0, 0, 0, 0, '['});
  Result<SafetensorsCheckpoint> r = SafetensorsCheckpoint::open(dir_.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace sgl::model
