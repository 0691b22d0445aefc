// Tree of thought: propose several approaches (fork), expand each into several steps (nested
// fork), then let the model pick the most promising plan. Every branch reuses its parent's prefix
// from the radix cache.
#include "example_common.h"

using namespace sgl::lang;

namespace {
const char* kProblems[] = {
    "How can a small town reduce traffic jams near its only school?",
    "How should a student prepare for a history exam in one week?",
    "How can a family save water at home?",
};

void tree_of_thought(State& s, const std::string& problem) {
  s += sgl::lang::system("You are a careful planner. Answer in one short sentence.");
  s += user("Problem: " + problem);
  auto approaches = s.fork(2);
  for (size_t i = 0; i < approaches.size(); ++i) {
    State& a = approaches[i];
    a +=
        assistant("Approach " + std::to_string(i + 1) + ": " + gen("approach", {.max_tokens = 24}));
    auto steps = a.fork(2);
    for (auto& st : steps)
      st += user("Give one concrete first step.") + assistant(gen("step", {.max_tokens = 20}));
    steps.join();
  }
  approaches.join();
  auto plans = s.list("approach");
  std::string menu;
  for (size_t i = 0; i < plans.size(); ++i) menu += std::to_string(i + 1) + ". " + plans[i] + "\n";
  s += user("Which approach is better?\n" + menu + "Answer with the number.");
  s += assistant(select("best", {"1", "2"}));
}
}  // namespace

int main(int argc, char** argv) {
  example::Args args = example::parse(argc, argv, "tree of thought with nested forks");
  example::Runtime rt = example::connect(args);
  const size_t n = sizeof(kProblems) / sizeof(kProblems[0]);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) {
    std::string p = kProblems[i % n];
    programs.push_back([p](State& s) { tree_of_thought(s, p); });
  }
  const int rc = example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    std::printf("problem: %s\n", kProblems[i % n]);
    auto ap = st.list("approach");
    for (size_t k = 0; k < ap.size(); ++k)
      std::printf("  approach %zu: %s\n", k + 1, ap[k].c_str());
    auto steps = st.list("step");
    for (const auto& st : steps) std::printf("    step: %s\n", st.c_str());
    std::printf("  best: %s\n", st.get("best").c_str());
  });

  return rc;
}
