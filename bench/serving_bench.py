#!/usr/bin/env python3
"""Online serving benchmark (SGLang's bench_serving method): sgl-server vs llama.cpp's llama-server.

Side-by-side mode (default): starts (or connects to, --url / --llama-url) our sgl-server and
llama-server (build-peer/bin/llama-server) one after the other on free ports with the same model
(default models/SmolLM2-135M-Instruct.Q4_1.gguf) and thread count:
  ours : sgl-server --model-path M --threads T --max-running-requests N
  llama: llama-server -m M -t T -tb T --parallel N -c N*(input_len+output_len+16)
then sends the same workload to each and prints a Markdown table.

Endpoints: our native POST /generate with {"input_ids", "stream": true, "sampling_params":
{"max_new_tokens", "temperature": 0, "ignore_eos": true}} (SSE, one cumulative event per token,
ends with `data: [DONE]`); llama-server's native POST /completion with {"prompt": [ids],
"n_predict", "stream": true, "cache_prompt": true, "temperature": 0, "ignore_eos": true}
(SSE, one event per token, last event has "stop": true). Both get the very same token ids:
random English-word text is tokenized once with our server's /tokenize (same GGUF tokenizer)
and cut to --input-len tokens. Concurrency N = both servers' slots; the client keeps at most N
requests in flight (like bench_serving's --max-concurrency).

Workload: --num-prompts, --request-rate (Poisson arrivals, requests/s; inf = all at once),
--dataset random (independent prompts) | shared-prefix (--num-groups groups, each a common
system prefix of --prefix-len tokens + a per-request suffix, total --input-len), --input-len,
--output-len, --seed.

Metrics per request: TTFT (request sent -> first event carrying a new token), ITL (gaps between
successive events carrying new tokens; with several tokens in one event the gap is counted once),
e2e latency. Reported: request throughput, output tok/s, mean/median/p99 TTFT and ITL, e2e,
errors (non-200, exception, malformed stream, or wrong output length).

Soak mode (--soak): --soak-clients (256) client threads kept busy for --duration (120) s against
our server; each loops: a request with a random prompt (16..--soak-max-input words) and
max_new_tokens in 16..64 (ignore_eos), reads the stream to [DONE]; --disconnect-frac (5%) of
requests are cut on purpose after a few tokens. Errors = any non-200 / exception / malformed or
short stream on a request not cut on purpose. Samples the server's VmRSS every --rss-interval s
(needs the pid: we start the server, or --server-pid), and after traffic stops checks
/get_server_info: internal_states[0].kv_request_tokens (= kv_used_tokens - kv_cache_tokens)
must reach 0 and num_running_reqs / num_queue_reqs 0.

usage: bench/serving_bench.py [--num-prompts 64] [--input-len 256] [--output-len 64]
         [--request-rate inf] [--concurrency 16] [--dataset random|shared-prefix]
         [--skip-llama] [--url URL] [--llama-url URL]
       bench/serving_bench.py --soak [--soak-clients 256] [--duration 120]
Only the Python standard library (http.client, threads) is used on the client side.
"""
import argparse
import http.client
import json
import math
import os
import pathlib
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

WORDS = ("the of and to in is was that for it with as his on be at by had are but from or have an "
         "they which one you were her all she there would their we him been has when who will more "
         "no if out so said what up its about into than them can only other new some could time "
         "these two may then do first any my now such like our over man me even most made after "
         "also did many before must through back years where much your way well down should "
         "because each just those people how too little state good very make world still own see "
         "men work long get here between both life being under never day same another know while "
         "last might us great old year off come since against go came right used take three house "
         "river mountain garden window letter market silver engine forest summer winter morning "
         "music paper water stone light story table orange yellow doctor teacher village city "
         "bridge island ocean planet science history number answer question simple strong quiet "
         "happy early later green blue purple bright dark small large quick slow warm cold").split()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"] * 3


def vmrss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ---- servers -------------------------------------------------------------------------------------

class Server:
    def __init__(self, name, cmd, port, health="/health"):
        self.name, self.cmd, self.port = name, cmd, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.proc.returncode}); log {self.log.name}")
            try:
                st, _ = http_get(self.url + health, timeout=2)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{name} not healthy in 300 s; log {self.log.name}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_ours(args, n):
    port = free_port()
    cmd = [str(args.sgl_server), "--model-path", str(args.model), "--port", str(port),
           "--threads", str(args.threads), "--max-running-requests", str(n)]
    cmd += args.sgl_extra.split() if args.sgl_extra else []
    return Server("sgl-server", cmd, port)


