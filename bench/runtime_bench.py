#!/usr/bin/env python3
"""Side-by-side runtime benchmark: prefix sharing and multi-turn reuse.

Runs, one after the other on the same machine with the same model file, thread count and prompts:
  1. sglang.cpp's engine with the radix cache on   (`sgl-bench shared-prefix|multi-turn`)
  2. sglang.cpp's engine with the radix cache off  (the same, `--disable-radix-cache`)
  3. llama.cpp's llama-server (build-peer/bin/llama-server, built by bench/build_llamacpp.sh) with
     `--parallel N` slots (N = our --max-running-requests), `-c N x longest sequence` (the server
     splits its context evenly over the slots), `-t/-tb THREADS`, prompt caching on (its default
     `--cache-prompt`, `cache_prompt: true` per request, host prompt cache at its default size).
     Driven over HTTP `/completion` with the very same token ids (`prompt` as a list of ids),
     `n_predict` = output length, `temperature: 0`, `ignore_eos: true`, from a pool of client
     threads submitting everything at once (shared prefix) or one thread per conversation
     (multi-turn), like our in-process submission. Its cache hit rate is
     sum(timings.cache_n) / sum(prompt tokens); timings.prompt_n is what it actually computed.

Workloads (prompts are made by `sgl-bench ... --prompts-only --dump-prompts`: deterministic random
English-word text tokenized with the model's tokenizer):
  shared-prefix  G groups x P requests, an S-token system prompt per group + a Q-token question,
                 O output tokens, all submitted at once.
  multi-turn     C conversations x T turns; turn t sends the history (first S-token context,
                 earlier questions and the model's own answers) + a new Q-token question after
                 turn t-1 finished. Each side appends its own greedy answers.

Prints a Markdown table per workload plus the ratios the runtime issue targets (cache on vs off
>= 3x on shared prefix; ours vs llama-server >= 2x) and our scheduler's step time outside the
forward pass. --json-out writes every raw figure. The "CPU pressure" column is the share of the
run's wall time during which some task waited for a CPU (Linux PSI): on a shared machine, figures
from runs with high pressure are not comparable (llama.cpp's spinning thread pool suffers most).

usage: bench/runtime_bench.py [--workloads shared-prefix,multi-turn] [--groups 8] [--per-group 16]
       [--clients 16] [--turns 4] [--skip-llama] [--skip-off] [--json-out FILE]
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sgl_bench_path(arg):
    if arg:
        return pathlib.Path(arg)
    for p in ("build-bench/bin/sgl-bench", "build/bin/sgl-bench"):
        if (ROOT / p).exists():
            return ROOT / p
    sys.exit("sgl-bench not found: build it (cmake --build build-bench --target sgl-bench)")


def workload_args(args, workload):
    common = ["-m", args.model, "--threads", str(args.threads), "--seed", str(args.seed),
              "--output-len", str(args.output_len),
              "--max-running-requests", str(args.max_running_requests)]
    if workload == "shared-prefix":
        return common + ["--groups", str(args.groups), "--per-group", str(args.per_group),
                         "--system-len", str(args.sp_system_len),
                         "--question-len", str(args.sp_question_len)]
    return common + ["--clients", str(args.clients), "--turns", str(args.turns),
                     "--system-len", str(args.mt_system_len),
                     "--question-len", str(args.mt_question_len)]


def max_seq_len(args, workload):
    if workload == "shared-prefix":
        return args.sp_system_len + args.sp_question_len + args.output_len
    return args.mt_system_len + args.turns * (args.mt_question_len + args.output_len)


# ---- CPU contention (the machine is shared) -------------------------------------------------------

def cpu_pressure():
    """(avg10 %, total stalled microseconds) of /proc/pressure/cpu's "some" line, or None."""
    try:
        for line in open("/proc/pressure/cpu"):
            if line.startswith("some"):
                f = dict(kv.split("=") for kv in line.split()[1:])
                return float(f["avg10"]), int(f["total"])
    except (OSError, ValueError, KeyError):
        pass
    return None


def wait_quiet(max_wait_s, threshold=20.0):
    """Waits (up to max_wait_s) until CPU pressure's avg10 is under threshold percent."""
    deadline = time.time() + max_wait_s
    while time.time() < deadline:
        p = cpu_pressure()
        if p is None or p[0] < threshold:
            return
        time.sleep(5)


class Contention:
    """Share of wall time some runnable task waited for a CPU during the block (PSI "some")."""

    def __enter__(self):
        self.p0, self.t0 = cpu_pressure(), time.time()
        return self

    def __exit__(self, *exc):
        p1 = cpu_pressure()
        wall = time.time() - self.t0
        self.fraction = (None if self.p0 is None or p1 is None or wall <= 0
                         else (p1[1] - self.p0[1]) / 1e6 / wall)


