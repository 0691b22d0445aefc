#include "model/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "support/fp16.h"

namespace sgl::model {

static_assert(std::endian::native == std::endian::little,
              "the safetensors reader assumes a little-endian host");

namespace {

using OrderedJson = nlohmann::ordered_json;

struct DtypeInfo {
  SafetensorsDtype dtype;
  std::string_view name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 1},      {SafetensorsDtype::kU8, "U8", 1},
    {SafetensorsDtype::kI8, "I8", 1},          {SafetensorsDtype::kF8E4M3, "F8_E4M3", 1},
    {SafetensorsDtype::kF8E5M2, "F8_E5M2", 1}, {SafetensorsDtype::kI16, "I16", 2},
    {SafetensorsDtype::kU16, "U16", 2},        {SafetensorsDtype::kF16, "F16", 2},
    {SafetensorsDtype::kBF16, "BF16", 2},      {SafetensorsDtype::kI32, "I32", 4},
    {SafetensorsDtype::kU32, "U32", 4},        {SafetensorsDtype::kF32, "F32", 4},
    {SafetensorsDtype::kI64, "I64", 8},        {SafetensorsDtype::kU64, "U64", 8},
    {SafetensorsDtype::kF64, "F64", 8},
};

const DtypeInfo& dtype_info(SafetensorsDtype d) {
  for (const DtypeInfo& i : kDtypes)
    if (i.dtype == d) return i;
  SGL_CHECK(false, "unknown SafetensorsDtype");
  __builtin_unreachable();
}

std::string num(uint64_t v) { return std::to_string(v); }

std::string quote_name(std::string_view s) { return quote_for_message(s); }

// Thrown by the JSON parse callback to stop at a structural problem; caught in parse().
struct HeaderError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads a JSON value as a non-negative integer (JSON numbers like 3.0 or -1 are refused).
std::optional<uint64_t> as_index(const OrderedJson& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= 0) return static_cast<uint64_t>(v);
  }
  return std::nullopt;
}

std::string json_kind(const OrderedJson& j) { return j.type_name(); }

Status read_json_file(const std::string& path, uint64_t max_size, OrderedJson* out) {
  SGL_ASSIGN_OR_RETURN(MappedFile f, MappedFile::open(path));
  if (f.size() > max_size)
    return out_of_range("'" + path + "' is " + num(f.size()) + " bytes (limit " + num(max_size) +
                        ")");
  try {
    const char* p = reinterpret_cast<const char*>(f.data());
    *out = OrderedJson::parse(p, p + f.size());
  } catch (const std::exception& e) {
    return invalid_argument("'" + path + "' is not valid JSON: " + e.what());
  }
  return Status::ok();
}

bool is_plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::string_view safetensors_dtype_name(SafetensorsDtype dtype) { return dtype_info(dtype).name; }

std::optional<SafetensorsDtype> safetensors_dtype_from_name(std::string_view name) {
  for (const DtypeInfo& i : kDtypes)
    if (i.name == name) return i.dtype;
  return std::nullopt;
}

size_t safetensors_dtype_size(SafetensorsDtype dtype) { return dtype_info(dtype).size; }

// ---------------------------------------------------------------------------------------------
// SafetensorsTensor

uint64_t SafetensorsTensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // validated not to overflow when the file was parsed
  return n;
}

namespace {
Status check_float_dtype(const SafetensorsTensor& t) {
  if (t.dtype == SafetensorsDtype::kF32 || t.dtype == SafetensorsDtype::kF16 ||
      t.dtype == SafetensorsDtype::kBF16)
    return Status::ok();
  return unsupported("safetensors: tensor " + quote_name(t.name) + ": dtype " +
                     std::string(safetensors_dtype_name(t.dtype)) +
                     " cannot be read as float (only F32, F16, BF16)");
}
}  // namespace

Status SafetensorsTensor::to_f32(float* out, size_t n) const {
  SGL_RETURN_IF_ERROR(check_float_dtype(*this));
  const uint64_t count = n_elements();
  if (n != count)
    return invalid_argument("safetensors: tensor " + quote_name(name) + " has " + num(count) +
                            " elements, destination holds " + num(n));
  if (n == 0) return Status::ok();
  if (dtype == SafetensorsDtype::kF32) {
    std::memcpy(out, data, n * sizeof(float));
    return Status::ok();
  }
  const bool half = dtype == SafetensorsDtype::kF16;
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, data + 2 * i, 2);
    out[i] = half ? fp16_to_fp32(h) : bf16_to_fp32(h);
  }
  return Status::ok();
}

