#include "model/gguf.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "support/utf8.h"

namespace sgl::model {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint64_t kMaxNameLength = 65535;  // keys and tensor names
constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};

std::string num(uint64_t v) { return std::to_string(v); }

std::string quote_name(std::string_view s) { return quote_for_message(s); }

std::string format_double(double v, bool as_float) {
  char buf[64];
  std::to_chars_result r = as_float ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(v))
                                    : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string type_description(const GgufValue& v) {
  if (v.is_array()) return "array of " + gguf_value_type_name(v.array_type());
  return gguf_value_type_name(v.type());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Value types

std::string gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8:
      return "u8";
    case GgufValueType::kI8:
      return "i8";
    case GgufValueType::kU16:
      return "u16";
    case GgufValueType::kI16:
      return "i16";
    case GgufValueType::kU32:
      return "u32";
    case GgufValueType::kI32:
      return "i32";
    case GgufValueType::kF32:
      return "f32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kU64:
      return "u64";
    case GgufValueType::kI64:
      return "i64";
    case GgufValueType::kF64:
      return "f64";
  }
  return "type#" + std::to_string(static_cast<uint32_t>(type));
}

bool gguf_value_type_is_valid(uint32_t id) { return id <= 12; }

size_t gguf_value_type_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

namespace {
bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::kI8 || t == GgufValueType::kI16 || t == GgufValueType::kI32 ||
         t == GgufValueType::kI64;
}
bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kU16:
    case GgufValueType::kI16:
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kU64:
    case GgufValueType::kI64:
      return true;
    default:
      return false;
  }
}
bool is_float_type(GgufValueType t) { return t == GgufValueType::kF32 || t == GgufValueType::kF64; }
}  // namespace

// ---------------------------------------------------------------------------------------------
// GgufValue

GgufValue GgufValue::scalar(GgufValueType type, uint64_t bits) {
  GgufValue v;
  v.type_ = type;
  v.bits_ = bits;
  return v;
}

GgufValue GgufValue::make_u8(uint8_t v) { return scalar(GgufValueType::kU8, v); }
GgufValue GgufValue::make_i8(int8_t v) {
  return scalar(GgufValueType::kI8, static_cast<uint64_t>(static_cast<int64_t>(v)));
}
GgufValue GgufValue::make_u16(uint16_t v) { return scalar(GgufValueType::kU16, v); }
GgufValue GgufValue::make_i16(int16_t v) {
  return scalar(GgufValueType::kI16, static_cast<uint64_t>(static_cast<int64_t>(v)));
}
GgufValue GgufValue::make_u32(uint32_t v) { return scalar(GgufValueType::kU32, v); }
GgufValue GgufValue::make_i32(int32_t v) {
  return scalar(GgufValueType::kI32, static_cast<uint64_t>(static_cast<int64_t>(v)));
}
GgufValue GgufValue::make_u64(uint64_t v) { return scalar(GgufValueType::kU64, v); }
GgufValue GgufValue::make_i64(int64_t v) {
  return scalar(GgufValueType::kI64, static_cast<uint64_t>(v));
}
GgufValue GgufValue::make_f32(float v) {
  return scalar(GgufValueType::kF32, std::bit_cast<uint64_t>(static_cast<double>(v)));
}
GgufValue GgufValue::make_f64(double v) {
  return scalar(GgufValueType::kF64, std::bit_cast<uint64_t>(v));
}
GgufValue GgufValue::make_bool(bool v) { return scalar(GgufValueType::kBool, v ? 1 : 0); }
GgufValue GgufValue::make_string(std::string v) {
  GgufValue out;
  out.type_ = GgufValueType::kString;
  out.str_ = std::move(v);
  return out;
}

Result<GgufValue> GgufValue::make_array(GgufValueType element_type, std::vector<GgufValue> items) {
  if (!gguf_value_type_is_valid(static_cast<uint32_t>(element_type)))
    return invalid_argument("gguf: array element type " + gguf_value_type_name(element_type) +
                            " is not a value type");
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].type_ != element_type)
      return invalid_argument("gguf: array of " + gguf_value_type_name(element_type) + ": item " +
                              std::to_string(i) + " has type " +
                              gguf_value_type_name(items[i].type_));
  }
  GgufValue out;
  out.type_ = GgufValueType::kArray;
  out.array_type_ = element_type;
  out.items_ = std::move(items);
  return out;
}

