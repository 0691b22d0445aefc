#!/usr/bin/env bash
# Everything the CUDA backend needs checked and timed on a GPU machine, in one go: builds
# GoogleTest (sources carried in .devdeps/googletest where the machine lacks it), configures
# build-cuda/ with -DSGL_CUDA=ON -DSGL_HTTP=OFF (no Boost needed), builds sgl-bench and test_cuda,
# then runs: test_cuda (kernel parity + model vs CPU), tests/cuda/check_hf.py (logits vs
# transformers), sgl-bench cuda-kernels (copy bandwidth, GEMM rate, attention), PyTorch SDPA on the
# same prefill shapes, and sgl-bench model on the Llama-3.1-8B shape with dummy weights (also with
# --tp-size 2 where the machine has 2 GPUs), and tests/cuda/bench_torch_decode.py as the decode peer.
# Logs and JSON go to $OUT (default /tmp/sgl-cuda-out).
# Usage: tests/cuda/run_device.sh [quick|full]; `full` adds the offline throughput runs (1,000
# prompts of 1,024 + 1,024 tokens, bf16 and fp8_e4m3 KV, several minutes). BIN=DIR uses prebuilt sgl-bench and test_cuda
# from DIR (e.g. built on another machine and carried) instead of building.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-/tmp/sgl-cuda-out}"
mkdir -p "$OUT"
export PATH="/usr/local/cuda/bin:$PATH" PYTHONUNBUFFERED=1
JOBS="$(nproc)"
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
  --format=csv | tee "$OUT/gpu.txt"
git rev-parse HEAD 2>/dev/null | tee -a "$OUT/gpu.txt"

if [ -n "${BIN:-}" ]; then
  B="$(cd "$BIN" && pwd)"
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
else
  prefix="$ROOT/.devdeps"
  if [ -d "$ROOT/.devdeps/googletest" ] && ! [ -d /usr/include/gtest ]; then
    step "googletest"
    cmake -S "$ROOT/.devdeps/googletest" -B /tmp/gtest-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX=/tmp/gtest -DBUILD_GMOCK=OFF >/dev/null &&
      ninja -C /tmp/gtest-build install >/dev/null || { echo "googletest build failed"; exit 1; }
    prefix="/tmp/gtest;$prefix"
  fi

  step "configure + build (sgl-bench, test_cuda)"
  cmake -S "$ROOT" -B "$ROOT/build-cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSGL_CUDA=ON \
    -DSGL_HTTP=OFF -DCMAKE_PREFIX_PATH="$prefix" >"$OUT/configure.log" 2>&1 ||
    { tail -n 40 "$OUT/configure.log"; exit 1; }
  ninja -C "$ROOT/build-cuda" -j"$JOBS" sgl-bench test_cuda >"$OUT/build.log" 2>&1 ||
    { grep -E "error|Error" "$OUT/build.log" | head -n 40; exit 1; }

  command -v cuobjdump >/dev/null &&
    cuobjdump -res-usage "$ROOT"/build-cuda/CMakeFiles/sgl.dir/src/backend/cuda/*.cu.o 2>&1 |
    grep -E "Function|REG" >>"$OUT/build.log"
  B="$ROOT/build-cuda/bin"
fi

# NCCL for the tensor-parallel tests and runs (loaded at run time): pip's nvidia-nccl-cu13.
nccl_dir="$(python3 -c 'import nvidia.nccl as m;print(list(m.__path__)[0])' \
  2>/dev/null)/lib"
[ -e "$nccl_dir/libnccl.so.2" ] && export LD_LIBRARY_PATH="$nccl_dir:${LD_LIBRARY_PATH:-}"
n_gpu="$(nvidia-smi -L | wc -l)"

step "test_cuda"
"$B/test_cuda" 2>&1 | tee "$OUT/test_cuda.log" | grep -vE "^\[ +(RUN|OK) +\]"

step "check_hf (transformers vs cuda and cpu)"
python3 tests/cuda/check_hf.py --bin "$B/sgl-bench" 2>&1 | tee "$OUT/check_hf.log"

[ "${1:-}" = quick ] && exit 0

step "kernels"
"$B/sgl-bench" cuda-kernels 2>&1 | tee "$OUT/kernels.json"
step "PyTorch SDPA"
python3 tests/cuda/bench_sdpa.py 2>&1 | tee "$OUT/sdpa.json"
step "Llama-3.1-8B shape, dummy weights, bf16"
"$B/sgl-bench" model -m tests/data/configs/llama-3.1-8b.json \
  --load-format dummy --device cuda --kv-dtype bf16 --prefill 1024 --input 1024 --decode 64 \
  --batches 1,64 --mem-fraction-static 0.7 2>&1 | tee "$OUT/model.json"
step "PyTorch decode peer (cuBLAS + SDPA + CUDA graphs), same shape"
python3 tests/cuda/bench_torch_decode.py --config tests/data/configs/llama-3.1-8b.json 2>&1 |
  tee "$OUT/torch_peer.json"
if [ "$n_gpu" -ge 2 ]; then
  step "Llama-3.1-8B shape, tensor parallel over 2 GPUs (decode graphs with NCCL captured)"
  SGL_CUDA_TP_GRAPHS=1 "$B/sgl-bench" model -m tests/data/configs/llama-3.1-8b.json \
    --load-format dummy --device cuda --kv-dtype bf16 --prefill 1024 --input 1024 --decode 64 \
    --batches 1,64 --mem-fraction-static 0.7 --tp-size 2 2>&1 | tee "$OUT/model_tp2.json"
fi
if [ "${1:-}" = full ]; then
  step "offline throughput: Llama-3.1-8B shape, 1000 x (1024 in + 1024 out)"
  "$B/sgl-bench" offline -m tests/data/configs/llama-3.1-8b.json --load-format dummy \
    --tokenizer-path tests/data/tokenizer/hf_llama3 --device cuda --kv-dtype bf16 \
    --mem-fraction-static 0.88 --num-prompts 1000 --input-len 1024 --output-len 1024 \
    --max-running-requests 1024 --chunked-prefill-size 8192 --json 2>"$OUT/offline.err" |
    tee "$OUT/offline.json"
  step "offline throughput, fp8_e4m3 KV cache"
  "$B/sgl-bench" offline -m tests/data/configs/llama-3.1-8b.json --load-format dummy \
    --tokenizer-path tests/data/tokenizer/hf_llama3 --device cuda --kv-dtype fp8_e4m3 \
    --mem-fraction-static 0.88 --num-prompts 1000 --input-len 1024 --output-len 1024 \
    --max-running-requests 1024 --chunked-prefill-size 8192 --json 2>"$OUT/offline_fp8.err" |
    tee "$OUT/offline_fp8.json"
fi
step "done"
