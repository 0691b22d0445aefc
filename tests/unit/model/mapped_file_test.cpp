#include "support/mapped_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_files.h"

namespace sgl {
namespace {

using model::testing::TempDir;
using model::testing::write_file_bytes;

TEST(MappedFile, MapsContents) {
  TempDir dir;
  const std::vector<uint8_t> bytes = {'h', 'e', 'l', 'l', 'o', 0, 255};
  write_file_bytes(dir.file("a.bin"), bytes);
  Result<MappedFile> f = MappedFile::open(dir.file("a.bin"));
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  ASSERT_EQ(f->size(), bytes.size());
  EXPECT_EQ(std::memcmp(f->data(), bytes.data(), bytes.size()), 0);
  EXPECT_EQ(f->path(), dir.file("a.bin"));
  f->prefetch();

  // Moving keeps the mapping valid and empties the source.
  MappedFile moved = std::move(f).value();
  EXPECT_EQ(moved.size(), bytes.size());
  EXPECT_EQ(moved.data()[4], 'o');
  MappedFile other;
  EXPECT_EQ(other.size(), 0u);
  EXPECT_NE(other.data(), nullptr);
  other = std::move(moved);
  EXPECT_EQ(other.data()[6], 255);
  EXPECT_EQ(moved.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is specified
}

TEST(MappedFile, EmptyFile) {
  TempDir dir;
  write_file_bytes(dir.file("empty"), {});
  Result<MappedFile> f = MappedFile::open(dir.file("empty"));
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->size(), 0u);
  EXPECT_NE(f->data(), nullptr);
}

TEST(MappedFile, ErrorsNameThePathAndReason) {
  Result<MappedFile> f = MappedFile::open("/nonexistent/x.bin");
  ASSERT_FALSE(f.is_ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/x.bin"), std::string::npos);
  EXPECT_NE(f.status().message().find("No such file"), std::string::npos);

  TempDir dir;
  f = MappedFile::open(dir.path());
  ASSERT_FALSE(f.is_ok());
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("directory"), std::string::npos);
}

}  // namespace
}  // namespace sgl