namespace {
template <typename T, typename Make>
GgufValue make_typed_array(GgufValueType et, const std::vector<T>& items, Make make) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (const T& v : items) values.push_back(make(v));
  return GgufValue::make_array(et, std::move(values)).value();  // types match by construction
}
}  // namespace

GgufValue GgufValue::make_string_array(const std::vector<std::string>& items) {
  return make_typed_array(GgufValueType::kString, items,
                          [](const std::string& s) { return make_string(s); });
}
GgufValue GgufValue::make_i32_array(const std::vector<int32_t>& items) {
  return make_typed_array(GgufValueType::kI32, items, [](int32_t v) { return make_i32(v); });
}
GgufValue GgufValue::make_u32_array(const std::vector<uint32_t>& items) {
  return make_typed_array(GgufValueType::kU32, items, [](uint32_t v) { return make_u32(v); });
}
GgufValue GgufValue::make_f32_array(const std::vector<float>& items) {
  return make_typed_array(GgufValueType::kF32, items, [](float v) { return make_f32(v); });
}

bool GgufValue::is_integer() const { return is_integer_type(type_); }
bool GgufValue::is_float() const { return is_float_type(type_); }

std::optional<uint64_t> GgufValue::as_u64() const {
  if (!is_integer()) return std::nullopt;
  if (is_signed_type(type_) && static_cast<int64_t>(bits_) < 0) return std::nullopt;
  return bits_;
}

std::optional<int64_t> GgufValue::as_i64() const {
  if (!is_integer()) return std::nullopt;
  if (!is_signed_type(type_) && bits_ > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(bits_);
}

std::optional<double> GgufValue::as_f64() const {
  if (is_float()) return std::bit_cast<double>(bits_);
  if (is_integer()) {
    if (is_signed_type(type_)) return static_cast<double>(static_cast<int64_t>(bits_));
    return static_cast<double>(bits_);
  }
  return std::nullopt;
}

std::optional<bool> GgufValue::as_bool() const {
  if (type_ != GgufValueType::kBool) return std::nullopt;
  return bits_ != 0;
}

std::optional<std::string> GgufValue::as_string() const {
  if (type_ != GgufValueType::kString) return std::nullopt;
  return str_;
}

std::optional<std::string_view> GgufValue::as_string_view() const {
  if (type_ != GgufValueType::kString) return std::nullopt;
  return std::string_view(str_);
}

const GgufValue& GgufValue::at(size_t i) const {
  SGL_CHECK(i < items_.size(), "GgufValue::at: index out of range");
  return items_[i];
}

std::optional<std::vector<std::string>> GgufValue::as_string_array() const {
  if (!is_array() || array_type_ != GgufValueType::kString) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const GgufValue& v : items_) out.push_back(v.str_);
  return out;
}

std::optional<std::vector<float>> GgufValue::as_f32_array() const {
  if (!is_array() || !is_float_type(array_type_)) return std::nullopt;
  std::vector<float> out;
  out.reserve(items_.size());
  for (const GgufValue& v : items_)
    out.push_back(static_cast<float>(std::bit_cast<double>(v.bits_)));
  return out;
}

std::optional<std::vector<int32_t>> GgufValue::as_i32_array() const {
  if (!is_array() || !is_integer_type(array_type_)) return std::nullopt;
  std::vector<int32_t> out;
  out.reserve(items_.size());
  const bool is_signed = is_signed_type(array_type_);
  for (const GgufValue& v : items_) {
    if (is_signed) {
      const int64_t x = static_cast<int64_t>(v.bits_);
      if (x < INT32_MIN || x > INT32_MAX) return std::nullopt;
      out.push_back(static_cast<int32_t>(x));
    } else {
      if (v.bits_ > static_cast<uint64_t>(INT32_MAX)) return std::nullopt;
      out.push_back(static_cast<int32_t>(v.bits_));
    }
  }
  return out;
}

