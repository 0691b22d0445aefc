#!/usr/bin/env python3
"""The SGLang paper's JSON decoding workload: extract the fields of a character description into a
JSON Schema, with jump-forward decoding on and off, and llama.cpp's llama-server with the same
schema, side by side on the same machine, model file, thread count and prompt token ids.

Servers (started one after the other on free ports):
  sglang.cpp, jump-forward on : sgl-server --model-path M --threads T --max-running-requests N
  sglang.cpp, jump-forward off: the same + --disable-jump-forward
  llama.cpp                   : llama-server -m M -t T -tb T --parallel N -c N*1024
Requests: our native POST /generate {"input_ids", "sampling_params": {"json_schema",
"max_new_tokens", "temperature": 0}}; llama-server's POST /completion {"prompt": ids,
"json_schema", "n_predict", "temperature": 0, "cache_prompt": true} (llama.cpp turns the schema
into a GBNF grammar; its whitespace between tokens is free, ours is json.dumps' layout).

Prompts: --num-prompts deterministic character descriptions (name, house, blood status,
occupation, wand wood/core/length, alive, patronus, boggart; the fields of SGLang's
json_jump_forward benchmark) in the model's chat format, tokenized once with our /tokenize.
Two phases per server:
  latency   : the prompts one at a time (batch 1): mean / p50 / p90 request latency;
  throughput: all prompts submitted at once, --concurrency in flight: requests/s and output
              tokens/s (output tokens = our tokenizer's count of the returned JSON text, so both
              engines are counted alike).
Every output is checked with `jsonschema` (and json.loads); invalid or truncated outputs are
counted and reported.

usage: bench/json_decode_bench.py [--num-prompts 32] [--concurrency 16] [--threads 2]
         [--skip-llama] [--json-out FILE]
"""
import argparse
import json
import pathlib
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_bench import Server, free_port, http_post_json, loadavg, pct  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

HOUSES = ["Gryffindor", "Slytherin", "Ravenclaw", "Hufflepuff"]
BLOOD = ["Pure-blood", "Half-blood", "Muggle-born"]
JOBS = ["student", "teacher", "auror", "ministry of magic", "death eater", "order of the phoenix"]
FIRST = ["Mira", "Tobias", "Elspeth", "Cedric", "Rowan", "Imogen", "Felix", "Agatha", "Silas",
         "Wren", "Lucan", "Odette", "Bram", "Juniper", "Casimir", "Nell"]
LAST = ["Holloway", "Thornfield", "Marchbanks", "Quill", "Ashdown", "Penhallow", "Greaves",
        "Fairweather", "Blackmoor", "Lindqvist", "Harrow", "Oakes"]
WOODS = ["cedar", "holly", "yew", "willow", "ash", "elm", "hawthorn", "vine", "rowan", "larch"]
CORES = ["phoenix feather", "dragon heartstring", "unicorn hair"]
ANIMALS = ["hare", "otter", "stag", "heron", "fox", "badger", "wolf", "swan", "lynx", "raven"]
FEARS = ["a giant spider", "a dementor", "a banshee", "a mummy", "a clown", "a werewolf",
         "fire", "deep water"]

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 32},
        "house": {"enum": HOUSES},
        "blood status": {"enum": BLOOD},
        "occupation": {"enum": JOBS},
        "wand": {
            "type": "object",
            "properties": {
                "wood": {"type": "string", "maxLength": 16},
                "core": {"type": "string", "maxLength": 24},
                "length": {"type": "number"},
            },
            "required": ["wood", "core", "length"],
            "additionalProperties": False,
        },
        "alive": {"enum": ["Alive", "Deceased"]},
        "patronus": {"type": "string", "maxLength": 16},
        "bogart": {"type": "string", "maxLength": 24},
    },
    "required": ["name", "house", "blood status", "occupation", "wand", "alive", "patronus",
                 "bogart"],
    "additionalProperties": False,
}


