#include "backend/cpu/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "backend/cpu/kernel_table.h"
#include "model/quant.h"
#include "support/check.h"
#include "support/thread_pool.h"

namespace sgl::backend::cpu {
namespace {

using detail::ActKind;
using detail::KernelTable;
using detail::MatmulArgs;
using detail::MatmulKernel;

// Tokens per task when the batch is large: keeps a task's activations in L2.
constexpr int kTokenChunk = 64;
// At most this many outputs in one matmul_multi call.
constexpr int kMaxOutputs = 8;

size_t packed_row_bytes(const WeightView& w) {
  const auto bytes = model::ggml_row_size(w.type, static_cast<uint64_t>(w.n_in));
  SGL_CHECK(bytes.has_value(), "matmul: n_in is not a whole number of blocks of the weight type");
  if (w.layout == WeightLayout::kPanels) return detail::panel_bytes(w.type, w.n_in);
  return static_cast<size_t>(*bytes);
}

// Row r of a Q4_1 / Q8_0 matrix (file layout) into its panel.
void pack_row(model::GgmlType type, const uint8_t* row, int64_t nb, int r, uint8_t* panel) {
  const bool q41 = type == model::GgmlType::kQ4_1;
  const size_t blk_bytes = q41 ? 20 : 34;
  const int chunks = q41 ? 4 : 8;
  auto* d = reinterpret_cast<uint16_t*>(panel);
  uint16_t* m = d + nb * detail::kPanelRows;
  uint8_t* qs = panel + static_cast<size_t>(nb) * detail::kPanelRows * (q41 ? 4 : 2);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * blk_bytes;
    std::memcpy(&d[b * detail::kPanelRows + r], blk, 2);
    if (q41) std::memcpy(&m[b * detail::kPanelRows + r], blk + 2, 2);
    const uint8_t* q = blk + (q41 ? 4 : 2);
    uint8_t* out = qs + static_cast<size_t>(b) * chunks * 64 + 4 * r;
    for (int c = 0; c < chunks; ++c)
      for (int j = 0; j < 4; ++j)
        out[64 * c + j] = q41 ? q[4 * c + j] : static_cast<uint8_t>(q[4 * c + j] ^ 0x80);
  }
}

// Weights without an integer kernel (e.g. Q8_K, F64): dequantize each row, then the f32 kernel.
void matmul_dequant_fallback(const MatmulArgs& a, model::GgmlType type, int64_t r0, int64_t r1,
                             int t0, int t1) {
  thread_local std::vector<float> row;
  if (row.size() < static_cast<size_t>(a.n_in)) row.resize(static_cast<size_t>(a.n_in));
  const MatmulKernel f32 = detail::kernels().matmul[static_cast<int>(model::GgmlType::kF32)];
  for (int64_t r = r0; r < r1; ++r) {
    model::dequantize_row(type, a.w + static_cast<size_t>(r) * a.w_stride, row.data(), a.n_in);
    MatmulArgs ra = a;
    ra.w = reinterpret_cast<const uint8_t*>(row.data());
    ra.w_stride = 0;
    ra.y = a.y + r;
    f32(ra, 0, 1, t0, t1);
  }
}

struct Job {
  MatmulArgs args;
  model::GgmlType type;
  MatmulKernel kernel;  // nullptr: dequantize fallback
  bool panels;          // weights in WeightLayout::kPanels
  int64_t n_out;
  int64_t rows_per_task;
  int row_tasks;
  int task_begin;  // first task index of this job
};

int slot_of(ActKind kind) { return static_cast<int>(kind); }

size_t act_row_bytes(ActKind kind, int64_t n_in) {
  switch (kind) {
    case ActKind::kQ8K:
      return detail::q8k_layout(n_in).row_bytes;
    case ActKind::kQ8Blk:
      return detail::q8blk_layout(n_in).row_bytes;
    default:
      return detail::q8x32_layout(n_in).row_bytes;
  }
}

MatmulWorkspace& thread_workspace() {
  thread_local MatmulWorkspace ws;
  return ws;
}

}  // namespace

