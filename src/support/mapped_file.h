// MappedFile: a read-only memory mapping of a whole file, owned and move-only. Model files (GGUF,
// safetensors) are read through it so that tensor data is never copied: tensor views point into
// the mapping and stay valid as long as the MappedFile (or the object owning it) lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "support/status.h"

namespace sgl {

class MappedFile {
 public:
  // Maps `path` read-only. Errors (kNotFound, kIoError, kInvalidArgument for a directory or
  // other non-regular file) name the path and the operating system's reason. An empty file maps
  // to size() == 0 and a non-null data() that must not be dereferenced.
  static Result<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // The mapped bytes [data(), data() + size()). Never null (also for an empty file or a
  // default-constructed MappedFile).
  const uint8_t* data() const;
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Hints that the whole mapping will be read soon (madvise WILLNEED); best effort, no error.
  void prefetch() const;

 private:
  void reset();

  void* addr_ = nullptr;  // mmap'ed region, or null when size_ == 0
  size_t size_ = 0;
  std::string path_;
};

}  // namespace sgl
