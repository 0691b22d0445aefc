// Fuzzes the safetensors reader (SafetensorsFile::from_buffer): the u64 header length, the JSON
// header (dtypes, shapes, data_offsets, __metadata__) and the data section. A file that validates
// must honour its contract: each tensor's bytes lie inside the buffer and equal its shape's size,
// and to_f32 works on the float dtypes.
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "model/safetensors.h"

// Reads of tensor bytes go through this so the optimizer keeps them (ASan checks them).
volatile uint64_t g_sink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sgl::model;
  auto file = SafetensorsFile::from_buffer(std::vector<uint8_t>(data, data + size));
  if (!file.is_ok()) {
    FUZZ_CHECK(!file.status().message().empty(), "an error must say what is wrong");
    return 0;
  }
  uint64_t sink = 0;  // summed, then stored in g_sink
  for (const auto& t : file->tensors()) {
    FUZZ_CHECK(file->find_tensor(t.name) == &t, "tensor names are unique and findable");
    FUZZ_CHECK(t.n_bytes == t.n_elements() * safetensors_dtype_size(t.dtype),
               "byte size matches the shape");
    if (t.n_bytes > 0) sink += t.data[0] + t.data[t.n_bytes - 1];  // out of bounds -> ASan
    if (t.n_elements() <= (1u << 16)) {
      auto f = t.to_f32();
      bool is_float = t.dtype == SafetensorsDtype::kF32 || t.dtype == SafetensorsDtype::kF16 ||
                      t.dtype == SafetensorsDtype::kBF16;
      FUZZ_CHECK(f.is_ok() == is_float, "to_f32 works exactly on F32/F16/BF16");
      if (f.is_ok()) FUZZ_CHECK(f->size() == t.n_elements(), "to_f32 returns every element");
    }
  }
  for (const auto& [k, v] : file->metadata()) sink += k.size() + v.size();
  g_sink = sink;
  return 0;
}
