// Fuzzes the three grammar front ends and the compiler behind them: the first byte picks the
// kind (regex, GBNF, JSON Schema) and the whitespace policy, the rest is the grammar text. Bad
// text must give a kInvalidArgument/kUnsupported Status with a message; good text must compile
// to a grammar whose start-state mask can be filled and whose forced prefix is accepted.
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "fuzz_vocab.h"
#include "grammar/gbnf.h"
#include "grammar/grammar.h"
#include "grammar/json_schema.h"
#include "grammar/regex.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sgl::grammar;
  if (size == 0) return 0;
  const GrammarKind kind = static_cast<GrammarKind>(data[0] % 3);
  GrammarOptions opts;
  opts.whitespace = static_cast<WhitespacePolicy>((data[0] / 3) % 3);
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  auto g = compile_grammar(kind, text, sgl::fuzz::fuzz_vocab(), opts);
  if (!g.is_ok()) {
    FUZZ_CHECK(!g.status().message().empty(), "a compile error says what is wrong");
    return 0;
  }
  Matcher m(*g);
  std::vector<uint32_t> mask(m.mask_words());
  m.fill_mask(mask);
  std::string forced = m.forced_text(256);
  if (!forced.empty()) FUZZ_CHECK(m.accept_bytes(forced), "forced text is accepted");
  return 0;
}
