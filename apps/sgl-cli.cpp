// sgl-cli: inspect models, tokenize and detokenize text (and, with the CPU backend, generate).
//
//   sgl-cli inspect    -m MODEL [--json]
//   sgl-cli tokenize   -m MODEL [--special] [--add-special] TEXT
//   sgl-cli detokenize -m MODEL [--skip-special] ID...
//   sgl-cli generate   -m MODEL -p PROMPT [-n N] [--chat] [sampling options]
//   sgl-cli chat       -m MODEL [sampling options]
//
// Errors go to stderr with a non-zero exit status.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <chrono>
#include <iostream>

#include "backend/cpu_backend.h"
#include "models/loader.h"
#include "runtime/sampler.h"
#include "support/utf8.h"
#include "tokenizer/chat_template.h"

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
               "  generate   -m MODEL -p PROMPT [-n N] [--chat] [--system TEXT] [options]\n"
               "                                           stream a continuation to stdout (stats "
               "to stderr)\n"
               "  chat       -m MODEL [--system TEXT] [options]\n"
               "                                           interactive chat in the terminal\n"
               "\n"
               "generation options:\n"
               "  -n, --max-tokens N   tokens to generate (default 256)\n"
               "  --chat               apply the model's chat template to PROMPT as a user turn\n"
               "  --temperature T      0 = greedy (default 0)\n"
               "  --top-k K --top-p P --min-p P --repetition-penalty R --seed S\n"
               "  --ignore-eos         keep going past end-of-generation tokens\n"
               "  --threads N          CPU threads (default: physical cores)\n"
               "  --kv-dtype T         f16 (default), bf16 or f32\n"
               "  --ctx-size N         KV cache size in tokens (default: model context, <= 65536)\n"
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


// ---- generation -------------------------------------------------------------------------------

struct GenOptions {
  int max_tokens = 256;
  bool ignore_eos = false;
  int threads = 0;
  std::string kv_dtype = "f16";
  int64_t ctx_size = 0;
  std::string system;
  sgl::runtime::SamplingParams sampling;
};

const std::vector<std::string> kGenValued = {"-p", "--prompt", "-n", "--max-tokens",
                                             "--temperature", "--top-k", "--top-p", "--min-p",
                                             "--repetition-penalty", "--seed", "--threads",
                                             "--kv-dtype", "--ctx-size", "--system"};
const std::vector<std::string> kGenFlags = {"--chat", "--ignore-eos"};

Result<double> parse_number(const std::string& key, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno != 0 || !std::isfinite(d))
    return sgl::invalid_argument(key + ": not a number: '" + v + "'");
  return d;
}

Result<GenOptions> gen_options(const Args& a) {
  GenOptions o;
  o.sampling.temperature = 0.0f;
  for (const auto& kv : a.opts) {
    // Named references, not a structured binding: the lambda below captures `k`, which clang
    // before 16 does not allow for structured bindings.
    const std::string& k = kv.first;
    const std::string& v = kv.second;
    if (k == "-p" || k == "--prompt" || k == "--kv-dtype" || k == "--system") continue;
    SGL_ASSIGN_OR_RETURN(double d, parse_number(k, v));
    auto as_int = [&](int64_t lo, int64_t hi) -> Result<int64_t> {
      if (d != std::floor(d) || d < lo || d > hi)
        return sgl::invalid_argument(k + " must be an integer in [" + std::to_string(lo) + ", " +
                                     std::to_string(hi) + "]");
      return static_cast<int64_t>(d);
    };
    if (k == "-n" || k == "--max-tokens") {
      SGL_ASSIGN_OR_RETURN(int64_t n, as_int(0, 1 << 24));
      o.max_tokens = static_cast<int>(n);
    } else if (k == "--temperature") {
      o.sampling.temperature = static_cast<float>(d);
    } else if (k == "--top-k") {
      SGL_ASSIGN_OR_RETURN(int64_t n, as_int(-1, 1 << 24));
      o.sampling.top_k = static_cast<int32_t>(n);
    } else if (k == "--top-p") {
      o.sampling.top_p = static_cast<float>(d);
    } else if (k == "--min-p") {
      o.sampling.min_p = static_cast<float>(d);
    } else if (k == "--repetition-penalty") {
      o.sampling.repetition_penalty = static_cast<float>(d);
    } else if (k == "--seed") {
      SGL_ASSIGN_OR_RETURN(int64_t n, as_int(0, INT64_MAX));
      o.sampling.seed = static_cast<uint64_t>(n);
    } else if (k == "--threads") {
      SGL_ASSIGN_OR_RETURN(int64_t n, as_int(0, 1024));
      o.threads = static_cast<int>(n);
    } else if (k == "--ctx-size") {
      SGL_ASSIGN_OR_RETURN(o.ctx_size, as_int(1, int64_t{1} << 30));
    }
  }
  if (a.opts.count("--kv-dtype")) o.kv_dtype = a.opts.at("--kv-dtype");
  if (a.opts.count("--system")) o.system = a.opts.at("--system");
  o.ignore_eos = a.has("--ignore-eos");
  return o;
}

