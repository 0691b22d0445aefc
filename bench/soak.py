#!/usr/bin/env python3
"""Soak test of sgl-server (issue 9): many concurrent streaming clients for a long time with a mix
of prompt lengths, constrained (regex / json_schema) and unconstrained requests over the native
and OpenAI APIs, random client disconnects and aborts (POST /abort_request by rid).

Pass criteria (printed as SOAK PASSED / FAILED, exit status 0 / 1):
  - the server process stays up (no crash) and answers /health_generate at the end;
  - no error on a well-formed request: every request not cut on purpose gets 200 and a complete
    stream (final event with a finish_reason, then data: [DONE]); constrained outputs that
    finished with "stop" match their regex / validate against their schema; aborted requests end
    with finish_reason abort (or finished before the abort arrived);
  - after traffic stops: no running / queued request, no admitted sequence, no KV slot held
    outside the prefix cache (kv_request_tokens = 0), and no client connection left open but the
    one asking (open_connections <= 1: closed connections are freed);
  - resident memory bounded: VmRSS sampled every --rss-interval s; reported start / peak / end and
    the growth over the second half of the run (bounded if under --rss-growth-limit MiB).

Client mix per request (weights in MIX): native /generate stream (unconstrained, regex,
json_schema), /v1/completions stream, /v1/chat/completions stream (plain or response_format
json_schema). Prompts: 70% short (4..40 words), 25% medium (100..300), 5% long (600..1200);
max_new_tokens 8..64. --disconnect-frac of requests close the socket after 1..6 events;
--abort-frac send /abort_request with their rid after 1..6 events and read on to the end.

usage: bench/soak.py [--clients 500] [--duration 600] [--url URL --server-pid PID]
                     [--bin-dir build/bin] [--max-running 64] [--max-total-tokens 65536]
                     [--json-out FILE]
Without --url it starts sgl-server itself on a free port (so it can sample its RSS).
Only the standard library plus jsonschema (optional) is used on the client side.
"""
import argparse
import http.client
import json
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_bench import vmrss_kib  # noqa: E402

try:
    import jsonschema
except ImportError:  # schema outputs are then only checked to be JSON objects
    jsonschema = None

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
WORDS = ("the of and to in is was that for it with as his on be at by had are but from or have an "
         "they which one you were her all she there would their we him been has when who will more "
         "river mountain garden window letter market silver engine forest summer winter morning "
         "music paper water stone light story table orange yellow doctor teacher village city "
         "bridge island ocean planet science history number answer question simple strong quiet").split()
REGEX = r"(yes|no), because [a-z ]{3,40}\."
SCHEMA = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 16},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "city": {"enum": ["Paris", "Rome", "Oslo"]}},
          "required": ["name", "age", "city"], "additionalProperties": False}
MIX = [("native", 30), ("native_regex", 12), ("native_schema", 12), ("completions", 18),
       ("chat", 16), ("chat_schema", 12)]


def http_json(base, method, path, obj=None, timeout=30):
    u = base.split("//", 1)[1]
    host, port = u.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        body = json.dumps(obj) if obj is not None else None
        c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, data
    finally:
        c.close()


def server_state(base):
    st, body = http_json(base, "GET", "/get_server_info")
    return json.loads(body)["internal_states"][0]


def rand_prompt(rng):
    x = rng.random()
    n = rng.randint(4, 40) if x < 0.70 else rng.randint(100, 300) if x < 0.95 else rng.randint(600, 1200)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build(kind, rng, rid):
    """(path, body, constraint) for one request."""
    prompt = rand_prompt(rng)
    out = rng.randint(8, 64)
    seed = rng.randint(0, 1 << 30)
    if kind.startswith("native"):
        sp = {"max_new_tokens": out, "temperature": rng.choice([0, 0.7, 1.0]), "sampling_seed": seed}
        c = None
        if kind == "native_regex":
            sp["regex"], c = REGEX, ("regex", REGEX)
            sp["max_new_tokens"] = 64
        elif kind == "native_schema":
            sp["json_schema"], c = json.dumps(SCHEMA), ("schema", SCHEMA)
            sp["max_new_tokens"] = 96
        return "/generate", {"text": prompt, "rid": rid, "stream": True, "sampling_params": sp}, c
    if kind == "completions":
        return "/v1/completions", {"prompt": prompt, "max_tokens": out, "stream": True,
                                   "temperature": 0.8, "seed": seed}, None
    body = {"messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": prompt}],
            "max_tokens": out, "stream": True, "temperature": 0.8, "seed": seed,
            "stream_options": {"include_usage": True}}
    c = None
    if kind == "chat_schema":
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "p", "schema": SCHEMA}}
        body["max_tokens"] = 96
        c = ("schema", SCHEMA)
    return "/v1/chat/completions", body, c