Result<std::vector<float>> SafetensorsTensor::to_f32() const {
  SGL_RETURN_IF_ERROR(check_float_dtype(*this));
  std::vector<float> out(static_cast<size_t>(n_elements()));
  SGL_RETURN_IF_ERROR(to_f32(out.data(), out.size()));
  return out;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  Result<MappedFile> mapped = MappedFile::open(path);
  if (!mapped.is_ok())
    return Status(mapped.status().code(), "safetensors: " + mapped.status().message());
  SafetensorsFile f;
  f.mapped_ = std::move(mapped).value();
  f.base_ = f.mapped_.data();
  f.size_ = f.mapped_.size();
  f.path_ = path;
  Status s = f.parse();
  if (!s.is_ok()) return Status(s.code(), s.message() + " (in '" + path + "')");
  return f;
}

Result<SafetensorsFile> SafetensorsFile::from_buffer(std::vector<uint8_t> bytes) {
  SafetensorsFile f;
  f.buffer_ = std::move(bytes);
  f.base_ = f.buffer_.data();
  f.size_ = f.buffer_.size();
  f.path_ = "<buffer>";
  if (f.base_ == nullptr) {
    static const uint8_t kEmpty[1] = {0};
    f.base_ = kEmpty;
  }
  SGL_RETURN_IF_ERROR(f.parse());
  return f;
}

const SafetensorsTensor* SafetensorsFile::find_tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status SafetensorsFile::parse() {
  if (size_ < 8)
    return out_of_range("safetensors: file of " + num(size_) +
                        " bytes is too small for the 8-byte header size");
  uint64_t header_size;
  std::memcpy(&header_size, base_, 8);
  if (header_size > kMaxHeaderSize)
    return out_of_range("safetensors: header size " + num(header_size) + " exceeds the limit of " +
                        num(kMaxHeaderSize) + " bytes");
  if (header_size > size_ - 8)
    return out_of_range("safetensors: header size " + num(header_size) +
                        " runs past end of file (" + num(size_ - 8) +
                        " bytes after the size field)");
  const char* hp = reinterpret_cast<const char*>(base_ + 8);

  // Parse the JSON, refusing duplicate top-level names and deep nesting on the way (the parser
  // would otherwise keep the first duplicate silently).
  OrderedJson header;
  std::set<std::string, std::less<>> seen;
  try {
    OrderedJson::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t event,
                                            OrderedJson& parsed) {
      if (depth > kMaxJsonDepth) throw HeaderError("JSON nested deeper than " + num(kMaxJsonDepth));
      if (event == nlohmann::json::parse_event_t::key && depth == 1) {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!seen.insert(key).second) throw HeaderError("duplicate entry " + quote_name(key));
      }
      return true;
    };
    header = OrderedJson::parse(hp, hp + header_size, cb);
  } catch (const HeaderError& e) {
    return invalid_argument(std::string("safetensors: header: ") + e.what());
  } catch (const std::exception& e) {
    return invalid_argument(std::string("safetensors: header is not valid JSON: ") + e.what());
  }
  if (!header.is_object())
    return invalid_argument("safetensors: header is a JSON " + json_kind(header) +
                            ", expected an object");

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = size_ - data_start;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        return invalid_argument("safetensors: __metadata__ is a " + json_kind(entry) +
                                ", expected an object of strings");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string())
          return invalid_argument("safetensors: __metadata__ entry " + quote_name(k) + " is a " +
                                  json_kind(v) + ", expected a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "safetensors: tensor " + quote_name(name) + ": ";
    if (name.empty()) return invalid_argument("safetensors: empty tensor name");
    if (!entry.is_object())
      return invalid_argument(where + "entry is a " + json_kind(entry) + ", expected an object");
    SafetensorsTensor t;
    t.name = name;

    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string())
      return invalid_argument(where + "missing or non-string 'dtype'");
    const std::string& dtype_name = dt->get_ref<const std::string&>();
    const std::optional<SafetensorsDtype> dtype = safetensors_dtype_from_name(dtype_name);
    if (!dtype) return invalid_argument(where + "unknown dtype " + quote_name(dtype_name));
    t.dtype = *dtype;

    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array())
      return invalid_argument(where + "missing or non-array 'shape'");
    uint64_t n_elements = 1;
    for (const OrderedJson& d : *sh) {
      const std::optional<uint64_t> dim = as_index(d);
      if (!dim)
        return invalid_argument(where + "shape entry " + d.dump() +
                                " is not a non-negative integer");
      t.shape.push_back(*dim);
      if (__builtin_mul_overflow(n_elements, *dim, &n_elements))
        return out_of_range(where + "element count overflows");
    }
    uint64_t n_bytes;
    if (__builtin_mul_overflow(n_elements, static_cast<uint64_t>(safetensors_dtype_size(t.dtype)),
                               &n_bytes))
      return out_of_range(where + "byte size overflows");

    auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2)
      return invalid_argument(where + "'data_offsets' must be an array [begin, end]");
    const std::optional<uint64_t> begin = as_index((*off)[0]);
    const std::optional<uint64_t> end = as_index((*off)[1]);
    if (!begin || !end)
      return invalid_argument(where + "data_offsets " + off->dump() +
                              " are not non-negative integers");
    if (*begin > *end)
      return invalid_argument(where + "data_offsets [" + num(*begin) + ", " + num(*end) +
                              "] run backwards");
    if (*end > data_size)
      return out_of_range(where + "data_offsets [" + num(*begin) + ", " + num(*end) +
                          "] past end of the data section (" + num(data_size) + " bytes)");
    if (*end - *begin != n_bytes)
      return invalid_argument(where + "data_offsets [" + num(*begin) + ", " + num(*end) +
                              "] span " + num(*end - *begin) + " bytes but " +
                              std::string(safetensors_dtype_name(t.dtype)) + " shape needs " +
                              num(n_bytes));
    t.data = base_ + data_start + *begin;
    t.n_bytes = n_bytes;
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // Tensors may not share bytes.
  std::vector<const SafetensorsTensor*> order;
  for (const SafetensorsTensor& t : tensors_)
    if (t.n_bytes > 0) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const SafetensorsTensor* a, const SafetensorsTensor* b) {
    return a->data < b->data;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i - 1]->data + order[i - 1]->n_bytes > order[i]->data)
      return invalid_argument("safetensors: tensor " + quote_name(order[i]->name) +
                              ": data overlaps tensor " + quote_name(order[i - 1]->name));
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// SafetensorsCheckpoint