// One sequence on the CPU backend with its KV cache in slots 0..n-1. A new prompt that shares a
// prefix with what is already cached only computes the rest (so chat turns reuse history).
class Session {
 public:
  Session(const sgl::models::LoadedModel& m, std::unique_ptr<sgl::backend::CpuBackend> b,
          GenOptions o)
      : model_(m), backend_(std::move(b)), opt_(std::move(o)) {
    slots_.resize(static_cast<size_t>(backend_->kv_capacity()));
    for (size_t i = 0; i < slots_.size(); ++i) slots_[i] = static_cast<int32_t>(i);
  }

  const GenOptions& options() const { return opt_; }
  sgl::backend::CpuBackend& backend() { return *backend_; }

  // Generates up to max_tokens after `prompt`, calling on_text with each decoded piece.
  // Returns an error if the prompt does not fit the context.
  Status generate(const std::vector<int32_t>& prompt, const std::function<void(std::string_view)>& on_text) {
    const auto& tok = model_.tok();
    if (prompt.empty()) return sgl::invalid_argument("the prompt is empty");
    if (static_cast<int64_t>(prompt.size()) >= backend_->kv_capacity())
      return sgl::invalid_argument("prompt of " + std::to_string(prompt.size()) +
                                   " tokens does not fit the context of " +
                                   std::to_string(backend_->kv_capacity()));
    // Reuse the cached prefix (always recompute at least the last prompt token).
    size_t common = 0;
    while (common < cached_.size() && common + 1 < prompt.size() && cached_[common] == prompt[common])
      ++common;
    cached_.resize(common);
    auto t0 = std::chrono::steady_clock::now();
    const size_t kChunk = 512;
    sgl::backend::Logits logits;
    for (size_t pos = common; pos < prompt.size(); pos += kChunk) {
      const size_t end = std::min(prompt.size(), pos + kChunk);
      sgl::backend::ForwardBatch batch;
      batch.add_sequence(prompt.data() + pos, static_cast<int32_t>(end - pos),
                         static_cast<int32_t>(pos), slots_.data(), end == prompt.size());
      SGL_RETURN_IF_ERROR(backend_->forward(batch, &logits));
      cached_.insert(cached_.end(), prompt.begin() + pos, prompt.begin() + end);
    }
    auto t1 = std::chrono::steady_clock::now();
    prefill_tokens_ = prompt.size() - common;
    prefill_s_ = std::chrono::duration<double>(t1 - t0).count();

    const uint64_t seed = opt_.sampling.seed ? *opt_.sampling.seed
                                             : static_cast<uint64_t>(t0.time_since_epoch().count());
    sgl::runtime::SamplerState state(opt_.sampling, prompt, seed);
    sgl::tokenizer::IncrementalDecoder dec(tok, /*skip_special=*/true);
    std::vector<std::pair<float, int32_t>> scratch;
    std::vector<float> row(logits.n_vocab);
    std::string piece;
    generated_ = 0;
    finish_ = "length";
    while (generated_ < opt_.max_tokens) {
      std::copy(logits.row(0), logits.row(0) + logits.n_vocab, row.begin());
      sgl::runtime::Sampler::apply_penalties(row, opt_.sampling, state);
      const int32_t next = sgl::runtime::Sampler::sample(row, opt_.sampling, state, scratch);
      state.accept(next);
      ++generated_;
      if (!opt_.ignore_eos && tok.is_eog(next)) {
        finish_ = "stop";
        break;
      }
      piece.clear();
      SGL_RETURN_IF_ERROR(dec.push(next, piece));
      if (!piece.empty()) on_text(piece);
      if (static_cast<int64_t>(cached_.size()) + 1 >= backend_->kv_capacity()) {
        finish_ = "context";
        break;
      }
      if (generated_ >= opt_.max_tokens) break;
      sgl::backend::ForwardBatch batch;
      batch.add_sequence(&next, 1, static_cast<int32_t>(cached_.size()), slots_.data(), true);
      SGL_RETURN_IF_ERROR(backend_->forward(batch, &logits));
      cached_.push_back(next);
    }
    piece.clear();
    dec.finish(piece);
    if (!piece.empty()) on_text(piece);
    decode_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    return Status::ok();
  }

