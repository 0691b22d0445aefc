#!/usr/bin/env python3
"""Side-by-side CPU inference benchmark: sglang.cpp (sgl-bench model) vs llama.cpp (llama-bench
and llama-batched-bench, built by bench/build_llamacpp.sh from the llama-cpp-python source
package), same GGUF, same thread count, same machine, run one after the other in this script.

Measures prefill tokens/s for a 512-token prompt, decode tokens/s at batch 1 (128 tokens), and
aggregate decode tokens/s at batch 16 and 64 (prompt 32 tokens each, 128 steps), as in the
CPU-inference issue. Prints a Markdown table for docs/benchmarks.md.

usage: bench/cpu_inference_bench.py [--model M] [--threads 2] [--repeat 3]
                                    [--ours build/bin/sgl-bench] [--peer-bin build-peer/bin]
"""
import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sh(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def ours(binary, model, threads, repeat):
    best = None
    for _ in range(repeat):
        r = json.loads(sh([str(binary), "model", "-m", model,
                           "--threads", str(threads), "--prefill", "512", "--decode", "128",
                           "--input", "32", "--batches", "1,16,64"]))
        if best is None:
            best = r
        else:  # keep the best of each figure
            best["prefill"]["tokens_per_s"] = max(best["prefill"]["tokens_per_s"], r["prefill"]["tokens_per_s"])
            for a, b in zip(best["decode"], r["decode"]):
                a["tokens_per_s"] = max(a["tokens_per_s"], b["tokens_per_s"])
    return best


def peer(peer_bin, model, threads, repeat):
    peer_bin = pathlib.Path(peer_bin)
    out = json.loads(sh([str(peer_bin / "llama-bench"), "-m", model, "-t", str(threads),
                         "-p", "512", "-n", "128", "-r", str(repeat), "-o", "json"]))
    pp = next(r for r in out if r["n_prompt"] == 512 and r["n_gen"] == 0)["avg_ts"]
    tg = next(r for r in out if r["n_gen"] == 128 and r["n_prompt"] == 0)["avg_ts"]
    res = {"prefill": pp, "decode": {1: tg}}
    # Batched decode: llama-batched-bench, 32-token prompts, 128 generated tokens per sequence.
    txt = sh([str(peer_bin / "llama-batched-bench"), "-m", model, "-t", str(threads),
              "-c", str(64 * 160 + 64), "-b", "2048", "-ub", "512", "-npp", "32", "-ntg", "128",
              "-npl", "16,64", "--output-format", "jsonl"])
    for line in txt.splitlines():
        line = line.strip()
        if line.startswith("{"):
            j = json.loads(line)
            res["decode"][j["pl"]] = j["speed_tg"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ours", default=str(ROOT / "build/bin/sgl-bench"),
                    help="our sgl-bench binary (e.g. from another build directory)")
    ap.add_argument("--peer-bin", default=str(ROOT / "build-peer/bin"),
                    help="directory with llama-bench and llama-batched-bench")
    a = ap.parse_args()
    commit = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    o = ours(a.ours, a.model, a.threads, a.repeat)
    p = peer(a.peer_bin, a.model, a.threads, a.repeat)
    print(f"machine: {cpu}, {os.cpu_count()} vCPUs; commit {commit}; threads {a.threads}; "
          f"ISA {o['isa']}; KV {o['kv_dtype']}")
    print(f"DRAM read bandwidth (measured): {o['dram_read_gb_per_s']:.1f} GB/s; weights read per "
          f"decode step: {o['weight_bytes_per_token'] / 1e6:.1f} MB; batch-1 decode limit "
          f"{o['decode_batch1_limit_tokens_per_s']:.0f} tok/s\n")
    print("| workload | sglang.cpp tok/s | llama.cpp tok/s | ratio |")
    print("|---|---:|---:|---:|")
    rows = [("prefill 512", o["prefill"]["tokens_per_s"], p["prefill"])]
    for d in o["decode"]:
        rows.append((f"decode batch {d['batch']}", d["tokens_per_s"], p["decode"].get(d["batch"])))
    for name, ours_v, peer_v in rows:
        ratio = f"{ours_v / peer_v:.2f}x" if peer_v else "n/a"
        pv = f"{peer_v:.1f}" if peer_v else "n/a"
        print(f"| {name} | {ours_v:.1f} | {pv} | {ratio} |")
    b1 = next(d["tokens_per_s"] for d in o["decode"] if d["batch"] == 1)
    for d in o["decode"]:
        if d["batch"] > 1:
            print(f"\nbatch-{d['batch']} aggregate / batch-1: {d['tokens_per_s'] / b1:.1f}x", end="")
    print()


if __name__ == "__main__":
    sys.exit(main())