bool PackedWeights::has_panels(model::GgmlType type) { return detail::panel_type(type); }

PackedWeights::PackedWeights(const WeightView& w) : view_(w) {
  if (w.layout == WeightLayout::kRows && detail::kernels().native_panels) *this = force(w);
}

PackedWeights PackedWeights::force(const WeightView& w) {
  PackedWeights p;
  p.view_ = w;
  if (w.layout != WeightLayout::kRows || !detail::panel_type(w.type) || w.n_in % 32 != 0 ||
      w.n_out <= 0)
    return p;
  const size_t row_bytes = packed_row_bytes(w);
  const size_t src_stride = w.row_stride != 0 ? w.row_stride : row_bytes;
  const size_t panel = detail::panel_bytes(w.type, w.n_in);
  const int64_t n_panels = (w.n_out + detail::kPanelRows - 1) / detail::kPanelRows;
  p.bytes_ = panel * static_cast<size_t>(n_panels);
  p.data_ = static_cast<uint8_t*>(std::aligned_alloc(64, p.bytes_));
  SGL_CHECK(p.data_ != nullptr, "PackedWeights: out of memory");
  std::memset(p.data_, 0, p.bytes_);
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < w.n_out; ++r)
    pack_row(w.type, src + static_cast<size_t>(r) * src_stride, w.n_in / 32,
             static_cast<int>(r % detail::kPanelRows),
             p.data_ + static_cast<size_t>(r / detail::kPanelRows) * panel);
  p.view_.data = p.data_;
  p.view_.row_stride = panel;
  p.view_.layout = WeightLayout::kPanels;
  return p;
}

PackedWeights::~PackedWeights() { std::free(data_); }

PackedWeights::PackedWeights(PackedWeights&& other) noexcept
    : view_(other.view_),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