std::string GgufValue::to_string(size_t max_items) const {
  switch (type_) {
    case GgufValueType::kBool:
      return bits_ ? "true" : "false";
    case GgufValueType::kF32:
      return format_double(std::bit_cast<double>(bits_), true);
    case GgufValueType::kF64:
      return format_double(std::bit_cast<double>(bits_), false);
    case GgufValueType::kString: {
      std::string out = "\"";
      for (unsigned char c : str_) {
        if (c == '"' || c == '\\') {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c == '\n') {
          out += "\\n";
        } else if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
      }
      return out + "\"";
    }
    case GgufValueType::kArray: {
      std::string out = "[";
      const size_t n = std::min(items_.size(), max_items);
      for (size_t i = 0; i < n; ++i) {
        if (i) out += ", ";
        out += items_[i].to_string(max_items);
      }
      if (n < items_.size())
        out += (n ? ", ... " : "... ") + std::to_string(items_.size() - n) + " more";
      return out + "]";
    }
    default:
      if (is_signed_type(type_)) return std::to_string(static_cast<int64_t>(bits_));
      return std::to_string(bits_);
  }
}

}  // namespace sgl::model

// ---------------------------------------------------------------------------------------------
// Parser

namespace sgl::model {

// Reads and validates a whole GGUF header from [base, base + size). Every read goes through
// need(), which checks the remaining byte count first; counts are bounded by the remaining bytes
// before anything is allocated for them.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& file) : f_(file), p_(file.base_), size_(file.size_) {}

  Status run();

 private:
  // The "gguf: <context>: " prefix of error messages.
  std::string prefix() const { return ctx_.empty() ? "gguf: " : "gguf: " + ctx_ + ": "; }
  uint64_t remaining() const { return size_ - pos_; }

