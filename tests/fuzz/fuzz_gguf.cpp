// Fuzzes the GGUF reader (GgufFile::from_buffer) with arbitrary bytes. A file that validates must
// honour the header's contract: every tensor's data lies inside the buffer (touched here, so
// ASan catches a lie), names are unique, and every metadata accessor works on every key. A valid
// file is also handed to Tokenizer::from_gguf, which reads the tokenizer.* metadata.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

// Reads of tensor bytes go through this so the optimizer keeps them (ASan checks them).
volatile uint64_t g_sink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sgl::model::GgufFile;
  auto file = GgufFile::from_buffer(std::vector<uint8_t>(data, data + size));
  if (!file.is_ok()) {
    FUZZ_CHECK(!file.status().message().empty(), "an error must say what is wrong");
    return 0;
  }
  const GgufFile& f = *file;
  // (A file without tensor bytes may end before the padded start of its empty data section.)
  for (const auto& t : f.tensors()) {
    if (t.n_bytes > 0) FUZZ_CHECK(f.data_offset() <= f.file_size(), "data inside the file");
  }
  uint64_t sink = 0;  // summed, then stored in g_sink
  for (const auto& t : f.tensors()) {
    FUZZ_CHECK(f.find_tensor(t.name) == &t, "tensor names are unique and findable");
    FUZZ_CHECK(t.shape.size() <= GgufFile::kMaxDims, "at most kMaxDims dims");
    if (t.n_bytes > 0) {
      FUZZ_CHECK(t.data != nullptr, "tensor with bytes has data");
      sink += t.data[0] + t.data[t.n_bytes - 1];  // out of bounds -> ASan report
    }
  }
  for (const auto& [key, value] : f.metadata()) {
    FUZZ_CHECK(f.find(key) == &value, "metadata keys are unique and findable");
    sink += value.to_string().size();
    (void)f.get_string(key);
    (void)f.get_u32(key);
    (void)f.get_u64(key);
    (void)f.get_i64(key);
    (void)f.get_f32(key);
    (void)f.get_bool(key);
    (void)f.get_string_array(key);
    (void)value.as_i32_array();
    (void)value.as_f32_array();
  }
  sink += f.architecture().size();
  auto tok = sgl::tokenizer::Tokenizer::from_gguf(f);
  if (tok.is_ok()) {
    auto ids = tok->encode("Hello world <|im_start|>\xff\xfe", true, true);
    for (int32_t id : ids) FUZZ_CHECK(tok->is_valid(id), "encode yields valid ids");
    auto text = tok->decode(ids, false);
    FUZZ_CHECK(text.is_ok(), "decode of valid ids succeeds");
  }
  g_sink = sink;
  return 0;
}