def check_constraint(c, text):
    if c is None:
        return None
    if c[0] == "regex":
        return None if re.fullmatch(c[1], text) else f"output {text!r} does not match the regex"
    try:
        v = json.loads(text)
    except ValueError:
        return f"output {text[:80]!r} is not JSON"
    if jsonschema is not None:
        try:
            jsonschema.validate(v, c[1])
        except jsonschema.ValidationError as e:
            return f"schema violation: {e.message}"
    elif not isinstance(v, dict):
        return "output is not a JSON object"
    return None


def one_request(base, kind, rng, rid, cut_after, abort_after, timeout):
    """Runs one streaming request. Returns a dict: ok, cut, aborted, finish, error, events."""
    path, body, constraint = build(kind, rng, rid)
    host, port = base.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    res = {"ok": False, "cut": False, "aborted": False, "finish": None, "error": None, "events": 0,
           "kind": kind}
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            res["error"] = f"{kind}: HTTP {r.status}: {r.read()[:200]!r}"
            return res
        text, finish, done = "", None, False
        while True:
            line = r.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if not line.startswith(b"data: "):
                res["error"] = f"{kind}: malformed SSE line {line[:80]!r}"
                return res
            data = line[6:]
            if data == b"[DONE]":
                done = True
                break
            ev = json.loads(data)
            res["events"] += 1
            if path == "/generate":
                text = ev["text"]
                fr = ev["meta_info"]["finish_reason"]
                if fr:
                    finish = fr["type"]
            else:
                for ch in ev.get("choices", []):
                    text += ch.get("text") or (ch.get("delta") or {}).get("content") or ""
                    if ch.get("finish_reason"):
                        finish = ch["finish_reason"]
            if cut_after is not None and res["events"] >= cut_after:
                res["cut"] = res["ok"] = True
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                return res
            if abort_after is not None and res["events"] == abort_after and path == "/generate":
                res["aborted"] = True
                threading.Thread(target=http_json, args=(base, "POST", "/abort_request",
                                                         {"rid": rid}), daemon=True).start()
        if not done or finish is None:
            res["error"] = f"{kind}: stream ended without {'[DONE]' if not done else 'finish_reason'}"
            return res
        res["finish"] = finish
        if finish == "abort" and not res["aborted"]:
            res["error"] = f"{kind}: aborted without being asked"
            return res
        if finish == "stop":
            err = check_constraint(constraint, text)
            if err:
                res["error"] = f"{kind}: {err}"
                return res
        res["ok"] = True
        return res
    except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
        res["error"] = f"{kind}: {type(e).__name__}: {e}"
        return res
    finally:
        conn.close()


