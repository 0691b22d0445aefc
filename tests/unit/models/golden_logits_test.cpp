// The CPU backend's logits on the default model (SmolLM2-135M-Instruct Q4_1) against llama.cpp's,
// stored by tests/data/logits/make_golden.py: 8 prompts (prose, code, a ChatML conversation,
// numbers, French, multilingual, a long instruction, JSON), 1021 positions in all.
//
// Measured on the 2-core development machine (AVX-512 VNNI path with the panel kernels, KV f16,
// 2 threads), against llama.cpp (llama-cpp-python 0.3.36):
//   top-1 agreement: 96.4% (984/1021 positions); 853/855 where llama.cpp's top-2 gap >= 0.25;
//     558/558 where it is >= 1
//   NMSE on the 64 full rows: mean 3.0e-3, max 5.1e-2
//   top-32-restricted NMSE on all positions: mean 3.2e-4, max 1.4e-2
//   row RMS relative error: mean 0.016, max 0.18
//   greedy: our continuation equals llama.cpp's for 212/256 tokens (5 of 8 prompts entirely);
//     fed llama.cpp's tokens, 250/256 steps pick llama.cpp's token; no miss at a gap >= 1
// Activations are quantized exactly like llama.cpp's Q8_1 / Q8_0 blocks (the same int8 values,
// f16 scales and sums); against the earlier f32 scales this lowered the top-32 NMSE from 5.1e-4
// to 3.2e-4 and lengthened the equal greedy continuations from 143 to 212 tokens, but moved
// top-1 only from 96.1% to 96.4%. 97% top-1 is out of reach of any implementation that is not
// bit-identical to llama.cpp: this model amplifies any last-bit difference through 30 layers of
// int8 re-quantization (a flipped int8 rounding changes later roundings). Measured: our own backend
// with only the RMSNorm sum of squares taken in double instead of f32 (a change in the last bit)
// agrees with itself on top-1 at 95.8% of these positions; llama.cpp agrees with an exact float64
// forward at 96.8%. Bit-identity with llama.cpp is not possible while keeping batch invariance:
// llama.cpp itself computes attention and the LM head in different orders for a batch (tinyBLAS)
// and for one token (vec_dot). (The test prints the current numbers.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu_backend.h"
#include "models/loader.h"
#include "support/fp16.h"
#include "test_util.h"

namespace sgl::models {
namespace {

using testing::argmax;
using testing::default_model_path;
using testing::default_model_present;
using testing::iota_slots;
using testing::nmse;
using testing::run_forward;
using testing::SeqRequest;

constexpr int kTopK = 32;
// The noise floor (see the file comment). llama.cpp itself differs from an exact float64 forward
// over the same dequantized weights (make_golden.py --check-f64) by NMSE 2.1e-3 on average,
// agrees on the top-1 token at 96.8% of the positions, and misses top-1 at top-2 gaps up to
// 0.32; the error of its top-2 gap reaches 0.95 logits. Our own f16-KV and f32-KV runs differ by
// NMSE 1.7e-3. So a top-1 choice is only required to agree where llama.cpp's top-2 gap is at
// least kClearGap.
constexpr float kClearGap = 1.0f;
constexpr float kFairGap = 0.25f;  // at least 99% agreement required above this gap

struct TopKRecord {
  int32_t ids[kTopK];
  float logits[kTopK];
  double sum;
  double sumsq;
};
static_assert(sizeof(TopKRecord) == 272);

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Golden {
  nlohmann::json index;
  std::vector<TopKRecord> topk;
  std::vector<uint16_t> full_rows;  // [n_full_rows, n_vocab] f16
};

Golden load_golden() {
  const std::string dir = std::string(SGL_TEST_DATA_DIR) + "/logits/";
  Golden g;
  g.index = nlohmann::json::parse(read_file(dir + "golden.json"));
  const std::string topk = read_file(dir + "topk.bin");
  g.topk.resize(topk.size() / sizeof(TopKRecord));
  std::memcpy(g.topk.data(), topk.data(), g.topk.size() * sizeof(TopKRecord));
  const std::string rows = read_file(dir + "full_rows.f16");
  g.full_rows.resize(rows.size() / 2);
  std::memcpy(g.full_rows.data(), rows.data(), g.full_rows.size() * 2);
  return g;
}

TEST(GoldenLogits, MatchesLlamaCpp) {
  if (!default_model_present()) GTEST_SKIP() << "default model not found: " << default_model_path();
  const Golden g = load_golden();
  const int32_t n_vocab = g.index.at("n_vocab").get<int32_t>();
  ASSERT_EQ(g.index.at("top_k").get<int>(), kTopK);
  ASSERT_EQ(g.topk.size(), g.index.at("n_positions").get<size_t>());
  ASSERT_EQ(g.full_rows.size(), g.index.at("n_full_rows").get<size_t>() * n_vocab);
  ASSERT_GE(g.topk.size(), 1000u);

  auto model = load_model(default_model_path());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  ASSERT_EQ(static_cast<int32_t>((*model)->config.n_vocab), n_vocab);
  backend::CpuBackendOptions opts;
  opts.n_threads = 2;
  opts.kv_dtype = backend::KvDtype::kF16;
  opts.kv_capacity = 256;
  auto be = backend::CpuBackend::create(**model, opts);
  ASSERT_TRUE(be.is_ok()) << be.status().to_string();

  int64_t positions = 0, top1_agree = 0, clear = 0, clear_agree = 0, fair = 0, fair_agree = 0;
  double stat_err_sum = 0;
  double topk_nmse_sum = 0, topk_nmse_max = 0, stat_err_max = 0;
  std::vector<double> full_nmse;
  int greedy_total = 0, greedy_prefix = 0, greedy_forced = 0;

  for (const auto& p : g.index.at("prompts")) {
    const std::string name = p.at("name").get<std::string>();
    SCOPED_TRACE("prompt " + name);
    const auto tokens = p.at("tokens").get<std::vector<int32_t>>();
    const int32_t n = static_cast<int32_t>(tokens.size());

    // Our tokenizer must produce llama.cpp's ids for the same text (the chat prompt parses the
    // special tokens), or the comparison below would not mean much.
    const auto ours = (*model)->tok().encode(p.at("text").get<std::string>(), true,
                                             p.at("parse_special").get<bool>());
    ASSERT_GE(ours.size(), tokens.size());
    EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), ours.begin()))
        << "tokenization differs from llama.cpp's";