  Status need(uint64_t n, const char* what) const {
    if (n <= remaining()) return Status::ok();
    return out_of_range(prefix() + what + " at offset " + num(pos_) + " needs " + num(n) +
                        " bytes but only " + num(remaining()) + " remain (file size " + num(size_) +
                        ", truncated?)");
  }
  template <typename T>
  T take() {  // REQUIRES: need(sizeof(T)) succeeded
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <typename T>
  Status read(T* out, const char* what) {
    SGL_RETURN_IF_ERROR(need(sizeof(T), what));
    *out = take<T>();
    return Status::ok();
  }
  Status read_string(std::string* out, const char* what) {
    uint64_t len;
    SGL_RETURN_IF_ERROR(read(&len, what));
    if (len > remaining())
      return out_of_range(prefix() + what + " length " + num(len) + " at offset " + num(pos_ - 8) +
                          " runs past end of file (" + num(remaining()) + " bytes remain)");
    out->assign(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return Status::ok();
  }

  Status parse_header();
  Status parse_kv(uint64_t index);
  Status parse_value(GgufValueType type, int depth, GgufValue* out);
  Status parse_array(int depth, GgufValue* out);
  Status parse_alignment();
  Status parse_tensor_info(uint64_t index);
  Status place_tensors();

  GgufFile& f_;
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string ctx_;  // what is being parsed, for error messages ("key 'x'", "tensor 'y'")
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  uint64_t array_elements_ = 0;  // total over all metadata arrays so far
};

Status GgufParser::run() {
  SGL_RETURN_IF_ERROR(parse_header());
  // Counts are bounded by the file size, but reserve no more than real files need: a hostile
  // count must not turn into a large allocation before its entries are seen to exist.
  f_.metadata_.reserve(static_cast<size_t>(std::min<uint64_t>(kv_count_, 1024)));
  for (uint64_t i = 0; i < kv_count_; ++i) SGL_RETURN_IF_ERROR(parse_kv(i));
  ctx_.clear();
  SGL_RETURN_IF_ERROR(parse_alignment());
  f_.tensors_.reserve(static_cast<size_t>(std::min<uint64_t>(tensor_count_, 4096)));
  for (uint64_t i = 0; i < tensor_count_; ++i) SGL_RETURN_IF_ERROR(parse_tensor_info(i));
  ctx_.clear();
  return place_tensors();
}

Status GgufParser::parse_header() {
  ctx_ = "header";
  SGL_RETURN_IF_ERROR(need(4, "magic"));
  if (std::memcmp(p_, kMagic, 4) != 0) {
    std::string got;
    for (int i = 0; i < 4; ++i) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%02X", p_[i]);
      got += buf;
    }
    return invalid_argument("gguf: bad magic (bytes " + got +
                            "); not a GGUF file (expected \"GGUF\")");
  }
  pos_ = 4;
  uint32_t version;
  SGL_RETURN_IF_ERROR(read(&version, "version"));
  if (version == 1)
    return unsupported(
        "gguf: version 1 is not supported (32-bit counts, obsolete); "
        "only versions 2 and 3 are read - reconvert the model");
  if (version != 2 && version != 3) {
    std::string msg = "gguf: version " + num(version) + " is not supported (only 2 and 3)";
    if ((version & 0xFFFF) == 0 && (version >> 16) != 0) msg += "; a big-endian file?";
    return unsupported(msg);
  }
  f_.version_ = version;
  SGL_RETURN_IF_ERROR(read(&tensor_count_, "tensor_count"));
  SGL_RETURN_IF_ERROR(read(&kv_count_, "kv_count"));
  // Smallest possible entries: a kv is an 8-byte key length + 1 key byte + 4-byte type + 1-byte
  // value; a tensor info is 8 + 1 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
  constexpr uint64_t kMinKv = 8 + 1 + 4 + 1;
  constexpr uint64_t kMinTensor = 8 + 1 + 4 + 8 + 4 + 8;
  if (kv_count_ > remaining() / kMinKv)
    return out_of_range("gguf: header: kv_count " + num(kv_count_) +
                        " cannot fit in the remaining " + num(remaining()) + " bytes");
  if (tensor_count_ > remaining() / kMinTensor)
    return out_of_range("gguf: header: tensor_count " + num(tensor_count_) +
                        " cannot fit in the remaining " + num(remaining()) + " bytes");
  return Status::ok();
}

Status GgufParser::parse_kv(uint64_t index) {
  ctx_ = "key #" + num(index);
  std::string key;
  SGL_RETURN_IF_ERROR(read_string(&key, "key"));
  if (key.empty()) return invalid_argument(prefix() + "empty key");
  if (key.size() > kMaxNameLength)
    return invalid_argument(prefix() + "key of " + num(key.size()) + " bytes is too long");
  if (!utf8::is_valid(key))
    return invalid_argument(prefix() + "key " + quote_name(key) + " is not valid UTF-8");
  ctx_ = "key " + quote_name(key);
  if (f_.key_index_.count(key))
    return invalid_argument(prefix() + "duplicate key (also at index " +
                            num(f_.key_index_.find(key)->second) + ")");
  uint32_t type_id;
  SGL_RETURN_IF_ERROR(read(&type_id, "value type"));
  if (!gguf_value_type_is_valid(type_id))
    return invalid_argument(prefix() + "unknown value type " + num(type_id));
  GgufValue value;
  SGL_RETURN_IF_ERROR(parse_value(static_cast<GgufValueType>(type_id), 0, &value));
  f_.key_index_.emplace(key, f_.metadata_.size());
  f_.metadata_.emplace_back(std::move(key), std::move(value));
  return Status::ok();
}

Status GgufParser::parse_value(GgufValueType type, int depth, GgufValue* out) {
  out->type_ = type;
  switch (type) {
    case GgufValueType::kU8: {
      uint8_t v;
      SGL_RETURN_IF_ERROR(read(&v, "u8 value"));
      out->bits_ = v;
      return Status::ok();
    }
    case GgufValueType::kI8: {
      int8_t v;
      SGL_RETURN_IF_ERROR(read(&v, "i8 value"));
      out->bits_ = static_cast<uint64_t>(static_cast<int64_t>(v));
      return Status::ok();
    }
    case GgufValueType::kU16: {
      uint16_t v;
      SGL_RETURN_IF_ERROR(read(&v, "u16 value"));
      out->bits_ = v;
      return Status::ok();
    }
    case GgufValueType::kI16: {
      int16_t v;
      SGL_RETURN_IF_ERROR(read(&v, "i16 value"));
      out->bits_ = static_cast<uint64_t>(static_cast<int64_t>(v));
      return Status::ok();
    }
    case GgufValueType::kU32: {
      uint32_t v;
      SGL_RETURN_IF_ERROR(read(&v, "u32 value"));
      out->bits_ = v;
      return Status::ok();
    }
    case GgufValueType::kI32: {
      int32_t v;
      SGL_RETURN_IF_ERROR(read(&v, "i32 value"));
      out->bits_ = static_cast<uint64_t>(static_cast<int64_t>(v));
      return Status::ok();
    }
    case GgufValueType::kU64: {
      SGL_RETURN_IF_ERROR(read(&out->bits_, "u64 value"));
      return Status::ok();
    }
    case GgufValueType::kI64: {
      SGL_RETURN_IF_ERROR(read(&out->bits_, "i64 value"));
      return Status::ok();
    }
    case GgufValueType::kF32: {
      float v;
      SGL_RETURN_IF_ERROR(read(&v, "f32 value"));
      out->bits_ = std::bit_cast<uint64_t>(static_cast<double>(v));
      return Status::ok();
    }
    case GgufValueType::kF64: {
      SGL_RETURN_IF_ERROR(read(&out->bits_, "f64 value"));
      return Status::ok();
    }
    case GgufValueType::kBool: {
      uint8_t v;
      SGL_RETURN_IF_ERROR(read(&v, "bool value"));
      if (v > 1)
        return invalid_argument(prefix() + "bool value " + num(v) + " at offset " + num(pos_ - 1) +
                                " (must be 0 or 1)");
      out->bits_ = v;
      return Status::ok();
    }
    case GgufValueType::kString:
      return read_string(&out->str_, "string value");
    case GgufValueType::kArray:
      return parse_array(depth + 1, out);
  }
  return invalid_argument(prefix() + "unknown value type " + num(static_cast<uint32_t>(type)));
}

Status GgufParser::parse_array(int depth, GgufValue* out) {
  if (depth > GgufFile::kMaxArrayDepth)
    return invalid_argument(prefix() + "arrays nested deeper than " +
                            num(GgufFile::kMaxArrayDepth) + " levels");
  uint32_t type_id;
  SGL_RETURN_IF_ERROR(read(&type_id, "array element type"));
  if (!gguf_value_type_is_valid(type_id))
    return invalid_argument(prefix() + "unknown array element type " + num(type_id));
  const auto et = static_cast<GgufValueType>(type_id);
  uint64_t count;
  SGL_RETURN_IF_ERROR(read(&count, "array count"));
  const uint64_t min_size = et == GgufValueType::kString  ? 8
                            : et == GgufValueType::kArray ? 12
                                                          : gguf_value_type_size(et);
  if (count > remaining() / min_size)
    return out_of_range(prefix() + "array of " + gguf_value_type_name(et) + " count " + num(count) +
                        " cannot fit in the remaining " + num(remaining()) + " bytes");
  if (count > GgufFile::kMaxMetadataElements - array_elements_)
    return Status(StatusCode::kResourceExhausted, prefix() + "metadata arrays hold more than " +
                                                      num(GgufFile::kMaxMetadataElements) +
                                                      " elements in total");
  array_elements_ += count;
  out->array_type_ = et;
  out->items_.resize(static_cast<size_t>(count));
  const size_t elem_size = gguf_value_type_size(et);
  if (elem_size != 0) {
    // Scalars: the whole array is known to be present, so decode without per-element checks
    // (except bools, whose byte must be 0 or 1).
    for (GgufValue& item : out->items_) {
      item.type_ = et;
      switch (et) {
        case GgufValueType::kU8:
          item.bits_ = take<uint8_t>();
          break;
        case GgufValueType::kI8:
          item.bits_ = static_cast<uint64_t>(static_cast<int64_t>(take<int8_t>()));
          break;
        case GgufValueType::kBool:
          item.bits_ = take<uint8_t>();
          if (item.bits_ > 1)
            return invalid_argument(prefix() + "bool array element " + num(item.bits_) +
                                    " at offset " + num(pos_ - 1) + " (must be 0 or 1)");
          break;
        case GgufValueType::kU16:
          item.bits_ = take<uint16_t>();
          break;
        case GgufValueType::kI16:
          item.bits_ = static_cast<uint64_t>(static_cast<int64_t>(take<int16_t>()));
          break;
        case GgufValueType::kU32:
          item.bits_ = take<uint32_t>();
          break;
        case GgufValueType::kI32:
          item.bits_ = static_cast<uint64_t>(static_cast<int64_t>(take<int32_t>()));
          break;
        case GgufValueType::kF32:
          item.bits_ = std::bit_cast<uint64_t>(static_cast<double>(take<float>()));
          break;
        default:  // u64, i64, f64: stored as their 64-bit pattern
          item.bits_ = take<uint64_t>();
          break;
      }
    }
    return Status::ok();
  }
  for (GgufValue& item : out->items_) SGL_RETURN_IF_ERROR(parse_value(et, depth, &item));
  return Status::ok();
}

Status GgufParser::parse_alignment() {
  const GgufValue* v = f_.find("general.alignment");
  if (v == nullptr) return Status::ok();
  if (v->type() != GgufValueType::kU32)
    return invalid_argument("gguf: key 'general.alignment': expected u32, got " +
                            type_description(*v));
  const uint64_t a = *v->as_u64();
  if (a == 0 || (a & (a - 1)) != 0)
    return invalid_argument("gguf: key 'general.alignment': " + num(a) +
                            " is not a nonzero power of two");
  f_.alignment_ = a;
  return Status::ok();
}

Status GgufParser::parse_tensor_info(uint64_t index) {
  ctx_ = "tensor #" + num(index);
  GgufTensorInfo t;
  SGL_RETURN_IF_ERROR(read_string(&t.name, "name"));
  if (t.name.empty()) return invalid_argument(prefix() + "empty tensor name");
  if (t.name.size() > kMaxNameLength)
    return invalid_argument(prefix() + "name of " + num(t.name.size()) + " bytes is too long");
  if (!utf8::is_valid(t.name))
    return invalid_argument(prefix() + "name " + quote_name(t.name) + " is not valid UTF-8");
  ctx_ = "tensor " + quote_name(t.name);
  if (f_.tensor_index_.count(t.name))
    return invalid_argument(prefix() + "duplicate tensor name (also tensor #" +
                            num(f_.tensor_index_.find(t.name)->second) + ")");
  uint32_t n_dims;
  SGL_RETURN_IF_ERROR(read(&n_dims, "n_dims"));
  if (n_dims < 1 || n_dims > GgufFile::kMaxDims)
    return invalid_argument(prefix() + "n_dims " + num(n_dims) + " is not in 1.." +
                            num(GgufFile::kMaxDims));
  t.shape.resize(n_dims);
  uint64_t n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    SGL_RETURN_IF_ERROR(read(&t.shape[d], "dimension"));
    if (t.shape[d] == 0) return invalid_argument(prefix() + "dimension " + num(d) + " is 0");
    if (__builtin_mul_overflow(n_elements, t.shape[d], &n_elements) ||
        n_elements > static_cast<uint64_t>(INT64_MAX))
      return out_of_range(prefix() + "element count overflows (dimension " + num(d) + " = " +
                          num(t.shape[d]) + ")");
  }
  t.n_elements = n_elements;
  uint32_t type_id;
  SGL_RETURN_IF_ERROR(read(&type_id, "type"));
  const std::optional<GgmlTypeTraits> traits = ggml_type_from_id(type_id);
  if (!traits) {
    const std::string_view known = ggml_type_id_name(type_id);
    return unsupported(
        prefix() + "unsupported ggml type id " + num(type_id) +
        (known.empty() ? std::string(" (unknown)") : " (" + std::string(known) + ")"));
  }
  t.type = traits->type;
  if (t.shape[0] % traits->block_size != 0)
    return invalid_argument(prefix() + "shape[0] = " + num(t.shape[0]) +
                            " is not a multiple of the block size " + num(traits->block_size) +
                            " of type " + std::string(traits->name));
  const std::optional<uint64_t> row_bytes = ggml_row_size(t.type, t.shape[0]);
  const uint64_t rows = n_elements / t.shape[0];
  if (!row_bytes || __builtin_mul_overflow(*row_bytes, rows, &t.n_bytes))
    return out_of_range(prefix() + "byte size overflows");
  SGL_RETURN_IF_ERROR(read(&t.offset, "offset"));
  if (t.offset % f_.alignment_ != 0)
    return invalid_argument(prefix() + "offset " + num(t.offset) +
                            " is not a multiple of the alignment " + num(f_.alignment_));
  f_.tensor_index_.emplace(t.name, f_.tensors_.size());
  f_.tensors_.push_back(std::move(t));
  return Status::ok();
}