def start_server(args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(args.server_log, "wb")
    cmd = [os.path.join(args.bin_dir, "sgl-server"), "--model-path", args.model, "--port", str(port),
           "--max-running-requests", str(args.max_running), "--max-total-tokens",
           str(args.max_total_tokens), "--enable-metrics", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if http_json(base, "GET", "/health", timeout=1)[0] == 200:
                return proc, base, cmd
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"sgl-server did not start; see {args.server_log}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--url")
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--bin-dir", default=str(ROOT / "build" / "bin"))
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--max-running", type=int, default=64)
    ap.add_argument("--max-total-tokens", type=int, default=65536)
    ap.add_argument("--disconnect-frac", type=float, default=0.05)
    ap.add_argument("--abort-frac", type=float, default=0.03)
    ap.add_argument("--rss-interval", type=float, default=10)
    ap.add_argument("--rss-growth-limit", type=float, default=64,
                    help="MiB of RSS growth allowed over the second half of the run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server-log", default="/tmp/sgl-soak-server.log")
    ap.add_argument("--json-out")
    args = ap.parse_args()

    proc, cmd = None, None
    if args.url:
        base = args.url.rstrip("/")
    else:
        proc, base, cmd = start_server(args)
    pid = args.server_pid or (proc.pid if proc else None)
    lock = threading.Lock()
    stats = {"ok": 0, "cut": 0, "aborted": 0, "abort_raced": 0, "errors": 0, "by_kind": {},
             "finish": {}, "err_samples": []}
    rss = []
    stop_at = time.time() + args.duration
    t0 = time.time()
    kinds = [k for k, w in MIX for _ in range(w)]

    def client(idx):
        rng = random.Random(args.seed * 100003 + idx)
        n = 0
        while time.time() < stop_at:
            n += 1
            kind = rng.choice(kinds)
            x = rng.random()
            cut = rng.randint(1, 6) if x < args.disconnect_frac else None
            abort = (rng.randint(1, 6) if args.disconnect_frac <= x < args.disconnect_frac +
                     args.abort_frac and kind.startswith("native") else None)
            r = one_request(base, kind, rng, f"soak-{idx}-{n}", cut, abort,
                            timeout=args.duration + 600)
            with lock:
                k = stats["by_kind"].setdefault(kind, [0, 0])
                k[0] += 1
                if r["finish"]:
                    stats["finish"][r["finish"]] = stats["finish"].get(r["finish"], 0) + 1
                if not r["ok"]:
                    stats["errors"] += 1
                    k[1] += 1
                    if len(stats["err_samples"]) < 20:
                        stats["err_samples"].append(r["error"])
                elif r["cut"]:
                    stats["cut"] += 1
                elif r["aborted"]:
                    stats["aborted" if r["finish"] == "abort" else "abort_raced"] += 1
                else:
                    stats["ok"] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    rss.append((0.0, vmrss_kib(pid) if pid else None))
    print(f"# soak: {args.clients} clients for {args.duration:.0f} s against {base}"
          f"{' (' + ' '.join(cmd[1:]) + ')' if cmd else ''}; RSS {rss[0][1]} KiB", flush=True)
    for th in threads:
        th.start()
    crashed = False
    while any(th.is_alive() for th in threads):
        time.sleep(args.rss_interval)
        el = time.time() - t0
        v = vmrss_kib(pid) if pid else None
        rss.append((round(el, 1), v))
        if proc and proc.poll() is not None:
            crashed = True
            print(f"  server exited with {proc.returncode}!", flush=True)
            break
        try:
            s = server_state(base)
            state = (f"running {s['num_running_reqs']} queued {s['num_queue_reqs']} admitted "
                     f"{s.get('admitted_sequences')} conns {s.get('open_connections')} kv "
                     f"{s['kv_used_tokens']} (cache {s['kv_cache_tokens']})")
        except (OSError, ValueError, KeyError) as e:
            state = f"state error {e}"
        with lock:
            print(f"  t={el:5.0f}s RSS {v} KiB ok {stats['ok']} cut {stats['cut']} aborted "
                  f"{stats['aborted']}+{stats['abort_raced']} errors {stats['errors']}; {state}",
                  flush=True)
        if el > args.duration + 900:
            print("  clients still busy 900 s after the end; giving up", flush=True)
            break
    wall = time.time() - t0
    settle, healthy = {}, False
    if not crashed:
        for _ in range(120):
            settle = server_state(base)
            if (settle["num_running_reqs"] == 0 and settle["num_queue_reqs"] == 0 and
                    settle["kv_request_tokens"] == 0 and settle.get("admitted_sequences", 0) == 0
                    and settle.get("open_connections", 1) <= 1):
                break
            time.sleep(0.5)
        healthy = http_json(base, "GET", "/health_generate", timeout=60)[0] == 200
    rss.append((round(time.time() - t0, 1), vmrss_kib(pid) if pid else None))
    vals = [(t, v) for t, v in rss if v is not None]
    half = [v for t, v in vals if t >= args.duration / 2]
    growth_mib = (max(half) - half[0]) / 1024 if len(half) >= 2 else None
    summary = {
        "clients": args.clients, "duration_s": args.duration, "wall_s": round(wall, 1),
        "requests": sum(k[0] for k in stats["by_kind"].values()), "completed_ok": stats["ok"],
        "deliberate_disconnects": stats["cut"], "aborted": stats["aborted"],
        "abort_after_finish": stats["abort_raced"], "errors": stats["errors"],
        "by_kind_total_errors": stats["by_kind"], "finish_reasons": stats["finish"],
        "error_samples": stats["err_samples"], "crashed": crashed,
        "health_generate_after": healthy,
        "after": {k: settle.get(k) for k in ("num_running_reqs", "num_queue_reqs", "kv_used_tokens",
                                             "kv_cache_tokens", "kv_request_tokens",
                                             "admitted_sequences", "open_connections",
                                             "overload_rejections", "finished_requests")},
        "rss_start_kib": vals[0][1] if vals else None,
        "rss_peak_kib": max(v for _, v in vals) if vals else None,
        "rss_end_kib": vals[-1][1] if vals else None,
        "rss_growth_second_half_mib": round(growth_mib, 1) if growth_mib is not None else None,
        "loadavg_end": os.getloadavg(),
    }
    ok = (not crashed and healthy and stats["errors"] == 0 and settle.get("kv_request_tokens") == 0
          and settle.get("num_running_reqs") == 0 and settle.get("admitted_sequences", 0) == 0
          and settle.get("open_connections", 1) <= 1
          and (growth_mib is None or growth_mib <= args.rss_growth_limit))
    print("\n## soak summary\n" + json.dumps(summary, indent=1), flush=True)
    print("SOAK " + ("PASSED" if ok else "FAILED"), flush=True)
    if args.json_out:
        summary["rss_samples"] = rss
        pathlib.Path(args.json_out).write_text(json.dumps(summary, indent=1))
    if proc:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed after 60 s"
        print(f"server exit status after SIGTERM: {rc}", flush=True)
        ok = ok and rc == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
