// sgl-cli: inspect models, tokenize and detokenize text (and, with the CPU backend, generate).
//
//   sgl-cli inspect    -m MODEL [--json]
//   sgl-cli tokenize   -m MODEL [--special] [--add-special] TEXT
//   sgl-cli detokenize -m MODEL [--skip-special] ID...
//
// Errors go to stderr with a non-zero exit status.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/loader.h"
#include "support/utf8.h"

namespace {

using sgl::Result;
using sgl::Status;
using Json = nlohmann::json;

struct Args {
  std::string model;
  std::map<std::string, std::string> opts;  // --key value
  std::vector<std::string> flags;           // --flag
  std::vector<std::string> positional;
  bool has(const std::string& f) const {
    for (const auto& x : flags)
      if (x == f) return true;
    return false;
  }
};

int usage(FILE* out) {
  std::fprintf(out,
               "usage: sgl-cli COMMAND [options]\n"
               "\n"
               "commands:\n"
               "  inspect    -m MODEL [--json]            architecture, sizes, tensor types, "
               "tokenizer\n"
               "  tokenize   -m MODEL [--special] [--add-special] TEXT\n"
               "                                           print the token ids as a JSON array\n"
               "             --special      match special tokens (e.g. <|im_start|>) in TEXT\n"
               "             --add-special  add BOS/EOS as the model's metadata asks\n"
               "  detokenize -m MODEL [--skip-special] ID...\n"
               "                                           print the text of the token ids\n"
               "\n"
               "MODEL is a GGUF file or a Hugging Face directory (config.json, tokenizer.json,\n"
               "*.safetensors).\n");
  return out == stderr ? 2 : 0;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "sgl-cli: %s\n", msg.c_str());
  return 1;
}

// Parses "-m X", "--model X", "--key value" for keys in `valued`, "--flag", positionals.
Result<Args> parse_args(int argc, char** argv, int start, const std::vector<std::string>& valued,
                        const std::vector<std::string>& flags) {
  Args a;
  bool only_positional = false;
  for (int i = start; i < argc; ++i) {
    std::string s = argv[i];
    if (only_positional || s.size() < 2 || s[0] != '-' || (s.size() > 1 && std::isdigit(s[1]))) {
      a.positional.push_back(s);
      continue;
    }
    if (s == "--") {
      only_positional = true;
      continue;
    }
    if (s == "-m" || s == "--model" || s == "--model-path") {
      if (i + 1 >= argc) return sgl::invalid_argument(s + " needs a value");
      a.model = argv[++i];
      continue;
    }
    bool known = false;
    for (const auto& v : valued) {
      if (s == v) {
        if (i + 1 >= argc) return sgl::invalid_argument(s + " needs a value");
        a.opts[s] = argv[++i];
        known = true;
      }
    }
    for (const auto& f : flags) {
      if (s == f) {
        a.flags.push_back(s);
        known = true;
      }
    }
    if (!known) return sgl::invalid_argument("unknown option '" + s + "'");
  }
  if (a.model.empty()) return sgl::invalid_argument("missing -m MODEL");
  return a;
}