Status GgufParser::place_tensors() {
  // The data section starts at the next multiple of the alignment after the tensor infos.
  uint64_t data_start;
  const uint64_t pad = (f_.alignment_ - pos_ % f_.alignment_) % f_.alignment_;
  if (__builtin_add_overflow(pos_, pad, &data_start))
    return out_of_range("gguf: data section offset overflows");
  f_.data_offset_ = data_start;
  if (f_.tensors_.empty()) return Status::ok();
  if (data_start > size_)
    return out_of_range("gguf: data section starts at " + num(data_start) +
                        " (tensor infos end at " + num(pos_) + ", alignment " + num(f_.alignment_) +
                        ") past end of file (size " + num(size_) + ")");
  const uint64_t data_size = size_ - data_start;
  for (GgufTensorInfo& t : f_.tensors_) {
    uint64_t end;
    if (__builtin_add_overflow(t.offset, t.n_bytes, &end) || end > data_size) {
      // Report file offsets; they may exceed 64 bits only for absurd values.
      uint64_t begin_abs, end_abs;
      const bool ok = !__builtin_add_overflow(data_start, t.offset, &begin_abs) &&
                      !__builtin_add_overflow(begin_abs, t.n_bytes, &end_abs);
      const std::string range =
          ok ? "[" + num(begin_abs) + ", " + num(end_abs) + ")"
             : "at offset " + num(t.offset) + " (+" + num(t.n_bytes) + " bytes, overflows)";
      return out_of_range("gguf: tensor " + quote_name(t.name) + ": data " + range +
                          " past end of file (size " + num(size_) + ")");
    }
    t.data = p_ + data_start + t.offset;
  }
  // No two tensors may share bytes (ggml packs them back to back).
  std::vector<const GgufTensorInfo*> order;
  order.reserve(f_.tensors_.size());
  for (const GgufTensorInfo& t : f_.tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensorInfo& a = *order[i - 1];
    const GgufTensorInfo& b = *order[i];
    if (a.offset + a.n_bytes > b.offset)
      return invalid_argument("gguf: tensor " + quote_name(b.name) + ": data at offset " +
                              num(b.offset) + " overlaps tensor " + quote_name(a.name) + " [" +
                              num(a.offset) + ", " + num(a.offset + a.n_bytes) + ")");
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// GgufFile

Result<GgufFile> GgufFile::parse(GgufFile file) {
  GgufParser parser(file);
  SGL_RETURN_IF_ERROR(parser.run());
  return file;
}

Result<GgufFile> GgufFile::open(const std::string& path) {
  Result<MappedFile> mapped = MappedFile::open(path);
  if (!mapped.is_ok()) return Status(mapped.status().code(), "gguf: " + mapped.status().message());
  GgufFile file;
  file.mapped_ = std::move(mapped).value();
  file.base_ = file.mapped_.data();
  file.size_ = file.mapped_.size();
  file.path_ = path;
  Result<GgufFile> parsed = parse(std::move(file));
  if (!parsed.is_ok())
    return Status(parsed.status().code(), parsed.status().message() + " (in '" + path + "')");
  return parsed;
}

Result<GgufFile> GgufFile::from_buffer(std::vector<uint8_t> bytes) {
  GgufFile file;
  file.buffer_ = std::move(bytes);
  file.base_ = file.buffer_.data();
  file.size_ = file.buffer_.size();
  file.path_ = "<buffer>";
  if (file.base_ == nullptr) {  // an empty vector may have no storage
    static const uint8_t kEmpty[1] = {0};
    file.base_ = kEmpty;
  }
  return parse(std::move(file));
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufFile::architecture() const {
  const GgufValue* v = find("general.architecture");
  if (v == nullptr || !v->is_string()) return "";
  return *v->as_string();
}

namespace {

Status missing_key(std::string_view key) {
  return not_found("gguf: key " + quote_name(key) + " not found");
}
Status wrong_type(std::string_view key, std::string_view expected, const GgufValue& v) {
  return invalid_argument("gguf: key " + quote_name(key) + ": expected " + std::string(expected) +
                          ", got " + type_description(v));
}

template <typename T>
Result<T> integer_value(std::string_view key, std::string_view type_name, const GgufValue& v) {
  if (!v.is_integer()) return wrong_type(key, type_name, v);
  if (const std::optional<int64_t> s = v.as_i64()) {
    if (*s >= 0 ? static_cast<uint64_t>(*s) <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                : std::numeric_limits<T>::is_signed &&
                      *s >= static_cast<int64_t>(std::numeric_limits<T>::min()))
      return static_cast<T>(*s);
    return out_of_range("gguf: key " + quote_name(key) + ": value " + std::to_string(*s) +
                        " does not fit in " + std::string(type_name));
  }
  const uint64_t u = *v.as_u64();  // above INT64_MAX
  if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  return out_of_range("gguf: key " + quote_name(key) + ": value " + std::to_string(u) +
                      " does not fit in " + std::string(type_name));
}

Result<float> float_value(std::string_view key, const GgufValue& v) {
  const std::optional<double> d = v.as_f64();
  if (!d) return wrong_type(key, "f32", v);
  if (std::isfinite(*d) && std::fabs(*d) > std::numeric_limits<float>::max())
    return out_of_range("gguf: key " + quote_name(key) + ": value " + format_double(*d, false) +
                        " does not fit in f32");
  return static_cast<float>(*d);
}

}  // namespace

Result<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(key);
  if (!v->is_string()) return wrong_type(key, "string", *v);
  return *v->as_string();
}

Result<uint32_t> GgufFile::get_u32(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(key);
  return integer_value<uint32_t>(key, "u32", *v);
}

Result<uint64_t> GgufFile::get_u64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(key);
  return integer_value<uint64_t>(key, "u64", *v);
}

Result<int64_t> GgufFile::get_i64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(key);
  return integer_value<int64_t>(key, "i64", *v);
}

Result<float> GgufFile::get_f32(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(key);
  return float_value(key, *v);
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(key);
  if (v->type() != GgufValueType::kBool) return wrong_type(key, "bool", *v);
  return *v->as_bool();
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing_key(key);
  std::optional<std::vector<std::string>> out = v->as_string_array();
  if (!out) return wrong_type(key, "array of string", *v);
  return std::move(*out);
}

Result<uint32_t> GgufFile::get_u32_or(std::string_view key, uint32_t def) const {
  if (find(key) == nullptr) return def;
  return get_u32(key);
}
Result<uint64_t> GgufFile::get_u64_or(std::string_view key, uint64_t def) const {
  if (find(key) == nullptr) return def;
  return get_u64(key);
}
Result<float> GgufFile::get_f32_or(std::string_view key, float def) const {
  if (find(key) == nullptr) return def;
  return get_f32(key);
}
Result<bool> GgufFile::get_bool_or(std::string_view key, bool def) const {
  if (find(key) == nullptr) return def;
  return get_bool(key);
}
Result<std::string> GgufFile::get_string_or(std::string_view key, std::string def) const {
  if (find(key) == nullptr) return def;
  return get_string(key);
}

}  // namespace sgl::model
