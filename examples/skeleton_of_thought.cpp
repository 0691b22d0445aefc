// Skeleton of thought: one program writes a skeleton of points, then calls another program that
// expands every point in parallel (fork), and stitches the answer together.
#include "example_common.h"

using namespace sgl::lang;

namespace {
const char* kQuestions[] = {
    "What are good habits for staying healthy?",
    "How do you start learning to play the guitar?",
    "What makes a good team meeting?",
};

// The inner program: expand each point of the skeleton in parallel.
void expand_points(State& s, int n_points) {
  auto branches = s.fork(n_points);
  for (int i = 0; i < n_points; ++i)
    branches[i] += user("Expand point " + std::to_string(i + 1) + " in one sentence.") +
                   assistant(gen("expansion", {.max_tokens = 24}));
  branches.join();
}

void skeleton_of_thought(State& s, const std::string& question) {
  s += sgl::lang::system("You answer with short, concrete points.");
  s += user(question + " Give exactly three points, one per line, each at most five words.");
  s += assistant(gen("skeleton", {.max_tokens = 32}));
  expand_points(s, 3);  // a program calling a program
  auto parts = s.list("expansion");
  std::string answer;
  for (size_t i = 0; i < parts.size(); ++i)
    answer += std::to_string(i + 1) + ". " + parts[i] + "\n";
  s += "\nFinal answer:\n" + answer;
}
}  // namespace

int main(int argc, char** argv) {
  example::Args args =
      example::parse(argc, argv, "skeleton of thought (a program calling a program)");
  example::Runtime rt = example::connect(args);
  const size_t n = sizeof(kQuestions) / sizeof(kQuestions[0]);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) {
    std::string q = kQuestions[i % n];
    programs.push_back([q](State& s) { skeleton_of_thought(s, q); });
  }
  const int rc = example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    std::printf("question: %s\nskeleton: %s\n", kQuestions[i % n], st.get("skeleton").c_str());
    for (const auto& e : st.list("expansion")) std::printf("  - %s\n", e.c_str());
  });

  return rc;
}
