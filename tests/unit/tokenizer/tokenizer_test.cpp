// Tokenizer behaviour that the golden files do not pin: loader validation (GGUF and Hugging Face),
// special-token partitioning, clean-up of spaces, streaming detokenization, robustness on
// arbitrary bytes, and concurrent use.

#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "model/gguf.h"
#include "support/utf8.h"
#include "test_util.h"
#include "tokenizer/unicode.h"

namespace sgl::tokenizer {
namespace {

using testing::GgufBuilder;
using V = std::vector<int32_t>;

// A byte-level vocabulary: the 256 byte tokens, "Ġt", "he", "Ġthe", then a control token.
GgufBuilder tiny_gpt2() {
  std::vector<std::string> tokens = testing::byte_alphabet_tokens();
  tokens.push_back("\xC4\xA0t");    // 256: Ġt
  tokens.push_back("he");           // 257
  tokens.push_back("\xC4\xA0the");  // 258: Ġthe
  tokens.push_back("<|end|>");      // 259
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  GgufBuilder b;
  b.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", "gpt-2")
      .strings("tokenizer.ggml.tokens", tokens)
      .i32s("tokenizer.ggml.token_type", types)
      .strings("tokenizer.ggml.merges", {"\xC4\xA0 t", "h e", "\xC4\xA0t he"})
      .u32("tokenizer.ggml.bos_token_id", 259)
      .u32("tokenizer.ggml.eos_token_id", 259);
  return b;
}

Result<Tokenizer> load(const GgufBuilder& b) {
  auto f = b.file();
  if (!f.is_ok()) return f.status();
  return Tokenizer::from_gguf(*f);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(GgufLoader, TinyByteLevelVocabulary) {
  auto tok = load(tiny_gpt2());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->vocab_size(), 260);
  EXPECT_EQ(tok->encode(" the", false, false), (V{258}));
  EXPECT_EQ(tok->encode("the the", false, false), (V{'t', 257, 258}));  // byte b has id b
  EXPECT_EQ(tok->encode("x<|end|>", false, true), (V{'x', 259}));
  EXPECT_EQ(tok->encode("x<|end|>", false, false).size(), 8u);  // not parsed: plain text
  EXPECT_EQ(tok->eog_ids(), (V{259}));                          // "<|end|>" and eos
  EXPECT_EQ(*tok->decode(V{258, 259}, false), " the<|end|>");
  EXPECT_EQ(*tok->decode(V{258, 259}, true), " the");
  // gpt-2 keeps llama.cpp's clean_up_tokenization_spaces.
  EXPECT_EQ(*tok->decode(tok->encode("a , b", false, false), false), "a, b");
}

TEST(GgufLoader, RejectsBadMetadata) {
  auto expect_error = [](const GgufBuilder& b, StatusCode code, const std::string& needle) {
    auto tok = load(b);
    ASSERT_FALSE(tok.is_ok());
    EXPECT_EQ(tok.status().code(), code) << tok.status().to_string();
    EXPECT_NE(tok.status().message().find(needle), std::string::npos) << tok.status().to_string();
  };
  expect_error(GgufBuilder().strings("tokenizer.ggml.tokens", {"a"}), StatusCode::kNotFound,
               "tokenizer.ggml.model");
  expect_error(
      GgufBuilder().str("tokenizer.ggml.model", "bert").strings("tokenizer.ggml.tokens", {"a"}),
      StatusCode::kUnsupported, "bert");
  expect_error(tiny_gpt2().str("tokenizer.ggml.pre", "mystery"), StatusCode::kUnsupported,
               "mystery");
  expect_error(
      GgufBuilder().str("tokenizer.ggml.model", "llama").u32s("tokenizer.ggml.tokens", {1, 2}),
      StatusCode::kInvalidArgument, "tokenizer.ggml.tokens");
  expect_error(GgufBuilder().str("tokenizer.ggml.model", "llama"), StatusCode::kInvalidArgument,
               "tokenizer.ggml.tokens");
  expect_error(GgufBuilder()
                   .str("tokenizer.ggml.model", "llama")
                   .strings("tokenizer.ggml.tokens", {"a", "b", "a"}),
               StatusCode::kInvalidArgument, "duplicate");
  expect_error(GgufBuilder()
                   .str("tokenizer.ggml.model", "llama")
                   .strings("tokenizer.ggml.tokens", {"a", "b", "c"})
                   .f32s("tokenizer.ggml.scores", {0.0f}),
               StatusCode::kInvalidArgument, "scores");
  expect_error(GgufBuilder()
                   .str("tokenizer.ggml.model", "gpt2")
                   .str("tokenizer.ggml.pre", "gpt-2")
                   .strings("tokenizer.ggml.tokens", {"a", "b"}),
               StatusCode::kInvalidArgument, "merges");
  // add_bos with no usable BOS (the default 11 is past this vocabulary).
  expect_error(GgufBuilder()
                   .str("tokenizer.ggml.model", "gpt2")
                   .str("tokenizer.ggml.pre", "llama3")
                   .strings("tokenizer.ggml.tokens", {"a", "b"})
                   .strings("tokenizer.ggml.merges", {}),
               StatusCode::kInvalidArgument, "add_bos");
  expect_error(tiny_gpt2().str("tokenizer.ggml.bos_token_id", "x"), StatusCode::kInvalidArgument,
               "bos_token_id");
}

TEST(GgufLoader, ToleratesWhatLlamaCppTolerates) {
  // Out-of-range special ids fall back to the defaults; an empty token text gets a placeholder;
  // a merge line without a space never applies.
  auto b = GgufBuilder()
               .str("tokenizer.ggml.model", "llama")
               .strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "",
                                                  "\xE2\x96\x81"
                                                  "a"})
               .i32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 1})
               .u32("tokenizer.ggml.eos_token_id", 99);
  auto tok = load(b);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->token_text(3), "[EMPTY_3]");
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->encode("a", true, false), (V{1, 4}));
  // No byte tokens: unknown bytes become <unk>.
  EXPECT_EQ(tok->encode("b", false, false), (V{0, 0, 0, 0}));  // "▁b": 3 bytes of ▁, then b
  auto g = tiny_gpt2().strings("tokenizer.ggml.merges", {"nospace", "\xC4\xA0 t"});
  auto tok2 = load(g);
  ASSERT_TRUE(tok2.is_ok()) << tok2.status().to_string();
  EXPECT_EQ(tok2->encode(" t", false, false), (V{256}));
}