PackedWeights& PackedWeights::operator=(PackedWeights&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    view_ = other.view_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

MatmulWorkspace::~MatmulWorkspace() {
  for (auto* p : buf_) std::free(p);
}

MatmulWorkspace::MatmulWorkspace(MatmulWorkspace&& other) noexcept {
  for (int i = 0; i < kSlots; ++i) {
    buf_[i] = std::exchange(other.buf_[i], nullptr);
    cap_[i] = std::exchange(other.cap_[i], 0);
  }
}

MatmulWorkspace& MatmulWorkspace::operator=(MatmulWorkspace&& other) noexcept {
  if (this != &other) {
    for (int i = 0; i < kSlots; ++i) {
      std::free(buf_[i]);
      buf_[i] = std::exchange(other.buf_[i], nullptr);
      cap_[i] = std::exchange(other.cap_[i], 0);
    }
  }
  return *this;
}

uint8_t* MatmulWorkspace::buffer(int slot, size_t bytes) {
  SGL_CHECK(slot >= 0 && slot < kSlots, "MatmulWorkspace: bad slot");
  if (bytes > cap_[slot]) {
    std::free(buf_[slot]);
    const size_t cap = (std::max(bytes, cap_[slot] * 3 / 2) + 63) / 64 * 64;
    buf_[slot] = static_cast<uint8_t*>(std::aligned_alloc(64, cap));
    SGL_CHECK(buf_[slot] != nullptr, "MatmulWorkspace: out of memory");
    cap_[slot] = cap;
  }
  return buf_[slot];
}

size_t MatmulWorkspace::capacity() const {
  size_t total = 0;
  for (size_t c : cap_) total += c;
  return total;
}

bool matmul_supported(model::GgmlType type) {
  return model::can_dequantize(type) && static_cast<int>(type) < detail::kNumGgmlTypeIds;
}

void matmul(const WeightView& w, const float* x, float* y, int n_tokens, ThreadPool* pool,
            MatmulWorkspace* ws) {
  const MatmulOutput out{w, y, 0};
  matmul_multi(std::span<const MatmulOutput>(&out, 1), x, 0, n_tokens, pool, ws);
}

void matmul_multi(std::span<const MatmulOutput> outs, const float* x, size_t ldx, int n_tokens,
                  ThreadPool* pool, MatmulWorkspace* ws) {
  SGL_CHECK(n_tokens >= 0, "matmul: negative n_tokens");
  SGL_CHECK(outs.size() <= static_cast<size_t>(kMaxOutputs), "matmul_multi: too many outputs");
  if (n_tokens == 0 || outs.empty()) return;
  if (ws == nullptr) ws = &thread_workspace();
  const KernelTable& kt = detail::kernels();
  const int64_t n_in = outs[0].w.n_in;
  if (ldx == 0) ldx = static_cast<size_t>(n_in);
  const int n_threads = pool != nullptr ? pool->n_threads() : 1;

  // 1. Which activation formats are needed.
  bool need[detail::kNumActKinds] = {};
  Job jobs[kMaxOutputs];
  for (size_t o = 0; o < outs.size(); ++o) {
    const WeightView& w = outs[o].w;
    SGL_CHECK(w.n_in == n_in, "matmul_multi: outputs differ in n_in");
    SGL_CHECK(matmul_supported(w.type), "matmul: unsupported weight type");
    const size_t row_bytes = packed_row_bytes(w);
    Job& j = jobs[o];
    j.type = w.type;
    j.panels = w.layout == WeightLayout::kPanels;
    if (j.panels) SGL_CHECK(detail::panel_type(w.type), "matmul: panels of an unsupported type");
    j.kernel =
        j.panels ? kt.matmul_panel[static_cast<int>(w.type)] : kt.matmul[static_cast<int>(w.type)];
    const ActKind kind = j.panels              ? ActKind::kQ8Blk
                         : j.kernel != nullptr ? kt.act_kind[static_cast<int>(w.type)]
                                               : ActKind::kF32;
    if (kind == ActKind::kQ8K) SGL_CHECK(n_in % 256 == 0, "matmul: K-quant n_in % 256 != 0");
    need[slot_of(kind)] = true;
    j.args.w = static_cast<const uint8_t*>(w.data);
    j.args.w_stride = w.row_stride != 0 ? w.row_stride : row_bytes;
    SGL_CHECK(j.args.w_stride >= row_bytes, "matmul: row_stride smaller than a row");
    j.args.n_in = n_in;
    j.args.x = x;
    j.args.ldx = ldx;
    j.args.y = outs[o].y;
    j.args.ldy = outs[o].ldy != 0 ? outs[o].ldy : static_cast<size_t>(w.n_out);
    j.n_out = w.n_out;
    // Remember the kind in act_stride's place until the buffers exist.
    j.args.act_stride = static_cast<size_t>(kind);
  }

  // 2. Quantize the activations once per format.
  uint8_t* act[detail::kNumActKinds] = {};
  size_t act_stride[detail::kNumActKinds] = {};
  const bool parallel_quant = pool != nullptr && n_threads > 1 && n_tokens >= 16;
  for (int s = 1; s < detail::kNumActKinds; ++s) {
    if (!need[s]) continue;
    const auto kind = static_cast<ActKind>(s);
    act_stride[s] = act_row_bytes(kind, n_in);
    act[s] = ws->buffer(s, act_stride[s] * static_cast<size_t>(n_tokens));
    auto quantize_rows = [&, s, kind](int t_begin, int t_end) {
      for (int t = t_begin; t < t_end; ++t) {
        const float* xt = x + static_cast<size_t>(t) * ldx;
        uint8_t* out = act[s] + static_cast<size_t>(t) * act_stride[s];
        if (kind == ActKind::kQ8K) {
          kt.quantize_q8k(xt, n_in, out);
        } else if (kind == ActKind::kQ8Blk) {
          kt.quantize_q8blk(xt, n_in, out);
        } else {
          kt.quantize_q8x32(xt, n_in, kind == ActKind::kQ8x32Biased, out);
        }
      }
    };
    if (parallel_quant) {
      constexpr int kRowsPerTask = 8;
      pool->parallel_for((n_tokens + kRowsPerTask - 1) / kRowsPerTask, [&](int task, int) {
        quantize_rows(task * kRowsPerTask, std::min(n_tokens, (task + 1) * kRowsPerTask));
      });
    } else {
      quantize_rows(0, n_tokens);
    }
  }

  // 3. Split rows x token chunks into tasks. Enough tasks to balance the threads, each big enough
  // that claiming it costs little next to its work.
  const int tok_chunk = n_tokens <= kTokenChunk ? n_tokens : kTokenChunk;
  const int tok_tasks = (n_tokens + tok_chunk - 1) / tok_chunk;
  int64_t total_rows = 0;
  size_t max_row_bytes = 0;
  for (size_t o = 0; o < outs.size(); ++o) {
    total_rows += jobs[o].n_out;
    max_row_bytes = std::max(
        max_row_bytes, packed_row_bytes(outs[o].w) / (jobs[o].panels ? detail::kPanelRows : 1));
  }
  int64_t rows_per_task = total_rows;
  if (n_threads > 1) {
    const int64_t target_tasks = static_cast<int64_t>(n_threads) * 8;
    const int64_t by_balance = (total_rows * tok_tasks + target_tasks - 1) / target_tasks;
    // ~16 KB of weights per token-slice of work at least.
    const int64_t tok_work = std::max<int64_t>(1, tok_chunk / 4);
    const int64_t by_size =
        static_cast<int64_t>(16384 / (std::max<size_t>(max_row_bytes, 1) * tok_work)) + 1;
    rows_per_task = std::max<int64_t>({by_balance, by_size, 4});
    rows_per_task = (rows_per_task + 3) / 4 * 4;
  }
  int n_tasks = 0;
  for (size_t o = 0; o < outs.size(); ++o) {
    Job& j = jobs[o];
    const auto kind = static_cast<ActKind>(j.args.act_stride);
    j.args.act = act[slot_of(kind)];
    j.args.act_stride = act_stride[slot_of(kind)];
    j.rows_per_task = std::max<int64_t>(1, std::min(rows_per_task, j.n_out));
    if (j.panels)  // whole panels
      j.rows_per_task =
          (j.rows_per_task + detail::kPanelRows - 1) / detail::kPanelRows * detail::kPanelRows;
    j.row_tasks =
        j.n_out == 0 ? 0 : static_cast<int>((j.n_out + j.rows_per_task - 1) / j.rows_per_task);
    j.task_begin = n_tasks;
    n_tasks += j.row_tasks * tok_tasks;
  }

  auto run_task = [&](int task, int) {
    size_t o = 0;
    while (o + 1 < outs.size() && task >= jobs[o + 1].task_begin) ++o;
    const Job& j = jobs[o];
    const int local = task - j.task_begin;
    const int rt = local % j.row_tasks, tt = local / j.row_tasks;
    const int64_t r0 = rt * j.rows_per_task, r1 = std::min(j.n_out, r0 + j.rows_per_task);
    const int t0 = tt * tok_chunk, t1 = std::min(n_tokens, t0 + tok_chunk);
    if (j.kernel != nullptr) {
      j.kernel(j.args, r0, r1, t0, t1);
    } else {
      matmul_dequant_fallback(j.args, j.type, r0, r1, t0, t1);
    }
  };
  if (pool != nullptr && n_threads > 1 && n_tasks > 1) {
    pool->parallel_for(n_tasks, run_task);
  } else {
    for (int t = 0; t < n_tasks; ++t) run_task(t, 0);
  }
}

}  // namespace sgl::backend::cpu
