// Multi-turn chat: each turn sends the whole conversation so far; the radix cache serves the
// history, so only the new turn is computed.
#include "example_common.h"

using namespace sgl::lang;

namespace {
const char* kTurns[][3] = {
    {"Hi! Can you suggest a fruit for breakfast?", "Why is it healthy?",
     "Give me a quick recipe with it."},
    {"I want to learn a new language.", "Which one is easiest for English speakers?",
     "How long does it take?"},
    {"What is a good name for a cat?", "Why that name?", "Suggest one more."},
};

void chat(State& s, int which) {
  s += sgl::lang::system("You are a friendly assistant. Keep answers under two sentences.");
  for (int t = 0; t < 3; ++t) {
    s += user(kTurns[which][t]);
    s += assistant(gen("turn" + std::to_string(t), {.max_tokens = 32}));
  }
}
}  // namespace

int main(int argc, char** argv) {
  example::Args args = example::parse(argc, argv, "multi-turn chat with history reuse");
  example::Runtime rt = example::connect(args);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) programs.push_back([i](State& s) { chat(s, i % 3); });
  const int rc = example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    for (const auto& m : st.messages())
      std::printf("%-9s: %s\n", m["role"].get<std::string>().c_str(),
                  m["content"].get<std::string>().c_str());
    std::printf("\n");
  });

  return rc;
}