TEST(HfLoader, RejectsUnsupportedConfigurations) {
  const std::string base_text = read_text(testing::data_path("hf_llama3/tokenizer.json"));
  const nlohmann::json base = nlohmann::json::parse(base_text);
  auto expect_error = [](const nlohmann::json& j, StatusCode code, const std::string& needle) {
    auto tok = Tokenizer::from_hf_json(j.dump(), "");
    ASSERT_FALSE(tok.is_ok());
    EXPECT_EQ(tok.status().code(), code) << tok.status().to_string();
    EXPECT_NE(tok.status().message().find(needle), std::string::npos) << tok.status().to_string();
  };
  nlohmann::json j = base;
  j["model"]["type"] = "Unigram";
  expect_error(j, StatusCode::kUnsupported, "Unigram");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  expect_error(j, StatusCode::kUnsupported, "\\w+");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
  expect_error(j, StatusCode::kUnsupported, "add_prefix_space");
  j = base;
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error(j, StatusCode::kUnsupported, "Lowercase");
  j = base;
  j["model"].erase("merges");
  expect_error(j, StatusCode::kInvalidArgument, "merges");
  j = base;
  j["model"]["vocab"]["extra"] = "not a number";
  expect_error(j, StatusCode::kInvalidArgument, "extra");
  j = base;
  j["added_tokens"][0]["content"] = "";
  expect_error(j, StatusCode::kInvalidArgument, "empty");
  EXPECT_EQ(Tokenizer::from_hf_json("{not json", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::from_hf_json("[]", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::from_hf_json(base_text, "{\"bos_token\": 5}").status().code(),
            StatusCode::kOk);  // a non-string token entry is ignored
  EXPECT_EQ(Tokenizer::from_hf_json(base_text, "{\"bos_token\": \"<nope>\"}").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Tokenizer::from_hf_files("/nonexistent/dir").status().code(), StatusCode::kIoError);
}

TEST(SpecialTokens, LstripAndRstripFromAddedTokens) {
  nlohmann::json j = nlohmann::json::parse(read_text(testing::data_path("hf_gpt2/tokenizer.json")));
  const int id = static_cast<int>(j["model"]["vocab"].size()) + 1;
  j["added_tokens"].push_back({{"id", id},
                               {"content", "<mask>"},
                               {"special", true},
                               {"lstrip", true},
                               {"rstrip", true},
                               {"normalized", false},
                               {"single_word", false}});
  auto tok = Tokenizer::from_hf_json(j.dump(), "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  V expected = tok->encode("a", false, false);
  expected.push_back(id);
  V b = tok->encode("b", false, false);
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(tok->encode("a  <mask> \t b", false, true), expected);
}

TEST(SpecialTokens, LongestTokenIsMatchedFirst) {
  nlohmann::json j = nlohmann::json::parse(read_text(testing::data_path("hf_gpt2/tokenizer.json")));
  const int base = static_cast<int>(j["model"]["vocab"].size()) + 1;
  for (auto [off, text] : {std::pair{0, "<a>"}, std::pair{1, "<a><b>"}}) {
    j["added_tokens"].push_back({{"id", base + off}, {"content", text}, {"special", true}});
  }
  auto tok = Tokenizer::from_hf_json(j.dump(), "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ(tok->encode("<a><b><a>", false, true), (V{base + 1, base}));
}

TEST(CleanUpSpaces, FollowsLlamaCpp) {
  auto clean = [](std::string s) {
    clean_up_tokenization_spaces(s);
    return s;
  };
  EXPECT_EQ(clean("Hello , world ! Really ? Yes ."), "Hello, world! Really? Yes.");
  EXPECT_EQ(clean("it 's I 'm we 're they 've"), "it's I'm we're they've");
  EXPECT_EQ(clean("don 't I 'd we 'll"), "don 't I 'd we 'll");  // kept, as llama.cpp does
  EXPECT_EQ(clean("a ' b"), "a'b");
  EXPECT_EQ(clean(" ,"), ",");
  EXPECT_EQ(clean(""), "");
  EXPECT_EQ(clean("x"), "x");
}

// Streaming must give exactly the sanitized batch decode, for random id sequences, with and
// without clean-up of spaces, and never output broken UTF-8.
TEST(IncrementalDecoder, RandomSequencesMatchBatchDecode) {
  const std::string text = read_text(testing::data_path("hf_gpt2/tokenizer.json"));
  for (const char* cfg : {"{\"clean_up_tokenization_spaces\": true}", "{}"}) {
    auto tok = Tokenizer::from_hf_json(text, cfg);
    ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
    // Ids whose pieces are spaces, apostrophes, punctuation or partial UTF-8 stress the cuts.
    V interesting;
    for (int32_t id = 0; id < tok->vocab_size(); ++id) {
      std::string_view p = tok->token_to_piece(id);
      if (p.find_first_of(" '?!.,") != std::string_view::npos || !utf8::is_valid(p)) {
        interesting.push_back(id);
      }
    }
    ASSERT_GT(interesting.size(), 50u);
    std::mt19937 rng(7);
    for (int round = 0; round < 300; ++round) {
      V ids(rng() % 30);
      for (auto& id : ids) {
        id = (rng() % 2) ? interesting[rng() % interesting.size()]
                         : static_cast<int32_t>(rng() % tok->vocab_size());
      }
      IncrementalDecoder dec(*tok, round % 2 == 0);
      std::string streamed;
      for (int32_t id : ids) {
        std::string chunk;
        ASSERT_TRUE(dec.push(id, chunk).is_ok());
        ASSERT_TRUE(utf8::is_valid(chunk));
        streamed += chunk;
      }
      dec.finish(streamed);
      auto batch = tok->decode(ids, round % 2 == 0);
      ASSERT_TRUE(batch.is_ok());
      ASSERT_EQ(streamed, utf8::sanitize(*batch)) << cfg << " round " << round;
      EXPECT_EQ(dec.pending_bytes(), 0u);
    }
  }
}

TEST(IncrementalDecoder, LongRunsOfCleanableBytes) {
  auto tok = Tokenizer::from_hf_json(read_text(testing::data_path("hf_gpt2/tokenizer.json")),
                                     "{\"clean_up_tokenization_spaces\": true}");
  ASSERT_TRUE(tok.is_ok());
  V ids;
  for (int i = 0; i < 3000; ++i) {
    V piece = tok->encode(i % 7 == 0 ? " '" : i % 5 == 0 ? " ," : "  ", false, false);
    ids.insert(ids.end(), piece.begin(), piece.end());
  }
  V tail = tok->encode(" 's x", false, false);
  ids.insert(ids.end(), tail.begin(), tail.end());
  IncrementalDecoder dec(*tok, false);
  std::string streamed;
  for (int32_t id : ids) ASSERT_TRUE(dec.push(id, streamed).is_ok());
  dec.finish(streamed);
  EXPECT_EQ(streamed, *tok->decode(ids, false));
}

TEST(IncrementalDecoder, HoldsBackIncompleteCharacters) {
  auto tok = Tokenizer::from_hf_files(testing::data_path("hf_spm_llama2"));
  ASSERT_TRUE(tok.is_ok());
  // U+1F999 is not in the vocabulary: four byte tokens.
  V ids = tok->encode("\xF0\x9F\xA6\x99!", false, false);
  ASSERT_GE(ids.size(), 5u);
  IncrementalDecoder dec(*tok, false);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    ASSERT_TRUE(dec.push(ids[i], out).is_ok());
    if (i < 4) {
      EXPECT_EQ(out, "") << i;  // the prefix space and the emoji's first bytes wait
    }
  }
  EXPECT_EQ(out, "\xF0\x9F\xA6\x99");
  // A truncated character at the end becomes U+FFFD.
  IncrementalDecoder cut(*tok, false);
  std::string out2;
  ASSERT_TRUE(cut.push(ids[0], out2).is_ok());
  ASSERT_TRUE(cut.push(ids[1], out2).is_ok());
  cut.finish(out2);
  EXPECT_TRUE(utf8::is_valid(out2));
  EXPECT_NE(out2.find("\xEF\xBF\xBD"), std::string::npos);
}

// Arbitrary bytes never crash, and byte-level BPE with all 256 byte tokens round-trips them to
// llama.cpp's re-encoding (invalid bytes -> U+FFFD, overlong forms -> canonical); SentencePiece
// with byte fallback round-trips valid UTF-8 exactly. (The default model lacks a few control-byte
// tokens: like llama.cpp, those bytes are dropped, so it is only checked for valid ids.)
TEST(Robustness, ArbitraryBytesRoundTrip) {
  std::vector<Tokenizer> byte_level;
  for (const char* name : {"hf_llama3", "hf_qwen2", "hf_starcoder", "hf_gpt2"}) {
    auto t = Tokenizer::from_hf_files(testing::data_path(name));
    ASSERT_TRUE(t.is_ok());
    byte_level.push_back(*t);
  }
  if (std::filesystem::exists(testing::default_model_path())) {
    auto g = model::GgufFile::open(testing::default_model_path());
    ASSERT_TRUE(g.is_ok());
    auto t = Tokenizer::from_gguf(*g);
    ASSERT_TRUE(t.is_ok());
    byte_level.push_back(*t);
  }
  auto spm_gguf = model::GgufFile::open(testing::data_path("spm_tiny.gguf"));
  ASSERT_TRUE(spm_gguf.is_ok());
  auto spm = Tokenizer::from_gguf(*spm_gguf);
  ASSERT_TRUE(spm.is_ok());
  auto reencode = [](const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      size_t len;
      uint32_t cp = unicode::decode_lenient(s, i, &len);
      unicode::append_utf8(out, cp);
      i += len;
    }
    return out;
  };
  std::mt19937 rng(123);
  for (int round = 0; round < 400; ++round) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) {
      // Bias towards UTF-8 structure bytes so that valid and broken sequences both occur.
      uint32_t r = rng() % 4;
      c = static_cast<char>(r == 0 ? 0x80 + rng() % 64 : r == 1 ? 0xC0 + rng() % 64 : rng() % 256);
    }
    for (const Tokenizer& t : byte_level) {
      for (bool special : {false, true}) {
        V ids = t.encode(s, false, special);
        for (int32_t id : ids) ASSERT_TRUE(t.is_valid(id));
        auto back = t.decode(ids, false);
        ASSERT_TRUE(back.is_ok());
        // gpt2 cleans up spaces in decode; the default model lacks some byte tokens.
        if (t.pre_tokenizer() != "gpt2" && t.vocab_size() < 10000) {
          ASSERT_EQ(*back, reencode(s)) << testing::escaped(s);
        }
      }
    }
    // SentencePiece: exact for valid UTF-8. (With invalid bytes, a lead byte can swallow the
    // first byte of an escaped space, which then decodes as raw bytes, as in llama.cpp.)
    for (int32_t id : spm->encode(s, true, true)) ASSERT_TRUE(spm->is_valid(id));
    const std::string valid = utf8::sanitize(s);
    auto back = spm->decode(spm->encode(valid, false, false), false);
    ASSERT_TRUE(back.is_ok());
    ASSERT_EQ(*back, valid) << testing::escaped(valid);
  }
}