std::string human_bytes(uint64_t n) {
  char buf[64];
  if (n >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", n / double(1ull << 30));
  else if (n >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", n / double(1ull << 20));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  return buf;
}

Json token_json(const sgl::tokenizer::Tokenizer& t, int32_t id) {
  if (id < 0 || !t.is_valid(id)) return nullptr;
  return Json{{"id", id}, {"text", sgl::utf8::sanitize(t.token_text(id))}};
}

int cmd_inspect(int argc, char** argv) {
  auto args = parse_args(argc, argv, 2, {}, {"--json"});
  if (!args.is_ok()) return fail(args.status().message());
  auto loaded = sgl::models::load_model(args->model);
  if (!loaded.is_ok()) return fail(loaded.status().to_string());
  const sgl::models::LoadedModel& m = **loaded;
  const auto& tok = m.tok();

  // Tensor summary by type.
  struct TypeStat {
    uint64_t count = 0, bytes = 0, elements = 0;
  };
  std::map<std::string, TypeStat> by_type;
  uint64_t n_params = 0, n_bytes = 0, n_tensors = 0;
  auto add = [&](const std::string& type, uint64_t elements, uint64_t bytes) {
    auto& s = by_type[type];
    ++s.count;
    s.bytes += bytes;
    s.elements += elements;
    n_params += elements;
    n_bytes += bytes;
    ++n_tensors;
  };
  std::string name;
  if (m.gguf) {
    for (const auto& t : m.gguf->tensors())
      add(std::string(sgl::model::ggml_type_name(t.type)), t.n_elements, t.n_bytes);
    auto n = m.gguf->get_string_or("general.name", "");
    if (n.is_ok()) name = *n;
  } else {
    for (const auto& t : m.st->tensors()) {
      uint64_t e = 1;
      for (auto d : t.shape) e *= d;
      add(std::string(sgl::model::safetensors_dtype_name(t.dtype)), e, t.n_bytes);
    }
  }
  int special = 0;
  for (int32_t i = 0; i < tok.vocab_size(); ++i) special += tok.is_control(i) ? 1 : 0;

  Json j;
  j["path"] = m.path;
  j["format"] = sgl::models::model_format_name(m.format);
  if (!name.empty()) j["name"] = name;
  j["config"] = m.config.to_json();
  j["n_params"] = n_params;
  j["n_tensors"] = n_tensors;
  j["weight_bytes"] = n_bytes;
  Json types = Json::object();
  for (const auto& [t, s] : by_type)
    types[t] = {{"tensors", s.count}, {"elements", s.elements}, {"bytes", s.bytes}};
  j["tensor_types"] = types;
  Json eog = Json::array();
  for (int32_t id : tok.eog_ids()) eog.push_back(token_json(tok, id));
  j["tokenizer"] = {{"kind", std::string(tok.kind())},
                    {"pre", std::string(tok.pre_tokenizer())},
                    {"vocab_size", tok.vocab_size()},
                    {"control_tokens", special},
                    {"add_bos", tok.add_bos()},
                    {"add_eos", tok.add_eos()},
                    {"bos", token_json(tok, tok.bos_id())},
                    {"eos", token_json(tok, tok.eos_id())},
                    {"eot", token_json(tok, tok.eot_id())},
                    {"eog", eog},
                    {"chat_template", tok.chat_template().has_value()}};
  if (args->has("--json")) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const auto& c = m.config;
  std::printf("model        %s\n", m.path.c_str());
  if (!name.empty()) std::printf("name         %s\n", name.c_str());
  std::printf("format       %s\n", sgl::models::model_format_name(m.format));
  std::printf("architecture %s (%s)\n", c.arch.c_str(), c.summary().c_str());
  std::printf("parameters   %.2f M in %llu tensors, %s\n", n_params / 1e6,
              static_cast<unsigned long long>(n_tensors), human_bytes(n_bytes).c_str());
  std::printf("tensor types");
  for (const auto& [t, s] : by_type)
    std::printf(" %s x%llu (%s)", t.c_str(), static_cast<unsigned long long>(s.count),
                human_bytes(s.bytes).c_str());
  std::printf("\n");
  std::printf("tokenizer    %s (pre: %s), %d tokens, %d control\n",
              std::string(tok.kind()).c_str(), std::string(tok.pre_tokenizer()).c_str(),
              tok.vocab_size(), special);
  auto tok_str = [&](int32_t id) -> std::string {
    if (id < 0 || !tok.is_valid(id)) return "none";
    return std::to_string(id) + " " + Json(sgl::utf8::sanitize(tok.token_text(id))).dump();
  };
  std::printf("special      bos %s, eos %s, eot %s; add_bos %s\n", tok_str(tok.bos_id()).c_str(),
              tok_str(tok.eos_id()).c_str(), tok_str(tok.eot_id()).c_str(),
              tok.add_bos() ? "yes" : "no");
  std::printf("chat template %s\n", tok.chat_template() ? "present" : "absent");
  return 0;
}

int cmd_tokenize(int argc, char** argv) {
  auto args = parse_args(argc, argv, 2, {}, {"--special", "--add-special"});
  if (!args.is_ok()) return fail(args.status().message());
  if (args->positional.size() != 1) return fail("tokenize takes exactly one TEXT argument");
  auto loaded = sgl::models::load_model(args->model);
  if (!loaded.is_ok()) return fail(loaded.status().to_string());
  auto ids = (*loaded)->tok().encode(args->positional[0], args->has("--add-special"),
                                     args->has("--special"));
  std::printf("%s\n", Json(ids).dump().c_str());
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  auto args = parse_args(argc, argv, 2, {}, {"--skip-special"});
  if (!args.is_ok()) return fail(args.status().message());
  std::vector<int32_t> ids;
  for (const auto& s : args->positional) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX)
      return fail("not a token id: '" + s + "'");
    ids.push_back(static_cast<int32_t>(v));
  }
  auto loaded = sgl::models::load_model(args->model);
  if (!loaded.is_ok()) return fail(loaded.status().to_string());
  auto text = (*loaded)->tok().decode(ids, args->has("--skip-special"));
  if (!text.is_ok()) return fail(text.status().message());
  std::fwrite(text->data(), 1, text->size(), stdout);
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(stderr);
  const std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") return usage(stdout);
  static const std::map<std::string, std::function<int(int, char**)>> kCommands = {
      {"inspect", cmd_inspect},
      {"tokenize", cmd_tokenize},
      {"detokenize", cmd_detokenize},
  };
  auto it = kCommands.find(cmd);
  if (it == kCommands.end()) {
    std::fprintf(stderr, "sgl-cli: unknown command '%s'\n\n", cmd.c_str());
    return usage(stderr);
  }
  return it->second(argc, argv);
}
