#!/usr/bin/env python3
"""Frontend-language workloads as batches: programs/s and cache hit rate with the radix cache on
vs off, and with the frontend's prefix hints (run_batch pre-caching) on vs off.

Runs each example in build/bin in-process (--model) so the cache can be switched off, e.g.
    python3 bench/frontend_bench.py --batch 64
and prints a markdown table."""
import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATS = re.compile(r"^(\d+) programs in ([\d.]+) s \(([\d.]+) programs/s\); prompt tokens (\d+), "
                   r"cached (\d+) \(cache hit rate ([\d.]+)%\)", re.M)
EXAMPLES = ["few_shot_qa", "hellaswag_select", "llm_judge", "react_agent", "tree_of_thought",
            "skeleton_of_thought", "multi_turn_chat"]
CONFIGS = [("cache on, hints on", []), ("cache on, hints off", ["--no-prefix-hints"]),
           ("cache off", ["--disable-radix-cache", "--no-prefix-hints"])]


def run(bin_dir, name, model, batch, extra):
    p = subprocess.run([str(bin_dir / name), "--model", model, "--batch", str(batch), *extra],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{name} failed:\n{p.stderr}")
    m = STATS.search(p.stdout)
    return float(m.group(3)), float(m.group(6))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin-dir", default=str(ROOT / "build" / "bin"))
    ap.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--examples", default=",".join(EXAMPLES))
    a = ap.parse_args()
    bin_dir = Path(a.bin_dir)
    print(f"| workload (batch {a.batch}) | " + " | ".join(f"{c} programs/s (hit rate)" for c, _ in CONFIGS)
          + " | speed-up cache on/off |")
    print("|---|" + "---:|" * (len(CONFIGS) + 1))
    for name in a.examples.split(","):
        res = [run(bin_dir, name, a.model, a.batch, extra) for _, extra in CONFIGS]
        cells = " | ".join(f"{t:.2f} ({h:.1f}%)" for t, h in res)
        print(f"| {name} | {cells} | {res[0][0] / res[-1][0]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
