#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the prefill shapes `sgl-bench cuda-kernels` times:
one sequence, 32 query heads, 8 KV heads (expanded to 32 for the kernels that need equal heads;
the FLOP count is the same), head dim 128, causal, bf16, random inputs. Backends: flash and
cuDNN. FLOPs = 4 * heads * head_dim * S * (S + 1) / 2, median of 10 timed runs (CUDA events)
after 3 warm-ups. Prints one JSON object.

Usage: python3 tests/cuda/bench_sdpa.py [--lens 4096,8192,16384]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lens", default="4096,8192,16384")
    args = ap.parse_args()
    h, hkv, d = 32, 8, 128
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "results": []}
    for s in [int(x) for x in args.lens.split(",")]:
        q = torch.randn(1, h, s, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, hkv, s, d, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, hkv, s, d, device="cuda", dtype=torch.bfloat16)
        ke, ve = k.repeat_interleave(h // hkv, 1), v.repeat_interleave(h // hkv, 1)
        flops = 4.0 * h * d * s * (s + 1) / 2
        for name, be in (("flash", SDPBackend.FLASH_ATTENTION),
                         ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([be]):
                    ms = time_ms(lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True))
                out["results"].append({"backend": name, "seq_len": s, "ms": ms,
                                       "tflop_per_s": flops / ms / 1e9})
            except RuntimeError as e:  # backend not available for this shape/build
                out["results"].append({"backend": name, "seq_len": s, "error": str(e)[:200]})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
