// A ReAct-style agent loop: the model chooses an action with `select` (look up a fact with a tool,
// or answer), the program runs the tool and appends the observation, up to a few steps.
#include <map>

#include "example_common.h"

using namespace sgl::lang;

namespace {
// The tool: a tiny encyclopedia.
const std::map<std::string, std::string> kFacts = {
    {"France", "France is a country in Europe. Its capital is Paris."},
    {"Japan", "Japan is an island country in Asia. Its capital is Tokyo."},
    {"Kenya", "Kenya is a country in East Africa. Its capital is Nairobi."},
};
const char* kQuestions[] = {"What is the capital of Japan?", "What is the capital of Kenya?",
                            "What is the capital of France?"};

void agent(State& s, const std::string& question) {
  s += sgl::lang::system(
      "You answer questions. You may look up a country in the encyclopedia first.");
  s += user(question);
  for (int step = 0; step < 3; ++step) {
    s += "Thought: I should";
    s += select("action" + std::to_string(step), {" look up a country.", " answer now."});
    if (s["action" + std::to_string(step)] == " answer now.") break;
    s += "\nCountry:";
    s += select("country" + std::to_string(step), {" France", " Japan", " Kenya"});
    std::string c = s["country" + std::to_string(step)].substr(1);
    s += "\nObservation: " + kFacts.at(c) + "\n";
  }
  s += "\nFinal answer: The capital is";
  s += gen("answer", {.max_tokens = 8, .stop = {".", "\n"}});
}
}  // namespace

int main(int argc, char** argv) {
  example::Args args = example::parse(argc, argv, "ReAct-style agent loop with a tool");
  example::Runtime rt = example::connect(args);
  const size_t n = sizeof(kQuestions) / sizeof(kQuestions[0]);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) {
    std::string q = kQuestions[i % n];
    programs.push_back([q](State& s) { agent(s, q); });
  }
  return example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    std::printf("%s -> %s\n", kQuestions[i % n], st.get("answer").c_str());
  });
}
