// Few-shot multiple-choice QA in the MMLU style: a fixed 5-shot prompt (shared by every question,
// so the radix cache serves it after the first), then `select` over A-D for each question.
#include "example_common.h"

using namespace sgl::lang;

namespace {
struct Question {
  const char* q;
  const char* choices[4];
  char answer;
};
const Question kShots[] = {
    {"What is the boiling point of water at sea level in Celsius?",
     {"50", "100", "150", "200"},
     'B'},
    {"Which planet is known as the Red Planet?", {"Venus", "Jupiter", "Mars", "Saturn"}, 'C'},
    {"How many legs does a spider have?", {"Six", "Eight", "Ten", "Four"}, 'B'},
    {"What gas do plants absorb from the air?",
     {"Oxygen", "Nitrogen", "Helium", "Carbon dioxide"},
     'D'},
    {"Which is the largest ocean on Earth?", {"Pacific", "Atlantic", "Indian", "Arctic"}, 'A'},
};
const Question kQuestions[] = {
    {"What is the chemical symbol for gold?", {"Ag", "Au", "Gd", "Go"}, 'B'},
    {"How many days are in a leap year?", {"364", "365", "366", "367"}, 'C'},
    {"Which animal is the largest mammal?", {"Elephant", "Blue whale", "Giraffe", "Hippo"}, 'B'},
    {"What is the capital of Japan?", {"Kyoto", "Osaka", "Tokyo", "Nagoya"}, 'C'},
    {"Which organ pumps blood through the body?", {"Lungs", "Liver", "Kidney", "Heart"}, 'D'},
    {"What is 7 times 8?", {"54", "56", "58", "64"}, 'B'},
    {"Which colour do you get by mixing blue and yellow?",
     {"Green", "Purple", "Orange", "Red"},
     'A'},
    {"What is frozen water called?", {"Steam", "Ice", "Fog", "Dew"}, 'B'},
};

std::string format(const Question& q) {
  std::string s = std::string("Question: ") + q.q + "\n";
  for (int i = 0; i < 4; ++i)
    s += std::string(1, static_cast<char>('A' + i)) + ". " + q.choices[i] + "\n";
  return s + "Answer:";
}
}  // namespace

int main(int argc, char** argv) {
  example::Args args = example::parse(argc, argv, "few-shot multiple-choice QA (MMLU style)");
  example::Runtime rt = example::connect(args);
  std::string shots = "The following are multiple choice questions about general knowledge.\n\n";
  for (const auto& q : kShots) shots += format(q) + " " + q.answer + "\n\n";
  const size_t nq = sizeof(kQuestions) / sizeof(kQuestions[0]);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) {
    const Question& q = kQuestions[i % nq];
    programs.push_back([&shots, &q](State& s) {
      s += shots + format(q);
      s += select("answer", {" A", " B", " C", " D"});
    });
  }
  int correct = 0;
  const int rc = example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    const Question& q = kQuestions[i % nq];
    std::string a = st.get("answer");
    if (a.size() == 2 && a[1] == q.answer) ++correct;
    std::printf("%-55s -> %s (expected %c)\n", q.q, a.c_str(), q.answer);
  });

  std::printf("accuracy: %d/%d\n", correct, args.batch);
  return rc;
}