  void print_stats() const {
    std::fprintf(stderr,
                 "\n[prompt %zu tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s "
                 "(%.1f tok/s); finish: %s]\n",
                 prefill_tokens_, prefill_s_, prefill_s_ > 0 ? prefill_tokens_ / prefill_s_ : 0.0,
                 generated_, decode_s_, decode_s_ > 0 ? generated_ / decode_s_ : 0.0,
                 finish_.c_str());
  }

 private:
  const sgl::models::LoadedModel& model_;
  std::unique_ptr<sgl::backend::CpuBackend> backend_;
  GenOptions opt_;
  std::vector<int32_t> slots_;
  std::vector<int32_t> cached_;  // tokens whose K/V are in slots 0..cached_.size()-1
  size_t prefill_tokens_ = 0;
  double prefill_s_ = 0, decode_s_ = 0;
  int generated_ = 0;
  std::string finish_;
};

struct Loaded {
  std::unique_ptr<sgl::models::LoadedModel> model;
  std::unique_ptr<Session> session;
  std::optional<sgl::tokenizer::ChatTemplate> chat_template;
};

Result<Loaded> load_for_generation(const Args& a, bool need_template) {
  SGL_ASSIGN_OR_RETURN(GenOptions o, gen_options(a));
  SGL_RETURN_IF_ERROR(o.sampling.validate(1 << 30));
  SGL_ASSIGN_OR_RETURN(sgl::backend::KvDtype kv, sgl::backend::parse_kv_dtype(o.kv_dtype));
  Loaded l;
  SGL_ASSIGN_OR_RETURN(l.model, sgl::models::load_model(a.model));
  sgl::backend::CpuBackendOptions bo;
  bo.n_threads = o.threads;
  bo.kv_dtype = kv;
  bo.kv_capacity = o.ctx_size ? o.ctx_size : std::min<int64_t>(l.model->config.context_length, 8192);
  SGL_ASSIGN_OR_RETURN(auto backend, sgl::backend::CpuBackend::create(*l.model, bo));
  if (need_template) {
    const auto& src = l.model->tok().chat_template();
    if (!src) return sgl::invalid_argument("the model has no chat template");
    SGL_ASSIGN_OR_RETURN(sgl::tokenizer::ChatTemplate t, sgl::tokenizer::ChatTemplate::parse(*src));
    l.chat_template.emplace(std::move(t));
  }
  l.session = std::make_unique<Session>(*l.model, std::move(backend), std::move(o));
  return l;
}

