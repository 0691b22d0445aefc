// LLM judge: grade an answer on several dimensions in parallel (fork/join), then give a verdict.
#include "example_common.h"

using namespace sgl::lang;

namespace {
const char* kDimensions[] = {"accuracy", "clarity", "helpfulness"};
struct Case {
  const char* question;
  const char* answer;
};
const Case kCases[] = {
    {"What is the capital of France?", "The capital of France is Paris."},
    {"How many continents are there?", "There are seven continents on Earth."},
    {"Why is the sky blue?", "Because it reflects the ocean, which is blue."},
};

void judge(State& s, const Case& c) {
  s += sgl::lang::system("You are a strict but fair judge of answers.");
  s += user(std::string("Question: ") + c.question + "\nAnswer: " + c.answer);
  auto dims = s.fork(3);
  for (int i = 0; i < 3; ++i) {
    dims[i] += user(std::string("Rate the answer's ") + kDimensions[i] +
                    " from 1 to 5. Reply with one digit.");
    dims[i] += assistant(select("score", {"1", "2", "3", "4", "5"}));
  }
  dims.join();
  s += user("Overall, is the answer acceptable?");
  s += assistant(select("verdict", {"Yes", "No"}));
}
}  // namespace

int main(int argc, char** argv) {
  example::Args args = example::parse(argc, argv, "LLM judge over several dimensions (fork/join)");
  example::Runtime rt = example::connect(args);
  const size_t n = sizeof(kCases) / sizeof(kCases[0]);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) {
    const Case& c = kCases[i % n];
    programs.push_back([&c](State& s) { judge(s, c); });
  }
  const int rc = example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    const Case& c = kCases[i % n];
    auto scores = st.list("score");
    std::printf("%s | %s\n", c.question, c.answer);
    for (size_t k = 0; k < scores.size() && k < 3; ++k)
      std::printf("  %-12s %s\n", kDimensions[k], scores[k].c_str());
    std::printf("  verdict      %s\n", st.get("verdict").c_str());
  });

  return rc;
}