    // Prefill the whole prompt in one pass with logits for every position.
    const std::vector<int32_t> slots = iota_slots(0, n + 32);
    SeqRequest req{tokens, 0, std::vector<int32_t>(slots.begin(), slots.begin() + n), true};
    const auto out = run_forward(**be, {req});
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].size(), static_cast<size_t>(n) * n_vocab);

    const size_t topk_offset = p.at("topk_offset").get<size_t>();
    for (int32_t pos = 0; pos < n; ++pos) {
      const float* row = out[0].data() + static_cast<size_t>(pos) * n_vocab;
      const TopKRecord& ref = g.topk[topk_offset + pos];
      ++positions;
      const bool agree = argmax(row, n_vocab) == ref.ids[0];
      const float gap = ref.logits[0] - ref.logits[1];
      top1_agree += agree;
      if (gap >= kFairGap) {
        ++fair;
        fair_agree += agree;
      }
      if (gap >= kClearGap) {
        ++clear;
        clear_agree += agree;
        EXPECT_TRUE(agree) << "position " << pos << ": top-1 differs from llama.cpp's although "
                           << "its top-2 gap is " << gap;
      }
      float ours_at[kTopK];
      for (int k = 0; k < kTopK; ++k) ours_at[k] = row[ref.ids[k]];
      const double e = nmse(ours_at, ref.logits, kTopK);
      topk_nmse_sum += e;
      topk_nmse_max = std::max(topk_nmse_max, e);
      // Whole-row statistics: the root mean square of the row agrees with llama.cpp's.
      double sumsq = 0;
      for (int32_t v = 0; v < n_vocab; ++v) sumsq += static_cast<double>(row[v]) * row[v];
      const double stat_err = std::fabs(std::sqrt(sumsq / ref.sumsq) - 1.0);
      stat_err_max = std::max(stat_err_max, stat_err);
      stat_err_sum += stat_err;
    }

    const auto full_positions = p.at("full_row_positions").get<std::vector<int32_t>>();
    const size_t full_offset = p.at("full_row_offset").get<size_t>();
    for (size_t i = 0; i < full_positions.size(); ++i) {
      std::vector<float> ref(static_cast<size_t>(n_vocab));
      const uint16_t* h = g.full_rows.data() + (full_offset + i) * n_vocab;
      for (int32_t v = 0; v < n_vocab; ++v) ref[v] = fp16_to_fp32(h[v]);
      const float* row = out[0].data() + static_cast<size_t>(full_positions[i]) * n_vocab;
      full_nmse.push_back(nmse(row, ref.data(), static_cast<size_t>(n_vocab)));
    }

    // Greedy continuation, one decode step at a time. We feed llama.cpp's tokens (teacher
    // forcing), so every step stays comparable after a divergence; until the first mismatch this
    // is exactly our own greedy continuation. Steps where llama.cpp's top-2 gap is clear must
    // match.
    const auto want = p.at("greedy_tokens").get<std::vector<int32_t>>();
    const auto gaps = p.at("greedy_top2_gaps").get<std::vector<float>>();
    ASSERT_EQ(want.size(), gaps.size());
    const float* last = out[0].data() + static_cast<size_t>(n - 1) * n_vocab;
    std::vector<float> last_row(last, last + n_vocab);
    int prefix = 0, forced_matches = 0;
    bool diverged = false;
    for (size_t step = 0; step < want.size(); ++step) {
      const int32_t tok = argmax(last_row.data(), n_vocab);
      if (tok == want[step]) {
        ++forced_matches;
        if (!diverged) ++prefix;
      } else {
        diverged = true;
        EXPECT_LT(gaps[step], kClearGap)
            << "greedy step " << step << ": ours " << tok << ", llama.cpp " << want[step]
            << " (top-2 gap " << gaps[step] << ")";
      }
      if (step + 1 == want.size()) break;
      const int32_t pos = n + static_cast<int32_t>(step);
      SeqRequest dec{
          {want[step]}, pos, std::vector<int32_t>(slots.begin(), slots.begin() + pos + 1), false};
      const auto o = run_forward(**be, {dec});
      ASSERT_EQ(o.size(), 1u);
      last_row = o[0];
    }
    greedy_total += static_cast<int>(want.size());
    greedy_prefix += prefix;
    greedy_forced += forced_matches;
    std::cout << "[golden] " << name << ": greedy continuation equal for " << prefix << "/"
              << want.size() << " tokens; " << forced_matches << "/" << want.size()
              << " steps agree with llama.cpp's tokens fed back\n";
  }

  const double top1 = 100.0 * static_cast<double>(top1_agree) / static_cast<double>(positions);
  double full_mean = 0, full_max = 0;
  for (double e : full_nmse) {
    full_mean += e;
    full_max = std::max(full_max, e);
  }
  full_mean /= static_cast<double>(full_nmse.size());
  const double topk_mean = topk_nmse_sum / static_cast<double>(positions);

  const double stat_err_mean = stat_err_sum / static_cast<double>(positions);
  std::cout << "[golden] top-1 agreement " << top1 << "% (" << top1_agree << "/" << positions
            << " positions); " << fair_agree << "/" << fair
            << " where llama.cpp's top-2 gap >= " << kFairGap << ", " << clear_agree << "/" << clear
            << " where >= " << kClearGap << "\n"
            << "[golden] full-row NMSE mean " << full_mean << " max " << full_max << " over "
            << full_nmse.size() << " rows\n"
            << "[golden] top-32 NMSE mean " << topk_mean << " max " << topk_nmse_max << "\n"
            << "[golden] row RMS relative error mean " << stat_err_mean << " max " << stat_err_max
            << "\n"
            << "[golden] greedy: continuation equal for " << greedy_prefix << "/" << greedy_total
            << " tokens; " << greedy_forced << "/" << greedy_total
            << " steps agree with llama.cpp's tokens fed back\n";
  RecordProperty("top1_agreement_pct", std::to_string(top1));
  RecordProperty("full_row_nmse_mean", std::to_string(full_mean));
  RecordProperty("full_row_nmse_max", std::to_string(full_max));
  RecordProperty("top32_nmse_mean", std::to_string(topk_mean));
  RecordProperty("top32_nmse_max", std::to_string(topk_nmse_max));
  RecordProperty("greedy_equal_prefix",
                 std::to_string(greedy_prefix) + "/" + std::to_string(greedy_total));
  RecordProperty("greedy_teacher_forced",
                 std::to_string(greedy_forced) + "/" + std::to_string(greedy_total));

  // Two correct int8 implementations land within about a point of each other's 96-97%.
  EXPECT_GE(top1, 94.0);
  EXPECT_GE(static_cast<double>(fair_agree), 0.99 * static_cast<double>(fair));
  EXPECT_EQ(clear_agree, clear);
  EXPECT_LE(full_mean, 1e-2);
  // The worst of 64 rows is where a prompt's trajectory diverged most; small changes of the
  // arithmetic (f32 or f16 activation scales, an f32 or double sum in RMSNorm, RoPE angles in f32
  // or double) moved it between 1.2e-2 and 7.6e-2 in our measurements (5.1e-2 now).
  EXPECT_LE(full_max, 0.1);
  EXPECT_LE(topk_mean, 5e-3);
  EXPECT_LE(topk_nmse_max, 0.25);  // rows whose top logits are small: 0.1 measured
  EXPECT_LE(stat_err_mean, 0.03);
  EXPECT_LE(stat_err_max, 0.3);
  EXPECT_GE(greedy_forced, greedy_total * 3 / 4);
}

}  // namespace
}  // namespace sgl::models
