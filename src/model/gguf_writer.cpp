#include "model/gguf_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "support/utf8.h"

namespace sgl::model {
namespace {

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>* out) : out_(out) {}
  template <typename T>
  void put(T v) {
    const size_t n = out_->size();
    out_->resize(n + sizeof(T));
    std::memcpy(out_->data() + n, &v, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_->insert(out_->end(), s.begin(), s.end());
  }
  void put_value(const GgufValue& v) {
    switch (v.type()) {
      case GgufValueType::kU8:
        put<uint8_t>(static_cast<uint8_t>(*v.as_u64()));
        break;
      case GgufValueType::kI8:
        put<int8_t>(static_cast<int8_t>(*v.as_i64()));
        break;
      case GgufValueType::kU16:
        put<uint16_t>(static_cast<uint16_t>(*v.as_u64()));
        break;
      case GgufValueType::kI16:
        put<int16_t>(static_cast<int16_t>(*v.as_i64()));
        break;
      case GgufValueType::kU32:
        put<uint32_t>(static_cast<uint32_t>(*v.as_u64()));
        break;
      case GgufValueType::kI32:
        put<int32_t>(static_cast<int32_t>(*v.as_i64()));
        break;
      case GgufValueType::kU64:
        put<uint64_t>(*v.as_u64());
        break;
      case GgufValueType::kI64:
        put<int64_t>(*v.as_i64());
        break;
      case GgufValueType::kF32:
        put<float>(static_cast<float>(*v.as_f64()));
        break;
      case GgufValueType::kF64:
        put<double>(*v.as_f64());
        break;
      case GgufValueType::kBool:
        put<uint8_t>(*v.as_bool() ? 1 : 0);
        break;
      case GgufValueType::kString:
        put_string(*v.as_string_view());
        break;
      case GgufValueType::kArray:
        put<uint32_t>(static_cast<uint32_t>(v.array_type()));
        put<uint64_t>(v.size());
        for (const GgufValue& item : v.items()) put_value(item);
        break;
    }
  }
  void pad_to(uint64_t alignment) {
    while (out_->size() % alignment != 0) out_->push_back(0);
  }

 private:
  std::vector<uint8_t>* out_;
};

int array_depth(const GgufValue& v) {
  if (!v.is_array()) return 0;
  int inner = 0;
  for (const GgufValue& item : v.items()) inner = std::max(inner, array_depth(item));
  return 1 + inner;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void GgufWriter::fail(Status s) {
  if (status_.is_ok()) status_ = std::move(s);
}

bool GgufWriter::has_key(const std::string& key) const {
  for (const auto& kv : kvs_)
    if (kv.first == key) return true;
  return false;
}

GgufWriter& GgufWriter::set_version(uint32_t version) {
  if (version != 2 && version != 3)
    fail(invalid_argument("gguf writer: version " + std::to_string(version) +
                          " (only 2 and 3 can be written)"));
  else
    version_ = version;
  return *this;
}

GgufWriter& GgufWriter::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    fail(invalid_argument("gguf writer: alignment " + std::to_string(alignment) +
                          " is not a nonzero power of two"));
    return *this;
  }
  if (!tensors_.empty()) {
    fail(invalid_argument("gguf writer: set the alignment before adding tensors"));
    return *this;
  }
  alignment_ = alignment;
  for (auto& kv : kvs_) {
    if (kv.first == "general.alignment") {
      kv.second = GgufValue::make_u32(alignment);
      return *this;
    }
  }
  kvs_.emplace_back("general.alignment", GgufValue::make_u32(alignment));
  return *this;
}

GgufWriter& GgufWriter::add_kv(std::string key, GgufValue value) {
  if (key.empty() || !utf8::is_valid(key)) {
    fail(invalid_argument("gguf writer: key '" + key + "' is empty or not valid UTF-8"));
    return *this;
  }
  if (key == "general.alignment") {
    if (value.type() != GgufValueType::kU32) {
      fail(invalid_argument("gguf writer: general.alignment must be u32"));
      return *this;
    }
    if (has_key(key)) {
      fail(invalid_argument("gguf writer: duplicate key 'general.alignment'"));
      return *this;
    }
    return set_alignment(static_cast<uint32_t>(*value.as_u64()));
  }
  if (has_key(key)) {
    fail(invalid_argument("gguf writer: duplicate key '" + key + "'"));
    return *this;
  }
  if (array_depth(value) > GgufFile::kMaxArrayDepth) {
    fail(invalid_argument("gguf writer: key '" + key + "': arrays nested deeper than " +
                          std::to_string(GgufFile::kMaxArrayDepth)));
    return *this;
  }
  kvs_.emplace_back(std::move(key), std::move(value));
  return *this;
}

