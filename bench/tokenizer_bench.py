#!/usr/bin/env python3
"""Tokenizer throughput: sgl-bench tokenize vs llama.cpp (llama-cpp-python) on the same text.

Usage: python3 bench/tokenizer_bench.py [--model MODEL.gguf] [--bench BIN] [--repeat N] [--kb K]

The text (about K KB, default 400) is built deterministically from Python standard-library sources
and docstrings plus non-ASCII prose, so both sides encode identical bytes. Both tokenize the whole
text in one call, without special-token parsing or BOS, N times after a warm-up; the mean time
per pass gives MB/s. The token counts must agree (both implement llama.cpp's tokenizer).
Prints the machine, both numbers and the ratio, and a JSON line with everything.
"""

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NON_ASCII = (
    "Le caf\u00e9 est d\u00e9j\u00e0 pr\u00eat, \u00e0 bient\u00f4t! Stra\u00dfe \u00fcber sch\u00f6n. "
    "\u4f60\u597d\u4e16\u754c\uff0c\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\u65e5\u672c\u8a9e\u306e"
    "\u30c6\u30ad\u30b9\u30c8\u3002 \u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, \u043a"
    "\u0430\u043a \u0434\u0435\u043b\u0430? \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639"
    "\u0627\u0644\u0645 \U0001f600\U0001f389 \u0928\u092e\u0938\u094d\u0924\u0947 1234567 \u00bd\n"
)


def build_text(kb):
    import collections, difflib, email.message, json as _json, pathlib, string, textwrap
    parts = []
    for mod in (collections, difflib, email.message, _json, pathlib, string, textwrap,
                inspect, argparse, subprocess):
        src = inspect.getsource(mod)
        parts.append(src)
        parts.append(NON_ASCII * 4)
        for name, obj in sorted(vars(mod).items()):
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and not name.startswith("_"):
                parts.append(doc)
    text = "\n".join(parts)
    target = kb * 1024
    while len(text.encode()) < target:
        text += text
    data = text.encode()[:target]
    return data.decode("utf-8", errors="ignore").encode()


def bench_llama_cpp(model, data, repeat):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    cap = len(data) + 16
    buf = (llama_cpp.llama_token * cap)()

    def run():
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, cap, False, False)
        assert n >= 0, n
        return n

    n_tokens = run()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    mean = sum(times) / len(times)
    return {"bytes": len(data), "tokens": n_tokens, "repeat": repeat, "seconds": mean,
            "seconds_min": min(times), "mb_per_s": len(data) / 1e6 / mean,
            "tokens_per_s": n_tokens / mean, "version": llama_cpp.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bin", "sgl-bench"))
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--kb", type=int, default=400)
    args = ap.parse_args()

    data = build_text(args.kb)
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        out = subprocess.run([args.bench, "tokenize", "-m", args.model, "-f", path,
                              "--repeat", str(args.repeat)], check=True, capture_output=True,
                             text=True).stdout
        ours = json.loads(out)
    finally:
        os.unlink(path)
    peer = bench_llama_cpp(args.model, data, args.repeat)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    machine = "%s, %d CPUs" % (cpu, os.cpu_count() or 0)
    print("machine: %s; commit %s; text %d bytes" % (machine, commit, len(data)))
    print("sgl-bench tokenize : %8.2f MB/s  %10.0f tokens/s  (%d tokens; cold word cache)" %
          (ours["mb_per_s"], ours["tokens_per_s"], ours["tokens"]))
    print("  same, warm cache : %8.2f MB/s  %10.0f tokens/s" %
          (ours["warm_mb_per_s"], ours["warm_tokens_per_s"]))
    print("llama.cpp %-8s : %8.2f MB/s  %10.0f tokens/s  (%d tokens)" %
          (peer["version"], peer["mb_per_s"], peer["tokens_per_s"], peer["tokens"]))
    print("ratio (ours / llama.cpp): %.2fx cold, %.2fx warm" %
          (ours["mb_per_s"] / peer["mb_per_s"], ours["warm_mb_per_s"] / peer["mb_per_s"]))
    if ours["tokens"] != peer["tokens"]:
        print("WARNING: token counts differ", file=sys.stderr)
    print(json.dumps({"machine": machine, "commit": commit, "sgl": ours, "llama_cpp": peer}))
    return 0 if ours["tokens"] == peer["tokens"] else 1


if __name__ == "__main__":
    sys.exit(main())