Result<std::vector<int32_t>> render_chat(const Loaded& l, const nlohmann::ordered_json& messages) {
  const auto& tok = l.model->tok();
  sgl::tokenizer::ChatTemplateOptions opts;
  opts.add_generation_prompt = true;
  if (tok.bos_id() >= 0) opts.bos_token = tok.token_text(tok.bos_id());
  if (tok.eos_id() >= 0) opts.eos_token = tok.token_text(tok.eos_id());
  SGL_ASSIGN_OR_RETURN(std::string text, l.chat_template->render(messages, opts));
  // The template writes BOS itself when the model wants one.
  return tok.encode(text, /*add_special=*/false, /*parse_special=*/true);
}

int cmd_generate(int argc, char** argv) {
  auto args = parse_args(argc, argv, 2, kGenValued, kGenFlags);
  if (!args.is_ok()) return fail(args.status().message());
  std::string prompt;
  if (args->opts.count("-p")) prompt = args->opts.at("-p");
  if (args->opts.count("--prompt")) prompt = args->opts.at("--prompt");
  if (prompt.empty() && args->positional.size() == 1) prompt = args->positional[0];
  if (prompt.empty()) return fail("generate needs -p PROMPT");
  if (!sgl::utf8::is_valid(prompt)) return fail("the prompt is not valid UTF-8");
  const bool chat = args->has("--chat");
  auto loaded = load_for_generation(*args, chat);
  if (!loaded.is_ok()) return fail(loaded.status().to_string());
  Loaded& l = *loaded;
  const auto& tok = l.model->tok();
  std::vector<int32_t> ids;
  if (chat) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (!l.session->options().system.empty())
      messages.push_back({{"role", "system"}, {"content", l.session->options().system}});
    messages.push_back({{"role", "user"}, {"content", prompt}});
    auto r = render_chat(l, messages);
    if (!r.is_ok()) return fail(r.status().to_string());
    ids = std::move(*r);
  } else {
    ids = tok.encode(prompt, /*add_special=*/true, /*parse_special=*/false);
  }
  Status st = l.session->generate(ids, [](std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  if (!st.is_ok()) return fail(st.to_string());
  l.session->print_stats();
  return 0;
}

int cmd_chat(int argc, char** argv) {
  auto args = parse_args(argc, argv, 2, kGenValued, kGenFlags);
  if (!args.is_ok()) return fail(args.status().message());
  auto loaded = load_for_generation(*args, /*need_template=*/true);
  if (!loaded.is_ok()) return fail(loaded.status().to_string());
  Loaded& l = *loaded;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!l.session->options().system.empty())
    messages.push_back({{"role", "system"}, {"content", l.session->options().system}});
  std::fprintf(stderr, "Chatting with %s. Empty line or Ctrl-D to quit; /reset to clear.\n",
               l.model->path.c_str());
  std::string line;
  while (true) {
    std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line.empty()) break;
    if (line == "/reset") {
      messages = nlohmann::ordered_json::array();
      continue;
    }
    if (!sgl::utf8::is_valid(line)) {
      std::fprintf(stderr, "(input is not valid UTF-8)\n");
      continue;
    }
    messages.push_back({{"role", "user"}, {"content", line}});
    auto ids = render_chat(l, messages);
    if (!ids.is_ok()) {
      std::fprintf(stderr, "template error: %s\n", ids.status().message().c_str());
      messages.erase(messages.size() - 1);
      continue;
    }
    std::string reply;
    Status st = l.session->generate(*ids, [&](std::string_view s) {
      reply.append(s);
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    });
    std::printf("\n");
    if (!st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      messages.erase(messages.size() - 1);
      continue;
    }
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
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
      {"generate", cmd_generate},
      {"chat", cmd_chat},
  };
  auto it = kCommands.find(cmd);
  if (it == kCommands.end()) {
    std::fprintf(stderr, "sgl-cli: unknown command '%s'\n\n", cmd.c_str());
    return usage(stderr);
  }
  return it->second(argc, argv);
}