const SafetensorsTensor* SafetensorsCheckpoint::find_tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status SafetensorsCheckpoint::add_shard(SafetensorsFile shard) {
  for (const SafetensorsTensor& t : shard.tensors()) {
    if (auto it = index_.find(t.name); it != index_.end())
      return invalid_argument("safetensors: tensor " + quote_name(t.name) + " is in both '" +
                              shard.path() + "' and another shard");
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(t);
  }
  shards_.push_back(std::move(shard));
  return Status::ok();
}

Result<SafetensorsCheckpoint> SafetensorsCheckpoint::open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return not_found("safetensors: '" + path + "' does not exist");

  SafetensorsCheckpoint ckpt;
  std::string index_path;
  std::vector<std::string> shard_paths;
  if (fs::is_directory(st)) {
    ckpt.directory_ = path;
    const fs::path dir(path);
    if (fs::exists(dir / "model.safetensors.index.json", ec)) {
      index_path = (dir / "model.safetensors.index.json").string();
    } else if (fs::exists(dir / "model.safetensors", ec)) {
      shard_paths.push_back((dir / "model.safetensors").string());
    } else {
      for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        if (e.is_regular_file(ec) && e.path().extension() == ".safetensors")
          shard_paths.push_back(e.path().string());
      }
      if (ec) return io_error("safetensors: cannot list '" + path + "': " + ec.message());
      std::sort(shard_paths.begin(), shard_paths.end());
      if (shard_paths.empty())
        return not_found("safetensors: no model.safetensors.index.json or *.safetensors in '" +
                         path + "'");
    }
  } else if (ends_with(path, ".json")) {
    index_path = path;
    ckpt.directory_ = fs::path(path).parent_path().string();
  } else {
    shard_paths.push_back(path);
    ckpt.directory_ = fs::path(path).parent_path().string();
  }
  if (ckpt.directory_.empty()) ckpt.directory_ = ".";

  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  if (!index_path.empty()) {
    OrderedJson index;
    Status s = read_json_file(index_path, SafetensorsFile::kMaxHeaderSize, &index);
    if (!s.is_ok()) return Status(s.code(), "safetensors index: " + s.message());
    auto wm = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || wm == index.end() || !wm->is_object())
      return invalid_argument("safetensors index '" + index_path +
                              "': expected an object with a 'weight_map' object");
    std::set<std::string> files;
    for (auto& [tensor, file] : wm->items()) {
      if (!file.is_string())
        return invalid_argument("safetensors index '" + index_path + "': weight_map entry " +
                                quote_name(tensor) + " is not a string");
      const std::string& name = file.get_ref<const std::string&>();
      if (!is_plain_file_name(name))
        return invalid_argument("safetensors index '" + index_path + "': shard name " +
                                quote_name(name) + " for tensor " + quote_name(tensor) +
                                " is not a plain file name");
      weight_map[tensor] = name;
      files.insert(name);
    }
    if (files.empty())
      return invalid_argument("safetensors index '" + index_path + "': weight_map is empty");
    for (const std::string& f : files)
      shard_paths.push_back((fs::path(ckpt.directory_) / f).string());
  }

  for (const std::string& p : shard_paths) {
    SGL_ASSIGN_OR_RETURN(SafetensorsFile shard, SafetensorsFile::open(p));
    SGL_RETURN_IF_ERROR(ckpt.add_shard(std::move(shard)));
  }
  for (const auto& [tensor, file] : weight_map) {
    const std::string expected = (fs::path(ckpt.directory_) / file).string();
    const SafetensorsTensor* t = ckpt.find_tensor(tensor);
    bool found = false;
    if (t != nullptr) {
      for (const SafetensorsFile& shard : ckpt.shards_)
        if (shard.path() == expected && shard.find_tensor(tensor) != nullptr) found = true;
    }
    if (!found)
      return not_found("safetensors index '" + index_path + "': tensor " + quote_name(tensor) +
                       " is mapped to '" + file + "' but is not in that shard");
  }
  return ckpt;
}

