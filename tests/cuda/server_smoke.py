#!/usr/bin/env python3
"""sgl-server on a GPU: starts it on a model with --device cuda, sends native and OpenAI requests
(greedy, sampled, JSON-schema and regex constrained, streaming, a bad body), checks the answers,
stops it with SIGTERM. Standard library only (runs on the GPU machine as is).

    python3 tests/cuda/server_smoke.py --bin build-cuda-srv/bin/sgl-server --model MODEL.gguf
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request


def post(base, path, body, raw=False):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read().decode()
            return r.status, (text if raw else json.loads(text))
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "{}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, default=30123)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    base = f"http://127.0.0.1:{a.port}"
    proc = subprocess.Popen([a.bin, "--model-path", a.model, "--port", str(a.port),
                             "--device", a.device, "--kv-cache-dtype", "bf16",
                             "--max-total-tokens", "65536", "--mem-fraction-static", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failures = []

    def check(name, ok, detail=""):
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
        if not ok:
            failures.append(name)

    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.2)
        else:
            print("server did not come up")
            return 1
        with urllib.request.urlopen(base + "/get_server_info", timeout=10) as r:
            info = json.loads(r.read().decode())
        check("server_info names the device", info.get("device") == a.device, info.get("device"))

        t0 = time.time()
        st, out = post(base, "/generate", {"text": "The capital of France is",
                                           "sampling_params": {"max_new_tokens": 32,
                                                               "temperature": 0}})
        dt = time.time() - t0
        check("native greedy", st == 200 and len(out.get("text", "")) > 0, (st, out))
        print(f"  greedy text: {out.get('text')!r} ({dt:.3f} s)")
        st2, out2 = post(base, "/generate", {"text": "The capital of France is",
                                             "sampling_params": {"max_new_tokens": 32,
                                                                 "temperature": 0}})
        check("greedy is repeatable", st2 == 200 and out2.get("text") == out.get("text"),
              (out.get("text"), out2.get("text")))
        st, batch = post(base, "/generate", {"text": ["Hello, my name is"] * 8,
                                             "sampling_params": {"max_new_tokens": 24,
                                                                 "temperature": 0.8,
                                                                 "top_p": 0.9,
                                                                 "sampling_seed": 7}})
        check("sampled batch of 8", st == 200 and len(batch) == 8 and
              all(b["meta_info"]["completion_tokens"] > 0 for b in batch), (st, batch))

        schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                                   "age": {"type": "integer"}},
                  "required": ["name", "age"], "additionalProperties": False}
        st, cc = post(base, "/v1/chat/completions", {
            "max_tokens": 96, "temperature": 0.7,
            "messages": [{"role": "user", "content": "Give me a person as JSON."}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "p", "schema": schema}}})
        content = cc["choices"][0]["message"]["content"] if st == 200 else ""
        try:
            obj = json.loads(content)
            ok = (set(obj) == {"name", "age"} and isinstance(obj["name"], str) and
                  isinstance(obj["age"], int) and len(obj["name"]) <= 20)
        except Exception as e:  # noqa: BLE001
            ok = False
        check("OpenAI chat with json_schema", ok, (st, content))
        print(f"  json: {content}")

        st, rx = post(base, "/generate", {"text": "My phone number is ",
                                          "sampling_params": {"max_new_tokens": 32,
                                                              "temperature": 1.0,
                                                              "regex": r"\d{3}-\d{3}-\d{4}"}})
        check("regex constraint", st == 200 and re.fullmatch(r"\d{3}-\d{3}-\d{4}", rx["text"]),
              (st, rx))

        st, text = post(base, "/generate", {"text": "Count: one, two,", "stream": True,
                                            "sampling_params": {"max_new_tokens": 16,
                                                                "temperature": 0}}, raw=True)
        events = [l for l in text.splitlines() if l.startswith("data: ")]
        check("streaming", st == 200 and len(events) >= 2 and events[-1] == "data: [DONE]",
              text[-200:])

        st, err = post(base, "/generate", b"{not json")
        check("bad body is a 400", st == 400, (st, err))
        st, out = post(base, "/generate", {"text": "Still serving?",
                                           "sampling_params": {"max_new_tokens": 4}})
        check("serves after the bad body", st == 200, (st, out))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -9
        log = proc.stdout.read()
        check("SIGTERM exit 0", rc == 0, rc)
        print("--- server log (tail)\n" + "\n".join(log.splitlines()[-15:]))
    print("server smoke:", "OK" if not failures else f"{len(failures)} FAILED: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