def run_ours(exe, args, workload, radix):
    cmd = [str(exe), workload] + workload_args(args, workload) + ["--json"]
    if not radix:
        cmd.append("--disable-radix-cache")
    wait_quiet(args.wait_quiet)
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    with Contention() as c:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    r = json.loads(out)
    r["cpu_pressure"] = c.fraction
    return r


# ---- llama-server --------------------------------------------------------------------------------

class LlamaServer:
    def __init__(self, exe, model, threads, slots, ctx, port, extra):
        self.url = f"http://127.0.0.1:{port}"
        self.cmd = [str(exe), "-m", model, "-t", str(threads), "-tb", str(threads),
                    "--parallel", str(slots), "-c", str(ctx), "--port", str(port),
                    "--host", "127.0.0.1", "--no-webui", "--cache-prompt"] + extra
        self.log = tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log",
                                               delete=False)
        self.proc = None

    def __enter__(self):
        print("+ " + " ".join(self.cmd), file=sys.stderr, flush=True)
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}); log: "
                                   f"{self.log.name}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError("llama-server did not become healthy; log: " + self.log.name)

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def complete(self, session, ids, n_predict):
        body = {"prompt": ids, "n_predict": n_predict, "temperature": 0, "cache_prompt": True,
                "ignore_eos": True, "return_tokens": True, "stream": False}
        t0 = time.perf_counter()
        r = session.post(self.url + "/completion", json=body, timeout=3600)
        r.raise_for_status()
        j = r.json()
        j["_e2e_s"] = time.perf_counter() - t0
        return j


def llama_totals(results, prompts_len, wall):
    prompt = sum(prompts_len)
    out = sum(r["timings"]["predicted_n"] for r in results)
    cached = sum(r["timings"].get("cache_n", 0) for r in results)
    computed = sum(r["timings"]["prompt_n"] for r in results)
    e2e = sorted(r["_e2e_s"] for r in results)
    return {
        "requests": len(results), "prompt_tokens": prompt, "output_tokens": out,
        "cached_tokens": cached, "computed_prompt_tokens": computed, "wall_s": wall,
        "request_throughput": len(results) / wall, "output_tok_per_s": out / wall,
        "total_tok_per_s": (prompt + out) / wall,
        "cache_hit_rate": cached / prompt if prompt else 0.0,
        "mean_e2e_s": sum(e2e) / len(e2e),
        "p99_e2e_s": e2e[min(len(e2e) - 1, int(0.99 * len(e2e)))],
    }


_local = threading.local()


def session():
    if not hasattr(_local, "s"):
        _local.s = requests.Session()
    return _local.s


def run_llama(args, workload, prompts):
    slots = args.max_running_requests
    ctx = slots * (max_seq_len(args, workload) + 16)
    extra = args.llama_args.split() if args.llama_args else []
    wait_quiet(args.wait_quiet)
    with LlamaServer(ROOT / args.llama_server, args.model, args.threads, slots, ctx, args.port,
                     extra) as srv, Contention() as cont:
        # Warm-up (not timed), on ids no workload prompt starts with.
        srv.complete(session(), [100 + i for i in range(64)], 8)
        o = args.output_len
        if workload == "shared-prefix":
            reqs = prompts["requests"]
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(reqs)) as ex:
                results = list(ex.map(lambda ids: srv.complete(session(), ids, o), reqs))
            wall = time.perf_counter() - t0
            lens = [len(r) for r in reqs]
        else:
            convs = prompts["conversations"]
            per_conv = [[] for _ in convs]
            lens_conv = [[] for _ in convs]

            def client(c):
                hist = list(convs[c]["system"])
                for q in convs[c]["questions"]:
                    hist += q
                    r = srv.complete(session(), hist, o)
                    per_conv[c].append(r)
                    lens_conv[c].append(len(hist))
                    toks = r.get("tokens")
                    if not toks or len(toks) != o:
                        raise RuntimeError("llama-server returned %s tokens, want %d" %
                                           (None if toks is None else len(toks), o))
                    hist += toks

            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(convs)) as ex:
                list(ex.map(client, range(len(convs))))
            wall = time.perf_counter() - t0
            results = [r for rs in per_conv for r in rs]
            lens = [n for ns in lens_conv for n in ns]
    res = llama_totals(results, lens, wall)
    res.update({"slots": slots, "ctx": ctx, "server_args": srv.cmd[1:],
                "cpu_pressure": cont.fraction})
    return res


