// Tokenizer::from_hf_json / from_hf_files: Hugging Face tokenizer.json + tokenizer_config.json.
//
// Accepted configurations (anything else is kUnsupported, naming the component):
//   model: BPE (no dropout, no continuing_subword_prefix / end_of_word_suffix)
//   byte-level: pre_tokenizer ByteLevel(add_prefix_space=false), possibly inside a Sequence after
//     Split(<known regex>, Isolated) or Digits; normalizer null or NFC (NFC is not applied, as in
//     llama.cpp: input that is not already NFC may tokenize differently from Hugging Face);
//   SentencePiece-style: pre_tokenizer Metaspace("▁") or a normalizer Sequence of
//     Prepend("▁") / Replace(" ", "▁"), merges by rank with byte_fallback <0xXX> tokens.
// Special tokens: added_tokens with special=true become control tokens, the others user-defined;
// bos/eos/unk/pad come from tokenizer_config.json, add_bos/add_eos from its add_bos_token /
// add_eos_token or else from a TemplateProcessing post-processor.

#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace sgl::tokenizer {
namespace {

using json = nlohmann::json;

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";
constexpr int64_t kMaxVocab = 1 << 24;

// The split patterns we implement, as they appear in tokenizer.json (and llama.cpp's variants).
std::optional<PreTokenizerStage> stage_for_regex(std::string_view re) {
  static const std::pair<std::string_view, PreTokenizerStage> kKnown[] = {
      {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
       "?[^\\s\\p{L}\\p{N}]+"
       "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
       PreTokenizerStage::kLlama3},
      {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
       "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
       PreTokenizerStage::kLlama3},
      {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
       "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
       PreTokenizerStage::kQwen2},
      {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
       "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
       PreTokenizerStage::kQwen2},
      {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
       PreTokenizerStage::kGpt2},
      {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
       PreTokenizerStage::kGpt2},
  };
  for (const auto& [pattern, stage] : kKnown) {
    if (re == pattern) return stage;
  }
  return std::nullopt;
}

std::string type_of(const json& j) {
  if (!j.is_object()) return "";
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool get_bool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : def;
}

// A token given as "text" or {"content": "text", ...} in tokenizer_config.json.
std::optional<std::string> token_content(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

// Byte-level pre-tokenizer pieces: fills stages; requires a ByteLevel component.
Status parse_byte_level_pre(const json& pre, TokenizerImpl& t) {
  std::vector<const json*> parts;
  if (type_of(pre) == "Sequence") {
    auto it = pre.find("pretokenizers");
    if (it == pre.end() || !it->is_array())
      return invalid_argument("tokenizer.json: Sequence pre_tokenizer without pretokenizers");
    for (const json& p : *it) parts.push_back(&p);
  } else {
    parts.push_back(&pre);
  }
  bool byte_level = false;
  bool digits = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    const json& p = *parts[i];
    const std::string type = type_of(p);
    if (byte_level) return unsupported("tokenizer.json: pre_tokenizer component after ByteLevel");
    if (type == "ByteLevel") {
      if (get_bool(p, "add_prefix_space", false)) {
        return unsupported("tokenizer.json: ByteLevel pre_tokenizer with add_prefix_space=true");
      }
      if (get_bool(p, "use_regex", true)) t.stages.push_back(PreTokenizerStage::kGpt2);
      byte_level = true;
    } else if (type == "Split") {
      auto pat = p.find("pattern");
      if (pat == p.end() || !pat->is_object() || !pat->contains("Regex") ||
          !(*pat)["Regex"].is_string()) {
        return unsupported("tokenizer.json: Split pre_tokenizer without a Regex pattern");
      }
      const std::string re = (*pat)["Regex"].get<std::string>();
      std::optional<PreTokenizerStage> stage = stage_for_regex(re);
      if (!stage)
        return unsupported("tokenizer.json: Split pre_tokenizer with unknown regex '" + re + "'");
      if (p.value("behavior", std::string("Isolated")) != "Isolated" ||
          get_bool(p, "invert", false)) {
        return unsupported("tokenizer.json: Split pre_tokenizer must be Isolated and not inverted");
      }
      t.stages.push_back(*stage);
    } else if (type == "Digits") {
      t.stages.push_back(get_bool(p, "individual_digits", false) ? PreTokenizerStage::kEachNumber
                                                                 : PreTokenizerStage::kNumberRuns);
      digits = true;
    } else {
      return unsupported("tokenizer.json: pre_tokenizer type '" + type + "' is not supported");
    }
  }
  if (!byte_level)
    return unsupported("tokenizer.json: BPE without a ByteLevel or Metaspace pre_tokenizer");
  if (t.stages.empty())
    return unsupported("tokenizer.json: ByteLevel pre_tokenizer without any split pattern");
  using S = PreTokenizerStage;
  if (t.stages == std::vector<S>{S::kLlama3}) {
    t.pre_name = "llama3";
  } else if (t.stages == std::vector<S>{S::kQwen2}) {
    t.pre_name = "qwen2";
  } else if (t.stages == std::vector<S>{S::kGpt2}) {
    t.pre_name = "gpt2";
  } else if (digits && t.stages == std::vector<S>{S::kEachNumber, S::kGpt2}) {
    t.pre_name = "smollm";
  } else {
    t.pre_name = "custom";
  }
  return Status::ok();
}

// SentencePiece-style text handling from a Metaspace pre_tokenizer or a normalizer.
Status parse_spm_style(const json& normalizer, const json& pre, TokenizerImpl& t) {
  t.space_prefix = SpacePrefix::kNever;
  if (type_of(pre) == "Metaspace") {
    if (pre.value("replacement", std::string(kSpaceMarker)) != kSpaceMarker) {
      return unsupported("tokenizer.json: Metaspace replacement other than U+2581");
    }
    std::string scheme = pre.value("prepend_scheme", std::string());
    if (scheme.empty()) scheme = get_bool(pre, "add_prefix_space", true) ? "always" : "never";
    if (scheme == "always") {
      t.space_prefix = SpacePrefix::kUnlessLeading;
    } else if (scheme == "first") {
      t.space_prefix = SpacePrefix::kFirstUnlessLeading;
    } else if (scheme != "never") {
      return unsupported("tokenizer.json: Metaspace prepend_scheme '" + scheme + "'");
    }
    t.split_on_space = get_bool(pre, "split", true);
    if (!normalizer.is_null())
      return unsupported("tokenizer.json: normalizer together with Metaspace");
  } else if (pre.is_null()) {
    std::vector<const json*> parts;
    if (type_of(normalizer) == "Sequence") {
      for (const json& n : normalizer.at("normalizers")) parts.push_back(&n);
    } else if (!normalizer.is_null()) {
      parts.push_back(&normalizer);
    }
    bool replaced = false;
    for (const json* n : parts) {
      const std::string type = type_of(*n);
      if (type == "Prepend" && n->value("prepend", std::string()) == kSpaceMarker && !replaced) {
        t.space_prefix = SpacePrefix::kEverySegment;
      } else if (type == "Replace" && n->contains("pattern") &&
                 (*n)["pattern"].value("String", std::string()) == " " &&
                 n->value("content", std::string()) == kSpaceMarker) {
        replaced = true;
      } else {
        return unsupported("tokenizer.json: normalizer '" + type + "' is not supported");
      }
    }
    if (!replaced)
      return unsupported("tokenizer.json: SentencePiece-style BPE without Replace(' ', '▁')");
  } else {
    return unsupported("tokenizer.json: pre_tokenizer type '" + type_of(pre) +
                       "' is not supported");
  }
  t.add_space_prefix = t.space_prefix != SpacePrefix::kNever;
  t.strip_from_output = true;
  return Status::ok();
}

bool is_byte_token_text(std::string_view s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s.substr(0, 3) == "<0x" && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

// Special tokens from a TemplateProcessing "single" template: (leading, trailing) token texts.
void template_specials(const json& post, std::optional<std::string>* first,
                       std::optional<std::string>* last) {
  const std::string type = type_of(post);
  if (type == "Sequence") {
    auto it = post.find("processors");
    if (it != post.end() && it->is_array()) {
      for (const json& p : *it) template_specials(p, first, last);
    }
    return;
  }
  if (type != "TemplateProcessing") return;
  auto single = post.find("single");
  if (single == post.end() || !single->is_array() || single->empty()) return;
  auto special_of = [](const json& item) -> std::optional<std::string> {
    auto st = item.find("SpecialToken");
    if (st != item.end() && st->is_object() && st->contains("id") && (*st)["id"].is_string()) {
      return (*st)["id"].get<std::string>();
    }
    return std::nullopt;
  };
  *first = special_of(single->front());
  if (single->size() > 1) *last = special_of(single->back());
}

Result<Tokenizer> parse_hf(std::string_view tokenizer_json, std::string_view config_json) {
  json tok = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (tok.is_discarded() || !tok.is_object())
    return invalid_argument("tokenizer.json: not a JSON object");
  json cfg = json::object();
  if (!config_json.empty()) {
    cfg = json::parse(config_json, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object())
      return invalid_argument("tokenizer_config.json: not a JSON object");
  }
  auto impl = std::make_shared<TokenizerImpl>();
  TokenizerImpl& t = *impl;

  const json& model = tok.contains("model") ? tok["model"] : json();
  if (!model.is_object()) return invalid_argument("tokenizer.json: no model");
  std::string model_type = type_of(model);
  if (model_type.empty() && model.contains("merges")) model_type = "BPE";
  if (model_type != "BPE")
    return unsupported("tokenizer.json: model type '" + model_type + "' is not supported");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      model["dropout"].get<double>() != 0.0) {
    return unsupported("tokenizer.json: BPE dropout");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty()) {
      return unsupported(std::string("tokenizer.json: BPE ") + key);
    }
  }