def start_llama(args, n, max_seq):
    port = free_port()
    cmd = [str(args.llama_server), "-m", str(args.model), "--port", str(port),
           "-t", str(args.threads), "-tb", str(args.threads), "--parallel", str(n),
           "-c", str(n * max_seq), "--no-webui"]
    cmd += args.llama_extra.split() if args.llama_extra else []
    try:
        return Server("llama-server", cmd, port)
    except RuntimeError:
        cmd.remove("--no-webui")  # older builds lack the flag
        return Server("llama-server", cmd, port)


# ---- HTTP ----------------------------------------------------------------------------------------

def _conn(url, timeout):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout), u.path


def http_get(url, timeout=10):
    c, path = _conn(url, timeout)
    try:
        c.request("GET", path or "/")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def http_post_json(url, obj, timeout=60):
    c, path = _conn(url, timeout)
    try:
        c.request("POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def stream_request(base, kind, prompt, out_len, cut_after=None, timeout=600):
    """Send one streaming request; returns a dict with timings.

    kind 'sgl': POST /generate (prompt = list of ids or str); 'llama': POST /completion.
    cut_after: close the connection after this many tokens (deliberate disconnect)."""
    if kind == "sgl":
        body = {"stream": True, "sampling_params": {"max_new_tokens": out_len, "temperature": 0,
                                                    "ignore_eos": True}}
        body["input_ids" if isinstance(prompt, list) else "text"] = prompt
        path = "/generate"
    else:
        body = {"prompt": prompt, "n_predict": out_len, "stream": True, "cache_prompt": True,
                "temperature": 0, "ignore_eos": True}
        path = "/completion"
    res = {"ok": False, "status": None, "ttft": None, "itl": [], "e2e": None, "tokens": 0,
           "error": None, "cut": False}
    c, _ = _conn(base, timeout)
    t0 = time.perf_counter()
    last = None
    try:
        c.request("POST", path, body=json.dumps(body),
                  headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        r = c.getresponse()
        res["status"] = r.status
        if r.status != 200:
            res["error"] = f"HTTP {r.status}: {r.read()[:200]!r}"
            return res
        ntok = 0
        done = False
        while True:
            line = r.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                done = True
                break
            ev = json.loads(payload)
            now = time.perf_counter()
            if kind == "sgl":
                if isinstance(ev, dict) and "error" in ev:
                    res["error"] = f"error event: {payload[:200]!r}"
                    return res
                n_new = len(ev.get("output_ids") or []) - ntok
                fin = ev.get("meta_info", {}).get("finish_reason")
                if fin and fin.get("type") == "abort":
                    res["error"] = f"aborted: {fin}"
                    return res
            else:
                if "error" in ev:
                    res["error"] = f"error event: {payload[:200]!r}"
                    return res
                toks = ev.get("tokens")
                n_new = len(toks) if toks is not None else (1 if ev.get("content") else 0)
                if ev.get("stop"):
                    # final event: carries the summary (no new tokens unless content is set)
                    if not ev.get("content") and not toks:
                        n_new = 0
                    done = True
            if n_new > 0:
                if last is None:
                    res["ttft"] = now - t0
                else:
                    res["itl"].append(now - last)
                last = now
                ntok += n_new
                if cut_after is not None and ntok >= cut_after:
                    res["cut"] = True
                    res["tokens"] = ntok
                    res["ok"] = True
                    try:
                        c.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return res
            if kind == "llama" and done:
                break
        res["e2e"] = time.perf_counter() - t0
        res["tokens"] = ntok
        if not done:
            res["error"] = f"stream ended without end marker after {ntok} tokens"
        elif ntok != out_len:
            res["error"] = f"got {ntok} tokens, expected {out_len}"
        else:
            res["ok"] = True
        return res
    except Exception as e:  # noqa: BLE001 - any failure is an error of the run
        res["error"] = f"{type(e).__name__}: {e}"
        return res
    finally:
        c.close()


# ---- workload ------------------------------------------------------------------------------------

def rand_text(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def tokenize(base, text):
    st, body = http_post_json(base + "/tokenize", {"text": text, "add_special_tokens": False})
    if st != 200:
        raise RuntimeError(f"/tokenize: HTTP {st} {body[:200]!r}")
    return json.loads(body)["tokens"]


def make_prompts(args, tok_url):
    rng = random.Random(args.seed)

    def ids_of(n_tokens):
        ids = tokenize(tok_url, rand_text(rng, n_tokens + 8))
        while len(ids) < n_tokens:
            ids += tokenize(tok_url, " " + rand_text(rng, n_tokens))
        return ids[:n_tokens]

    if args.dataset == "random":
        return [ids_of(args.input_len) for _ in range(args.num_prompts)]
    prefixes = [ids_of(args.prefix_len) for _ in range(args.num_groups)]
    suffix = max(1, args.input_len - args.prefix_len)
    prompts = [prefixes[i % args.num_groups] + ids_of(suffix) for i in range(args.num_prompts)]
    rng.shuffle(prompts)
    return prompts


def run_workload(base, kind, prompts, args, n):
    rng = random.Random(args.seed + 1)
    gaps = [0.0 if math.isinf(args.request_rate) else rng.expovariate(args.request_rate)
            for _ in prompts]
    sem = threading.Semaphore(n)
    results = [None] * len(prompts)
    threads = []

    def one(i):
        try:
            results[i] = stream_request(base, kind, prompts[i], args.output_len)
        finally:
            sem.release()

    t_start = time.perf_counter()
    for i, g in enumerate(gaps):
        if g:
            time.sleep(g)
        sem.acquire()
        th = threading.Thread(target=one, args=(i,), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t_start
    return results, wall


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(results, wall):
    ok = [r for r in results if r and r["ok"]]
    ttft = [r["ttft"] * 1e3 for r in ok if r["ttft"] is not None]
    itl = [x * 1e3 for r in ok for x in r["itl"]]
    e2e = [r["e2e"] * 1e3 for r in ok if r["e2e"] is not None]
    toks = sum(r["tokens"] for r in ok)
    errs = [r["error"] for r in results if not r or not r["ok"]]
    return {
        "completed": len(ok), "errors": len(errs), "error_samples": errs[:5], "wall_s": wall,
        "req_per_s": len(ok) / wall, "out_tok_per_s": toks / wall, "out_tokens": toks,
        "ttft_mean": statistics.fmean(ttft) if ttft else float("nan"),
        "ttft_median": pct(ttft, 50), "ttft_p99": pct(ttft, 99),
        "itl_mean": statistics.fmean(itl) if itl else float("nan"),
        "itl_median": pct(itl, 50), "itl_p99": pct(itl, 99),
        "e2e_mean": statistics.fmean(e2e) if e2e else float("nan"), "e2e_median": pct(e2e, 50),
    }


ROWS = [("completed / errors", lambda s: f"{s['completed']} / {s['errors']}"),
        ("wall time (s)", lambda s: f"{s['wall_s']:.1f}"),
        ("request throughput (req/s)", lambda s: f"{s['req_per_s']:.2f}"),
        ("output throughput (tok/s)", lambda s: f"{s['out_tok_per_s']:.1f}"),
        ("TTFT mean / median / p99 (ms)",
         lambda s: f"{s['ttft_mean']:.0f} / {s['ttft_median']:.0f} / {s['ttft_p99']:.0f}"),
        ("ITL mean / median / p99 (ms)",
         lambda s: f"{s['itl_mean']:.1f} / {s['itl_median']:.1f} / {s['itl_p99']:.1f}"),
        ("E2E latency mean / median (ms)",
         lambda s: f"{s['e2e_mean']:.0f} / {s['e2e_median']:.0f}"),
        ("load average during run", lambda s: s.get("load", "?"))]


def print_table(title, cols):
    names = list(cols)
    print(f"\n### {title}\n")
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, f in ROWS:
        print(f"| {label} | " + " | ".join(f(cols[k]) for k in names) + " |")
    for k in names:
        if cols[k]["error_samples"]:
            print(f"\n{k} errors (first 5): {cols[k]['error_samples']}")


def side_by_side(args):
    n = args.concurrency
    max_seq = args.input_len + args.output_len + 16
    rates = [float(x) for x in args.request_rate.split(",")]
    ours = None if args.url else start_ours(args, n)
    ours_url = args.url or ours.url
    all_out = {}
    try:
        prompts = make_prompts(args, ours_url)
        print(f"# {len(prompts)} prompts x {len(prompts[0])} input tokens, {args.output_len} output "
              f"tokens, dataset {args.dataset}, concurrency {n}, threads {args.threads}",
              flush=True)
        # warm-up (not measured)
        stream_request(ours_url, "sgl", prompts[0][:32], 4)
        for rate in rates:
            a = argparse.Namespace(**vars(args))
            a.request_rate = rate
            l0 = loadavg()
            res, wall = run_workload(ours_url, "sgl", prompts, a, n)
            s = summarize(res, wall)
            s["load"] = f"{l0[0]} -> {loadavg()[0]}"
            all_out.setdefault(rate, {})["sgl-server"] = s
            print(f"sgl-server rate={rate}: {json.dumps(s)}", flush=True)
            if not args.url:
                # a fresh cache for the next rate so both rates see the same (cold) prompts
                http_post_json(ours_url + "/flush_cache", {})
    finally:
        if ours:
            ours.stop()
    if not args.skip_llama:
        llama = None if args.llama_url else start_llama(args, n, max_seq)
        llama_url = args.llama_url or llama.url
        try:
            stream_request(llama_url, "llama", prompts[0][:32], 4)
            for rate in rates:
                a = argparse.Namespace(**vars(args))
                a.request_rate = rate
                l0 = loadavg()
                res, wall = run_workload(llama_url, "llama", prompts, a, n)
                s = summarize(res, wall)
                s["load"] = f"{l0[0]} -> {loadavg()[0]}"
                all_out[rate]["llama-server"] = s
                print(f"llama-server rate={rate}: {json.dumps(s)}", flush=True)
                if llama:  # restart so its slot / host prompt caches are cold for the next rate
                    llama.stop()
                    llama = start_llama(args, n, max_seq)
                    llama_url = llama.url
                    stream_request(llama_url, "llama", prompts[0][:32], 4)
        finally:
            if llama:
                llama.stop()
    for rate, cols in all_out.items():
        r = "inf (all at once)" if math.isinf(rate) else f"Poisson {rate} req/s"
        print_table(f"{args.dataset}, {args.num_prompts} prompts, in {args.input_len} / out "
                    f"{args.output_len}, request rate {r}, concurrency {n}", cols)
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps({str(k): v for k, v in all_out.items()},
                                                          indent=1))


# ---- soak ----------------------------------------------------------------------------------------

def server_state(url):
    st, body = http_get(url + "/get_server_info", timeout=10)
    info = json.loads(body)
    return info.get("internal_states", [{}])[0]


def soak(args):
    ours = None if args.url else start_ours(args, args.max_running)
    url = args.url or ours.url
    pid = args.server_pid or (ours.pid if ours else None)
    stop_at = [0.0]
    lock = threading.Lock()
    stats = {"done": 0, "cut": 0, "errors": 0, "tokens": 0, "err_samples": [], "ttft": [], "itl": []}
    rss = []
    try:
        stream_request(url, "sgl", "warm up", 4)
        l0 = loadavg()
        st0 = server_state(url)
        rss0 = vmrss_kib(pid) if pid else None
        rss.append((0.0, rss0))
        print(f"# soak: {args.soak_clients} clients, {args.duration} s, max_running "
              f"{args.max_running}, load {l0}, RSS {rss0} KiB, state {st0}", flush=True)

        def client(idx):
            rng = random.Random(args.seed * 1000 + idx)
            while time.time() < stop_at[0]:
                prompt = rand_text(rng, rng.randint(16, args.soak_max_input))
                out = rng.randint(16, 64)
                cut = rng.randint(1, 8) if rng.random() < args.disconnect_frac else None
                r = stream_request(url, "sgl", prompt, out, cut_after=cut, timeout=args.duration + 300)
                with lock:
                    if r["ok"] and r["cut"]:
                        stats["cut"] += 1
                    elif r["ok"]:
                        stats["done"] += 1
                        stats["tokens"] += r["tokens"]
                        stats["ttft"].append(r["ttft"])
                        stats["itl"].extend(r["itl"])
                    else:
                        stats["errors"] += 1
                        if len(stats["err_samples"]) < 10:
                            stats["err_samples"].append(r["error"])

        t0 = time.time()
        stop_at[0] = t0 + args.duration
        ths = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(args.soak_clients)]
        for th in ths:
            th.start()
        loads = []
        while any(th.is_alive() for th in ths):
            time.sleep(args.rss_interval)
            el = time.time() - t0
            v = vmrss_kib(pid) if pid else None
            rss.append((el, v))
            loads.append(loadavg()[0])
            try:
                s = server_state(url)
                run_q = f"running {s.get('num_running_reqs')} queued {s.get('num_queue_reqs')}"
            except Exception as e:  # noqa: BLE001
                run_q = f"state error {e}"
            with lock:
                print(f"  t={el:5.0f}s RSS {v} KiB, done {stats['done']} cut {stats['cut']} "
                      f"errors {stats['errors']}, {run_q}, load {loads[-1]}", flush=True)
            if el > args.duration + 600:
                print("  clients still busy 600 s after the end; giving up", flush=True)
                break
        wall = time.time() - t0
        # traffic stopped: wait for the server to settle, then check KV held by requests
        settle = None
        for _ in range(60):
            settle = server_state(url)
            if (settle.get("num_running_reqs", 0) == 0 and settle.get("num_queue_reqs", 0) == 0
                    and settle.get("kv_request_tokens", 0) == 0):
                break
            time.sleep(0.5)
        rss_end = vmrss_kib(pid) if pid else None
        rss.append((wall, rss_end))
        vals = [v for _, v in rss if v is not None]
        kv_used = settle.get("kv_used_tokens")
        kv_cache = settle.get("kv_cache_tokens")
        summary = {
            "clients": args.soak_clients, "duration_s": args.duration, "wall_s": round(wall, 1),
            "requests_completed": stats["done"], "deliberate_disconnects": stats["cut"],
            "errors": stats["errors"], "error_samples": stats["err_samples"],
            "output_tokens": stats["tokens"], "out_tok_per_s": round(stats["tokens"] / wall, 1),
            "ttft_median_ms": round(pct(stats["ttft"], 50) * 1e3, 0),
            "ttft_p99_ms": round(pct(stats["ttft"], 99) * 1e3, 0),
            "itl_median_ms": round(pct(stats["itl"], 50) * 1e3, 1),
            "itl_p99_ms": round(pct(stats["itl"], 99) * 1e3, 1),
            "rss_start_kib": rss0, "rss_peak_kib": max(vals) if vals else None,
            "rss_end_kib": rss_end,
            "after": {k: settle.get(k) for k in ("num_running_reqs", "num_queue_reqs",
                                                 "kv_used_tokens", "kv_cache_tokens",
                                                 "kv_request_tokens", "token_usage")},
            "kv_used_minus_cache": (kv_used - kv_cache) if None not in (kv_used, kv_cache) else None,
            "load_start": l0, "load_samples": loads, "load_end": loadavg(),
        }
        print("\n## soak summary\n" + json.dumps(summary, indent=1), flush=True)
        ok = (stats["errors"] == 0 and summary["kv_used_minus_cache"] == 0
              and settle.get("kv_request_tokens") == 0)
        print("SOAK " + ("PASSED" if ok else "FAILED"), flush=True)
        if args.json_out:
            summary["rss_samples"] = rss
            pathlib.Path(args.json_out).write_text(json.dumps(summary, indent=1))
        return 0 if ok else 1
    finally:
        if ours:
            ours.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--sgl-server", default=str(ROOT / "build/bin/sgl-server"))
    ap.add_argument("--llama-server", default=str(ROOT / "build-peer/bin/llama-server"))
    ap.add_argument("--url", help="use a running sgl-server instead of starting one")
    ap.add_argument("--llama-url", help="use a running llama-server instead of starting one")
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16,
                    help="client requests in flight at most = both servers' slots")
    ap.add_argument("--num-prompts", type=int, default=64)
    ap.add_argument("--request-rate", default="inf",
                    help="requests/s (Poisson), inf = all at once; a comma list runs each")
    ap.add_argument("--dataset", choices=["random", "shared-prefix"], default="random")
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--prefix-len", type=int, default=192, help="shared-prefix: common prefix tokens")
    ap.add_argument("--num-groups", type=int, default=4, help="shared-prefix: distinct prefixes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sgl-extra", default="", help="extra sgl-server arguments")
    ap.add_argument("--llama-extra", default="", help="extra llama-server arguments")
    ap.add_argument("--json-out")
    ap.add_argument("--soak", action="store_true")
    ap.add_argument("--soak-clients", type=int, default=256)
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--max-running", type=int, default=64, help="soak: --max-running-requests")
    ap.add_argument("--soak-max-input", type=int, default=400, help="soak: most prompt words")
    ap.add_argument("--disconnect-frac", type=float, default=0.05)
    ap.add_argument("--rss-interval", type=float, default=5)
    ap.add_argument("--server-pid", type=int, help="pid of the --url server, for RSS sampling")
    args = ap.parse_args()
    if args.soak:
        sys.exit(soak(args))
    side_by_side(args)


if __name__ == "__main__":
    main()
