// JSON extraction (the paper's JSON decoding workload): read a short description of a city and
// extract its fields into a JSON Schema, and a code with a regex. Structured outputs constrain the
// generation; jump-forward fills in the schema's fixed parts without decode steps.
#include "example_common.h"

using namespace sgl::lang;

namespace {
const char* kCities[] = {
    "Paris is the capital of France. About 2.1 million people live in the city, which lies on "
    "the river Seine and is famous for the Eiffel Tower.",
    "Tokyo, the capital of Japan, is home to about 14 million people and sits on Tokyo Bay.",
    "Nairobi is the capital of Kenya, with roughly 4.4 million inhabitants, close to the "
    "Nairobi National Park.",
};
const char* kSchema = R"({"type": "object", "properties": {
  "name": {"type": "string", "maxLength": 24},
  "country": {"type": "string", "maxLength": 24},
  "is_capital": {"type": "boolean"},
  "population_millions": {"type": "integer", "minimum": 0, "maximum": 100}},
 "required": ["name", "country", "is_capital", "population_millions"],
 "additionalProperties": false})";

void extract(State& s, const std::string& text) {
  s += sgl::lang::system("You extract facts from text as JSON.");
  s += user("Text: " + text + "\nExtract the city's name, country, whether it is a capital, and "
            "its population in millions.");
  s += assistant(gen("json", {.max_tokens = 96, .json_schema = std::string(kSchema)}));
  s += user("Give the country's two-letter code.");
  s += assistant(gen("code", {.max_tokens = 4, .regex = std::string("[A-Z]{2}")}));
}
}  // namespace

int main(int argc, char** argv) {
  example::Args args = example::parse(argc, argv, "JSON extraction with a schema and a regex");
  example::Runtime rt = example::connect(args);
  const size_t n = sizeof(kCities) / sizeof(kCities[0]);
  std::vector<Program> programs;
  for (int i = 0; i < args.batch; ++i) {
    std::string t = kCities[i % n];
    programs.push_back([t](State& s) { extract(s, t); });
  }
  return example::run_and_report(args, rt, programs, [&](size_t i, ProgramState& st) {
    std::printf("%s\n  -> %s (code %s)\n", kCities[i % n], st.get("json").c_str(),
                st.get("code").c_str());
  });
}
