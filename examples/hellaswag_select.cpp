// HellaSwag-style commonsense completion: pick the most likely ending of a context with `select`
// (the context is prefilled once and the four endings are scored in one batched request).
#include "example_common.h"

using namespace sgl::lang;

namespace {
struct Item {
  const char* context;
  const char* endings[4];
  int label;
};
const Item kItems[] = {
    {"A man is sitting on a roof. He",
     {" starts pulling up roofing on a roof.", " is holding a rubik's cube.",
      " is using wrap to wrap a pair of skis.", " is ripping level tiles off."},
     0},
    {"A woman fills a kettle with water and puts it on the stove. She",
     {" waits for the water to boil.", " throws the kettle out of the window.",
      " paints the kettle blue while it sings.", " plants the kettle in the garden."},
     0},
    {"The children put on their coats and boots because outside it",
     {" was snowing heavily.", " was a very hot summer day.", " was inside the house.",
      " was made of chocolate."},
     0},
    {"He opened the fridge to get some milk, but the carton",
     {" was empty.", " flew away like a bird.", " started to sing loudly.", " turned into a car."},
     0},
};
}  // namespace

int main(int argc, char** argv) {
  example::Args args = example::parse(argc, argv, "HellaSwag-style select over endings");
  example::Runtime rt = example::connect(args);
  const size_t n = sizeof(kItems) / sizeof(kItems[0]);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) {
    const Item& it = kItems[i % n];
    programs.push_back([&it](State& s) {
      s += std::string("Complete the description with the most plausible ending.\n\n") + it.context;
      s += select("ending", {it.endings[0], it.endings[1], it.endings[2], it.endings[3]});
    });
  }
  int correct = 0;
  const int rc = example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    const Item& it = kItems[i % n];
    std::string e = st.get("ending");
    correct += e == it.endings[it.label];
    std::printf("%s ->%s\n", it.context, e.c_str());
  });

  std::printf("accuracy: %d/%d\n", correct, args.batch);
  return rc;
}