  // Vocabulary: model.vocab plus added_tokens, by id.
  std::map<int64_t, std::string> by_id;
  const json& vocab = model.contains("vocab") ? model["vocab"] : json();
  if (!vocab.is_object() || vocab.empty())
    return invalid_argument("tokenizer.json: model.vocab is missing or empty");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer())
      return invalid_argument("tokenizer.json: vocab id of '" + it.key() + "' is not an integer");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= kMaxVocab)
      return invalid_argument("tokenizer.json: vocab id " + std::to_string(id) + " out of range");
    if (!by_id.emplace(id, it.key()).second)
      return invalid_argument("tokenizer.json: vocab id " + std::to_string(id) + " used twice");
  }
  struct Added {
    bool special, lstrip, rstrip;
  };
  std::map<int64_t, Added> added;
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array()) {
    for (const json& a : tok["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string()) {
        return invalid_argument("tokenizer.json: malformed added token");
      }
      int64_t id = a["id"].get<int64_t>();
      std::string content = a["content"].get<std::string>();
      if (id < 0 || id >= kMaxVocab)
        return invalid_argument("tokenizer.json: added token id " + std::to_string(id) +
                                " out of range");
      if (content.empty())
        return invalid_argument("tokenizer.json: empty added token at id " + std::to_string(id));
      auto [it, inserted] = by_id.emplace(id, content);
      if (!inserted && it->second != content) {
        return invalid_argument("tokenizer.json: added token '" + content + "' conflicts with '" +
                                it->second + "' at id " + std::to_string(id));
      }
      added[id] = {get_bool(a, "special", false), get_bool(a, "lstrip", false),
                   get_bool(a, "rstrip", false)};
    }
  }
  const int64_t n = by_id.rbegin()->first + 1;

  // Engine.
  const json& pre = tok.contains("pre_tokenizer") ? tok["pre_tokenizer"] : json();
  const json& normalizer = tok.contains("normalizer") ? tok["normalizer"] : json();
  const bool byte_level_pre =
      type_of(pre) == "ByteLevel" ||
      (type_of(pre) == "Sequence" && pre.dump().find("\"ByteLevel\"") != std::string::npos);
  if (byte_level_pre) {
    t.engine = Engine::kByteLevelBpe;
    t.kind = "gpt2";
    if (!normalizer.is_null() && type_of(normalizer) != "NFC") {
      return unsupported("tokenizer.json: normalizer '" + type_of(normalizer) +
                         "' with a ByteLevel pre_tokenizer");
    }
    SGL_RETURN_IF_ERROR(parse_byte_level_pre(pre, t));
    t.ignore_merges = get_bool(model, "ignore_merges", false);
  } else {
    t.engine = Engine::kSpmRanks;
    t.kind = "llama";
    SGL_RETURN_IF_ERROR(parse_spm_style(normalizer, pre, t));
    t.byte_fallback = get_bool(model, "byte_fallback", false);
    t.fuse_unk = get_bool(model, "fuse_unk", false);
  }
  std::optional<std::string> model_unk;
  if (model.contains("unk_token") && model["unk_token"].is_string())
    model_unk = model["unk_token"].get<std::string>();

  for (int64_t id = 0; id < n; ++id) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      t.vocab.add("<sgl_missing_" + std::to_string(id) + ">", 0.0f,
                  static_cast<int32_t>(TokenType::kUnused));
      continue;
    }
    TokenType type = TokenType::kNormal;
    auto a = added.find(id);
    if (model_unk && it->second == *model_unk) {
      type = TokenType::kUnknown;
    } else if (a != added.end()) {
      type = a->second.special ? TokenType::kControl : TokenType::kUserDefined;
    } else if (t.engine == Engine::kSpmRanks && t.byte_fallback && is_byte_token_text(it->second)) {
      type = TokenType::kByte;
    }
    t.vocab.add(it->second, 0.0f, static_cast<int32_t>(type));
  }
  for (const auto& [id, a] : added) {
    uint16_t attr = t.vocab.attr(static_cast<int32_t>(id));
    if (a.lstrip) attr |= kAttrLstrip;
    if (a.rstrip) attr |= kAttrRstrip;
    t.vocab.set_attr(static_cast<int32_t>(id), attr);
  }
  t.vocab.finish();

  // Merges: "a b" strings or [a, b] pairs.
  if (!model.contains("merges") || !model["merges"].is_array())
    return invalid_argument("tokenizer.json: model.merges is missing");
  for (const json& m : model["merges"]) {
    if (m.is_string()) {
      const std::string line = m.get<std::string>();
      size_t pos = line.find(' ', 1);
      if (pos == std::string::npos)
        return invalid_argument("tokenizer.json: merge '" + line + "' has no space");
      t.merge_pairs.emplace_back(line.substr(0, pos), line.substr(pos + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      t.merge_pairs.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return invalid_argument("tokenizer.json: malformed merge " + m.dump());
    }
  }

  // Special ids and flags from tokenizer_config.json.
  auto id_of = [&](const char* key, int32_t* slot) -> Status {
    std::optional<std::string> text = token_content(cfg, key);
    if (!text) return Status::ok();
    int32_t id = t.vocab.find(*text);
    if (id < 0)
      return invalid_argument(std::string("tokenizer_config.json: ") + key + " '" + *text +
                              "' is not in the vocabulary");
    *slot = id;
    return Status::ok();
  };
  SGL_RETURN_IF_ERROR(id_of("bos_token", &t.bos));
  SGL_RETURN_IF_ERROR(id_of("eos_token", &t.eos));
  SGL_RETURN_IF_ERROR(id_of("unk_token", &t.unk));
  SGL_RETURN_IF_ERROR(id_of("pad_token", &t.pad));
  if (t.unk < 0 && model_unk) t.unk = t.vocab.find(*model_unk);
  std::optional<std::string> tmpl_first, tmpl_last;
  if (tok.contains("post_processor"))
    template_specials(tok["post_processor"], &tmpl_first, &tmpl_last);
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    t.add_bos = cfg["add_bos_token"].get<bool>();
  } else if (tmpl_first) {
    t.add_bos = true;
    if (t.bos < 0) t.bos = t.vocab.find(*tmpl_first);
  }
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) {
    t.add_eos = cfg["add_eos_token"].get<bool>();
  } else if (tmpl_last) {
    t.add_eos = true;
    if (t.eos < 0) t.eos = t.vocab.find(*tmpl_last);
  }
  t.clean_spaces = get_bool(cfg, "clean_up_tokenization_spaces", false);
  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      t.chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const json& named : ct) {
        if (named.is_object() && named.value("name", std::string()) == "default" &&
            named.contains("template") && named["template"].is_string()) {
          t.chat_template = named["template"].get<std::string>();
        }
      }
    }
  }
  return make_tokenizer(std::move(impl));
}

Result<std::string> read_file(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!required) return std::string();
    return io_error("cannot open " + path);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return io_error("cannot read " + path);
  return ss.str();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_hf_json(std::string_view tokenizer_json,
                                          std::string_view tokenizer_config_json) {
  try {
    return parse_hf(tokenizer_json, tokenizer_config_json);
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("tokenizer.json: unexpected structure: ") + e.what());
  }
}

Result<Tokenizer> Tokenizer::from_hf_files(const std::string& dir) {
  SGL_ASSIGN_OR_RETURN(std::string tok, read_file(dir + "/tokenizer.json", true));
  SGL_ASSIGN_OR_RETURN(std::string cfg, read_file(dir + "/tokenizer_config.json", false));
  return from_hf_json(tok, cfg);
}

}  // namespace sgl::tokenizer