GgufWriter& GgufWriter::add_tensor(std::string name, std::vector<uint64_t> shape, GgmlType type,
                                   std::vector<uint8_t> data) {
  const std::string where = "gguf writer: tensor '" + name + "': ";
  if (name.empty() || !utf8::is_valid(name)) {
    fail(invalid_argument(where + "name is empty or not valid UTF-8"));
    return *this;
  }
  for (const Tensor& t : tensors_) {
    if (t.name == name) {
      fail(invalid_argument(where + "duplicate tensor name"));
      return *this;
    }
  }
  if (shape.empty() || shape.size() > GgufFile::kMaxDims) {
    fail(invalid_argument(where + std::to_string(shape.size()) + " dimensions (must be 1..4)"));
    return *this;
  }
  uint64_t rows = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) {
      fail(invalid_argument(where + "dimension " + std::to_string(d) + " is 0"));
      return *this;
    }
    if (d > 0 && __builtin_mul_overflow(rows, shape[d], &rows)) {
      fail(out_of_range(where + "element count overflows"));
      return *this;
    }
  }
  const std::optional<uint64_t> row_bytes = ggml_row_size(type, shape[0]);
  uint64_t n_bytes;
  if (!row_bytes || __builtin_mul_overflow(*row_bytes, rows, &n_bytes)) {
    fail(invalid_argument(where + "shape[0] = " + std::to_string(shape[0]) + " does not fit type " +
                          std::string(ggml_type_name(type))));
    return *this;
  }
  if (n_bytes != data.size()) {
    fail(invalid_argument(where + "data has " + std::to_string(data.size()) +
                          " bytes, shape needs " + std::to_string(n_bytes)));
    return *this;
  }
  const uint64_t offset = data_size_;
  data_size_ = align_up(offset + n_bytes, alignment_);
  tensors_.push_back(Tensor{std::move(name), std::move(shape), type, std::move(data), offset});
  return *this;
}

GgufWriter& GgufWriter::add_tensor(std::string name, std::vector<uint64_t> shape, GgmlType type,
                                   const void* data, size_t n_bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  return add_tensor(std::move(name), std::move(shape), type,
                    n_bytes ? std::vector<uint8_t>(p, p + n_bytes) : std::vector<uint8_t>());
}

GgufWriter& GgufWriter::add_f32_tensor(std::string name, std::vector<uint64_t> shape,
                                       const std::vector<float>& values) {
  return add_tensor(std::move(name), std::move(shape), GgmlType::kF32, values.data(),
                    values.size() * sizeof(float));
}

std::vector<uint8_t> GgufWriter::header_bytes() const {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  ByteSink sink(&out);
  sink.put<uint32_t>(version_);
  sink.put<uint64_t>(tensors_.size());
  sink.put<uint64_t>(kvs_.size());
  for (const auto& [key, value] : kvs_) {
    sink.put_string(key);
    sink.put<uint32_t>(static_cast<uint32_t>(value.type()));
    sink.put_value(value);
  }
  for (const Tensor& t : tensors_) {
    sink.put_string(t.name);
    sink.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (uint64_t d : t.shape) sink.put<uint64_t>(d);
    sink.put<uint32_t>(static_cast<uint32_t>(t.type));
    sink.put<uint64_t>(t.offset);
  }
  if (!tensors_.empty()) sink.pad_to(alignment_);
  return out;
}

Result<std::vector<uint8_t>> GgufWriter::to_bytes() const {
  if (!status_.is_ok()) return status_;
  std::vector<uint8_t> out = header_bytes();
  const size_t data_start = out.size();
  out.resize(data_start + data_size_, 0);
  for (const Tensor& t : tensors_)
    if (!t.data.empty())
      std::memcpy(out.data() + data_start + t.offset, t.data.data(), t.data.size());
  return out;
}

Status GgufWriter::write_file(const std::string& path) const {
  if (!status_.is_ok()) return status_;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return io_error("gguf writer: cannot create '" + path + "': " + std::strerror(errno));
  auto write = [&](const void* p, size_t n) -> bool {
    return n == 0 || std::fwrite(p, 1, n, f.get()) == n;
  };
  const std::vector<uint8_t> header = header_bytes();
  bool ok = write(header.data(), header.size());
  static const uint8_t kZeros[256] = {};
  uint64_t pos = 0;
  for (const Tensor& t : tensors_) {
    if (!ok) break;
    ok = write(t.data.data(), t.data.size());
    pos = t.offset + t.data.size();
    const uint64_t padded = align_up(pos, alignment_);
    for (uint64_t left = padded - pos; ok && left > 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, sizeof kZeros));
      ok = write(kZeros, n);
      left -= n;
    }
  }
  if (!ok) return io_error("gguf writer: writing '" + path + "' failed: " + std::strerror(errno));
  FILE* raw = f.release();
  if (std::fclose(raw) != 0)
    return io_error("gguf writer: closing '" + path + "' failed: " + std::strerror(errno));
  return Status::ok();
}

}  // namespace sgl::model