# ---- report -------------------------------------------------------------------------------------

def pressure(f):
    return "n/a" if f is None else f"{100 * f:.0f}%"


def table(rows):
    head = ("| | requests | prompt tok (computed) | output tok | wall s | req/s | output tok/s "
            "| total tok/s | cache hit rate | CPU pressure |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for name, r in rows:
        if r is None:
            continue
        lines.append(
            f"| {name} | {r['requests']} | {r['prompt_tokens']:,} ({r['computed_prompt_tokens']:,})"
            f" | {r['output_tokens']:,} | {r['wall_s']:.1f} | {r['request_throughput']:.2f}"
            f" | {r['output_tok_per_s']:.1f} | {r['total_tok_per_s']:.1f}"
            f" | {100 * r['cache_hit_rate']:.1f}% | {pressure(r.get('cpu_pressure'))} |")
    return "\n".join(lines)


def overhead_line(name, r):
    e = r.get("engine", {})
    if e.get("outside_forward_fraction") is None:
        return f"- {name}: the engine reports no step timing (forward_seconds/step_seconds are 0)"
    return (f"- {name}: {e['steps']} scheduler steps, mean step {e['mean_step_ms']:.2f} ms, "
            f"outside the forward pass {e['mean_outside_forward_ms']:.3f} ms "
            f"({100 * e['outside_forward_fraction']:.2f}% of the step; target < 2%)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default="shared-prefix,multi-turn")
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--output-len", type=int, default=32)
    ap.add_argument("--max-running-requests", type=int, default=64,
                    help="ours: --max-running-requests; llama-server: --parallel")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--per-group", type=int, default=16)
    ap.add_argument("--sp-system-len", type=int, default=1024)
    ap.add_argument("--sp-question-len", type=int, default=64)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--mt-system-len", type=int, default=256)
    ap.add_argument("--mt-question-len", type=int, default=256)
    ap.add_argument("--sgl-bench", default=None)
    ap.add_argument("--llama-server", default="build-peer/bin/llama-server")
    ap.add_argument("--llama-args", default="", help="extra llama-server flags")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--skip-off", action="store_true", help="skip ours with the cache off")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="before each run wait up to this many seconds for CPU pressure "
                         "(/proc/pressure/cpu avg10) to drop under 20%%")
    args = ap.parse_args()
    exe = sgl_bench_path(args.sgl_bench)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"machine: {cpu}, {os.cpu_count()} vCPUs; commit {commit}"
          f"{' (uncommitted changes)' if dirty else ''}; model {args.model}; "
          f"{args.threads} threads; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")

    everything = {"commit": commit, "dirty": bool(dirty), "cpu": cpu, "args": vars(args)}
    for workload in args.workloads.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([str(exe), workload] + workload_args(args, workload) +
                           ["--prompts-only", "--dump-prompts", f.name], check=True, cwd=ROOT)
            prompts = json.load(open(f.name))
        res = everything[workload] = {"ours_cache_on": None, "ours_cache_off": None,
                                      "llama_server": None}

        def save():  # after every run, so an interrupted run keeps what it measured
            if args.json_out:
                with open(args.json_out, "w") as f:
                    json.dump(everything, f, indent=2)

        on = res["ours_cache_on"] = run_ours(exe, args, workload, True)
        save()
        off = None
        if not args.skip_off:
            off = res["ours_cache_off"] = run_ours(exe, args, workload, False)
            save()
        peer = None
        if not args.skip_llama:
            print(f"+ llama-server, {workload}", file=sys.stderr, flush=True)
            peer = res["llama_server"] = run_llama(args, workload, prompts)
            save()

        print(f"### {workload}: {json.dumps(on['sizes'])}, max running requests / slots "
              f"{args.max_running_requests}\n")
        print(table([("sglang.cpp, radix cache on", on), ("sglang.cpp, radix cache off", off),
                     (f"llama-server, {args.max_running_requests} slots, prompt cache on",
                      peer)]))
        print()
        thr = "total_tok_per_s"
        if off:
            print(f"- cache on vs off: {on[thr] / off[thr]:.2f}x total throughput "
                  f"({on['wall_s']:.1f} s vs {off['wall_s']:.1f} s)"
                  + ("; target >= 3x" if workload == "shared-prefix" else ""))
        if peer:
            print(f"- ours (cache on) vs llama-server: {on[thr] / peer[thr]:.2f}x total "
                  f"throughput; target >= 2x")
        print(overhead_line("ours, cache on", on))
        if off:
            print(overhead_line("ours, cache off", off))
        print(flush=True)


if __name__ == "__main__":
    main()