// The per-thread word cache must not leak results between tokenizers used on one thread.
TEST(WordCache, AlternatingTokenizersOnOneThread) {
  auto a = Tokenizer::from_hf_files(testing::data_path("hf_gpt2"));
  auto b = Tokenizer::from_hf_files(testing::data_path("hf_qwen2"));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  const std::string text = "hello world, hello again world 123 caf\xC3\xA9";
  const V ea = a->encode(text, false, false);
  const V eb = b->encode(text, false, false);
  ASSERT_NE(ea, eb);  // different vocabularies
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(a->encode(text, false, false), ea);
    EXPECT_EQ(b->encode(text, false, false), eb);
  }
  Tokenizer a2 = *a;  // a copy shares the cache identity and the result
  EXPECT_EQ(a2.encode(text, false, false), ea);
}

TEST(Concurrency, ManyThreadsShareOneTokenizer) {
  auto tok = Tokenizer::from_hf_files(testing::data_path("hf_llama3"));
  ASSERT_TRUE(tok.is_ok());
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) {
    texts.push_back("Thread test " + std::to_string(i * 7919) +
                    " caf\xC3\xA9 \xE4\xB8\xAD <|im_end|>");
  }
  std::vector<V> expected;
  for (const auto& t : texts) expected.push_back(tok->encode(t, true, true));
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      Tokenizer copy = *tok;  // copies share the tables
      for (int rep = 0; rep < 20; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (copy.encode(texts[i], true, true) != expected[i]) ++failures[k];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, (std::vector<int>{0, 0, 0, 0}));
}

}  // namespace
}  // namespace sgl::tokenizer