// ---------------------------------------------------------------------------------------------
// Writing

Result<std::vector<uint8_t>> safetensors_encode_f32(SafetensorsDtype dtype,
                                                    const std::vector<float>& values) {
  std::vector<uint8_t> out;
  switch (dtype) {
    case SafetensorsDtype::kF32:
      out.resize(values.size() * 4);
      if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
      return out;
    case SafetensorsDtype::kF16:
    case SafetensorsDtype::kBF16:
      out.resize(values.size() * 2);
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h =
            dtype == SafetensorsDtype::kF16 ? fp32_to_fp16(values[i]) : fp32_to_bf16(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      return out;
    default:
      return unsupported("safetensors: cannot encode floats as " +
                         std::string(safetensors_dtype_name(dtype)));
  }
}

Result<std::vector<uint8_t>> safetensors_to_bytes(
    const std::vector<SafetensorsWriteTensor>& tensors,
    const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const SafetensorsWriteTensor& t : tensors) {
    const std::string where = "safetensors writer: tensor " + quote_name(t.name) + ": ";
    if (t.name.empty() || t.name == "__metadata__")
      return invalid_argument(where + "invalid tensor name");
    if (!names.insert(t.name).second) return invalid_argument(where + "duplicate tensor name");
    uint64_t n = safetensors_dtype_size(t.dtype);
    for (uint64_t d : t.shape)
      if (__builtin_mul_overflow(n, d, &n)) return out_of_range(where + "size overflows");
    if (n != t.data.size())
      return invalid_argument(where + "data has " + num(t.data.size()) + " bytes, shape needs " +
                              num(n));
    nlohmann::ordered_json e;
    e["dtype"] = std::string(safetensors_dtype_name(t.dtype));
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + n};
    header[t.name] = std::move(e);
    offset += n;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t header_size = text.size();
  std::memcpy(out.data(), &header_size, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const SafetensorsWriteTensor& t : tensors) {
    if (!t.data.empty()) std::memcpy(p, t.data.data(), t.data.size());
    p += t.data.size();
  }
  return out;
}

namespace {
Status write_bytes(const std::string& path, const void* data, size_t n, const char* who) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f)
    return io_error(std::string(who) + ": cannot create '" + path + "': " + std::strerror(errno));
  if (n != 0 && std::fwrite(data, 1, n, f.get()) != n)
    return io_error(std::string(who) + ": writing '" + path + "' failed: " + std::strerror(errno));
  if (std::fclose(f.release()) != 0)
    return io_error(std::string(who) + ": closing '" + path + "' failed: " + std::strerror(errno));
  return Status::ok();
}
}  // namespace

Status write_safetensors(const std::string& path,
                         const std::vector<SafetensorsWriteTensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  SGL_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, safetensors_to_bytes(tensors, metadata));
  return write_bytes(path, bytes.data(), bytes.size(), "safetensors writer");
}

Status write_safetensors_index(const std::string& path,
                               const std::map<std::string, std::string>& weight_map) {
  nlohmann::ordered_json j;
  j["metadata"] = nlohmann::ordered_json::object();
  j["weight_map"] = nlohmann::ordered_json::object();
  for (const auto& [tensor, file] : weight_map) j["weight_map"][tensor] = file;
  const std::string text = j.dump(2) + "\n";
  return write_bytes(path, text.data(), text.size(), "safetensors index writer");
}

}  // namespace sgl::model