def a(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


def describe(rng):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    he = rng.choice(["He", "She"])
    his = "His" if he == "He" else "Her"
    job = rng.choice(JOBS)
    alive = rng.random() < 0.8
    length = rng.choice([9, 9.5, 10, 10.25, 11, 11.5, 12, 12.75, 13])
    return (f"{first} {last} was sorted into {rng.choice(HOUSES)} house. {he} is "
            f"{rng.choice(BLOOD).lower()} and works as "
            f"{a(job) if job in ('student', 'teacher', 'auror', 'death eater') else 'a member of the ' + job}. "
            f"{his} wand is {length} inches long, made of {rng.choice(WOODS)} with a "
            f"{rng.choice(CORES)} core. {his} patronus is {a(rng.choice(ANIMALS))}, and {his.lower()} "
            f"boggart takes the form of {rng.choice(FEARS)}. {he} is "
            f"{'still alive' if alive else 'no longer alive'}.")


def chat_prompt(desc):
    return ("<|im_start|>system\nYou extract facts about characters as JSON.<|im_end|>\n"
            "<|im_start|>user\nPlease extract the information of this character as JSON with the "
            "keys name, house, blood status, occupation, wand (wood, core, length), alive, "
            f"patronus and bogart.\n\n{desc}<|im_end|>\n<|im_start|>assistant\n")


def tokenize(base, text):
    st, body = http_post_json(base + "/tokenize", {"text": text, "add_special_tokens": False})
    if st != 200:
        raise RuntimeError(f"/tokenize: HTTP {st} {body[:200]!r}")
    return json.loads(body)["tokens"]


def request(kind, base, ids, max_new):
    t0 = time.perf_counter()
    if kind == "ours":
        st, body = http_post_json(base + "/generate", {
            "input_ids": ids,
            "sampling_params": {"json_schema": json.dumps(SCHEMA), "max_new_tokens": max_new,
                                "temperature": 0}}, timeout=600)
        text = json.loads(body).get("text", "") if st == 200 else ""
    else:
        st, body = http_post_json(base + "/completion", {
            "prompt": ids, "json_schema": SCHEMA, "n_predict": max_new, "temperature": 0,
            "cache_prompt": True}, timeout=600)
        text = json.loads(body).get("content", "") if st == 200 else ""
    return {"status": st, "text": text, "latency": time.perf_counter() - t0,
            "error": None if st == 200 else body[:200].decode("utf-8", "replace")}


def check(results, validator):
    bad = 0
    for r in results:
        try:
            validator.validate(json.loads(r["text"]))
            r["valid"] = True
        except Exception:  # noqa: BLE001 - any failure counts as invalid output
            r["valid"] = False
            bad += 1
    return bad


def run_phases(kind, base, prompts, args, tok_base):
    import jsonschema
    validator = jsonschema.Draft202012Validator(SCHEMA)
    # Warm-up: compiles the schema (cached afterwards on both sides) and touches the weights.
    request(kind, base, prompts[0], args.max_new_tokens)
    seq = [request(kind, base, p, args.max_new_tokens) for p in prompts[:args.latency_prompts]]
    results = [None] * len(prompts)
    sem = threading.Semaphore(args.concurrency)

    def worker(i):
        with sem:
            results[i] = request(kind, base, prompts[i], args.max_new_tokens)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    invalid = check(seq, validator) + check(results, validator)
    errors = sum(r["status"] != 200 for r in seq + results)
    out_tokens = sum(len(tokenize(tok_base, r["text"])) for r in results)
    lat = [r["latency"] for r in seq]
    return {
        "latency_mean_s": statistics.mean(lat), "latency_p50_s": pct(lat, 50),
        "latency_p90_s": pct(lat, 90), "throughput_req_s": len(prompts) / wall,
        "throughput_out_tok_s": out_tokens / wall, "wall_s": wall, "invalid": invalid,
        "errors": errors, "output_tokens": out_tokens,
        "sample": results[0]["text"], "first_error": next((r["error"] for r in seq + results
                                                           if r["error"]), None),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--sgl-server", default=str(ROOT / "build/bin/sgl-server"))
    ap.add_argument("--llama-server", default=str(ROOT / "build-peer/bin/llama-server"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-prompts", type=int, default=32)
    ap.add_argument("--latency-prompts", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--json-out")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    descs = [describe(rng) for _ in range(args.num_prompts)]
    n = args.concurrency
    runs = {}
    configs = [("sglang.cpp, jump-forward on", "ours", []),
               ("sglang.cpp, jump-forward off", "ours", ["--disable-jump-forward"])]
    if not args.skip_llama:
        configs.append(("llama.cpp llama-server", "llama", None))
    prompts = None
    tok_server = None
    try:
        tok_server = Server("sgl-tok", [args.sgl_server, "--model-path", args.model, "--port",
                                        str(port := free_port()), "--threads", "1"], port)
        prompts = [tokenize(tok_server.url, chat_prompt(d)) for d in descs]
        for label, kind, extra in configs:
            port = free_port()
            if kind == "ours":
                cmd = [args.sgl_server, "--model-path", args.model, "--port", str(port),
                       "--threads", str(args.threads), "--max-running-requests", str(n)] + extra
            else:
                cmd = [args.llama_server, "-m", args.model, "--port", str(port), "-t",
                       str(args.threads), "-tb", str(args.threads), "--parallel", str(n), "-c",
                       str(n * 1024), "--no-webui"]
            print(f"[json-bench] {label}: starting (load {' '.join(loadavg())})", flush=True)
            srv = Server(label.split()[0], cmd, port)
            try:
                runs[label] = run_phases(kind, srv.url, prompts, args, tok_server.url)
            finally:
                srv.stop()
            r = runs[label]
            print(f"[json-bench] {label}: latency {r['latency_mean_s']*1000:.0f} ms, "
                  f"{r['throughput_req_s']:.2f} req/s, invalid {r['invalid']}, errors "
                  f"{r['errors']}; sample {r['sample'][:120]!r}", flush=True)
    finally:
        if tok_server:
            tok_server.stop()

    print(f"\nJSON decoding ({args.num_prompts} prompts, prompt ~{statistics.mean(map(len, prompts)):.0f}"
          f" tokens, {args.threads} threads, concurrency {n}; load {' '.join(loadavg())})\n")
    print("| engine | latency mean / p50 / p90 (ms) | throughput req/s | output tok/s |"
          " invalid | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in runs.items():
        print(f"| {label} | {r['latency_mean_s']*1000:.0f} / {r['latency_p50_s']*1000:.0f} / "
              f"{r['latency_p90_s']*1000:.0f} | {r['throughput_req_s']:.2f} | "
              f"{r['throughput_out_tok_s']:.1f} | {r['invalid']} | {r['errors']} |")
    on, off = runs.get("sglang.cpp, jump-forward on"), runs.get("sglang.cpp, jump-forward off")
    if on and off:
        print(f"\njump-forward on vs off: latency {off['latency_mean_s']/on['latency_mean_s']:.2f}x,"
              f" throughput {on['throughput_req_s']/off['throughput_req_s']:.2f}x")
    ll = runs.get("llama.cpp llama-server")
    if on and ll:
        print(f"ours (on) vs llama-server: latency {ll['latency_mean_s']/on['latency_mean_s']:.2f}x,"
              f" throughput {on['throughput_req_s']/ll['throughput_req_s']:.2f}x")
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(runs, indent=1))
    sys.exit(1 if any(r["errors"] or r["invalid"] for r in runs.values()) else 0)


if __name__ == "__main__":
    main()
