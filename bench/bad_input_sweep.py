#!/usr/bin/env python3
"""Bad-input sweep against sgl-server: every case is a malformed, hostile or pathological request;
each must get a clear answer (the expected status, with SGLang's JSON error body for 4xx) within a
bounded time, and the server must still answer GET /health_generate afterwards.

Cases (CASES below): malformed JSON, wrong types, huge numbers, negative sizes, invalid UTF-8,
oversized bodies (33 MB and 100 MB), prompts and max_tokens beyond the context, deeply nested
bodies and JSON schemas, catastrophic regexes ((a*)*b, (a|a)* repeated, nested counted repeats,
DFA blow-ups), oversized headers, raw protocol garbage, bad methods and routes, too many stop
strings / prompts / choices, path-like fields. Valid-but-pathological constraints (e.g. (a*)*b)
must generate normally (200, output matching the regex).

usage: bench/bad_input_sweep.py [--url http://127.0.0.1:30000] [--api-key KEY] [--timeout 60]
       (without --url it starts build/bin/sgl-server on a free port with the default model;
       --bin-dir picks another build)
Prints one line per case (status, seconds, message head) and a summary; exits 1 when any case
got an unexpected status, a 5xx, no answer, or /health_generate failed after it.
The e2e test tests/e2e/test_reliability.py imports CASES and run_case from here.
"""
import argparse
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.parse

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


class Case:
    """One request. `body` is a JSON-able object, or bytes sent as is; `raw` is a whole HTTP
    request sent over a socket instead. `expect` is the set of acceptable statuses; `check`
    (optional) gets the response JSON of a 200 and returns an error string or None."""

    def __init__(self, name, path="/generate", body=None, method="POST", expect=(400,), raw=None,
                 headers=None, check=None):
        self.name, self.path, self.body, self.method = name, path, body, method
        self.expect, self.raw, self.headers, self.check = set(expect), raw, headers or {}, check


def gen(sp=None, **top):
    body = {"text": "Hello", "sampling_params": {"max_new_tokens": 4, **(sp or {})}}
    body.update(top)
    return body


def chat(**kw):
    return {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **kw}


def nested_schema(depth):
    s = {"type": "integer"}
    for _ in range(depth):
        s = {"type": "object", "properties": {"a": s}, "required": ["a"]}
    return s


def nested_schema_text(depth):
    """nested_schema(depth) as JSON text, built without recursion (json.dumps would overflow)."""
    return ('{"type": "object", "properties": {"a": ' * depth + '{"type": "integer"}' +
            '}, "required": ["a"]}' * depth)


def regex_case(name, rx, expect=(200, 400)):
    def check(out):
        if out["meta_info"]["finish_reason"]["type"] == "stop" and not re.fullmatch(rx, out["text"]):
            return f"output {out['text']!r} does not match {rx!r}"
        return None

    return Case(name, body=gen({"regex": rx, "max_new_tokens": 16, "temperature": 0}),
                expect=expect, check=check)


MB = 1 << 20
CASES = [
    # --- malformed JSON
    Case("empty body", body=b""),
    Case("not JSON", body=b"hello world"),
    Case("truncated JSON", body=b'{"text": "x", "sampling_params": {'),
    Case("trailing comma", body=b'{"text": "x",}'),
    Case("NaN literal", body=b'{"text": "x", "sampling_params": {"temperature": NaN}}'),
    Case("JSON null body", body=b"null"),
    Case("JSON list body", body=b"[1, 2, 3]"),
    Case("chat: malformed JSON", path="/v1/chat/completions", body=b'{"messages": [}'),
    Case("completions: malformed JSON", path="/v1/completions", body=b"{'prompt': 'x'}"),
    Case("tokenize: malformed JSON", path="/tokenize", body=b"{"),
    Case("abort_request: malformed JSON", path="/abort_request", body=b"}"),
    # --- wrong types
    Case("text is a number", body={"text": 5}),
    Case("text is an object", body={"text": {"a": 1}}),
    Case("no prompt at all", body={"sampling_params": {}}),
    Case("text and input_ids", body={"text": "a", "input_ids": [1]}),
    Case("sampling_params is a string", body={"text": "x", "sampling_params": "fast"}),
    Case("max_new_tokens is a string", body=gen({"max_new_tokens": "10"})),
    Case("temperature is a string", body=gen({"temperature": "hot"})),
    Case("stop is a number", body=gen({"stop": 5})),
    Case("stream is a string", body=gen(stream="yes")),
    Case("n is fractional", body=gen({"n": 1.5})),
    Case("input_ids has strings", body={"input_ids": ["a", "b"]}),
    Case("input_ids ragged batch", body={"input_ids": [[1, 2], [3, "x"]]}),
    Case("rid is a number", body=gen(rid=5)),
    Case("logit_bias key not an id", body=gen({"logit_bias": {"abc": 1}})),
    Case("regex is a number", body=gen({"regex": 5})),
    Case("json_schema is a list", body=gen({"json_schema": [1]})),
    Case("completions: prompt is an object", path="/v1/completions", body={"prompt": {}}),
    Case("chat: messages is a string", path="/v1/chat/completions", body={"messages": "hi"}),
    Case("chat: role is a number", path="/v1/chat/completions",
         body={"messages": [{"role": 5, "content": "x"}]}),
    Case("chat: content is a number", path="/v1/chat/completions",
         body={"messages": [{"role": "user", "content": 5}]}),
    Case("chat: image content part", path="/v1/chat/completions",
         body={"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
    Case("chat: response_format is a string", path="/v1/chat/completions",
         body=chat(response_format="json")),
    Case("chat: empty messages", path="/v1/chat/completions", body={"messages": []}),
    Case("detokenize: tokens are strings", path="/detokenize", body={"tokens": ["a"]}),
    # --- huge numbers
    Case("max_new_tokens 1e30", body=gen({"max_new_tokens": 1e30})),
    Case("max_new_tokens 10**23", body=b'{"text": "x", "sampling_params": '
                                         b'{"max_new_tokens": 99999999999999999999999}}'),
    Case("temperature 1e308", body=gen({"temperature": 1e308}), expect=(200, 400)),
    Case("temperature 1e400 (overflow)",
         body=b'{"text": "x", "sampling_params": {"temperature": 1e400}}'),
    Case("top_k 2**63", body=gen({"top_k": 2 ** 63})),
    Case("n 1e9", body=gen({"n": 1000000000})),
    Case("seed 2**70", body=gen({"sampling_seed": 2 ** 70})),
    Case("input id 10**12", body={"input_ids": [10 ** 12]}),
    Case("input id past the vocabulary", body={"input_ids": [1, 10 ** 7]}),
    Case("top_logprobs_num 10**9", body=gen(return_logprob=True, top_logprobs_num=10 ** 9)),
    Case("logit_bias 1e300", body=gen({"logit_bias": {"1": 1e300}})),
    Case("completions: max_tokens 2**31", path="/v1/completions",
         body={"prompt": "x", "max_tokens": 2 ** 31}),
    # --- negative sizes
    Case("max_new_tokens -1", body=gen({"max_new_tokens": -1})),
    Case("min_new_tokens -3", body=gen({"min_new_tokens": -3})),
    Case("n -1", body=gen({"n": -1})),
    Case("n 0", body=gen({"n": 0})),
    Case("top_k -5", body=gen({"top_k": -5})),
    Case("top_p -0.5", body=gen({"top_p": -0.5})),
    Case("temperature -1", body=gen({"temperature": -1})),
    Case("logprob_start_len -5", body=gen(return_logprob=True, logprob_start_len=-5)),
    Case("input id -1", body={"input_ids": [-1]}),
    Case("completions: max_tokens -1", path="/v1/completions", body={"prompt": "x", "max_tokens": -1}),
    Case("completions: logprobs -1", path="/v1/completions", body={"prompt": "x", "logprobs": -1}),
    Case("chat: top_logprobs -1", path="/v1/chat/completions",
         body=chat(logprobs=True, top_logprobs=-1)),
    # --- invalid UTF-8
    Case("invalid UTF-8 in text", body=b'{"text": "\xff\xfe\xfd"}'),
    Case("truncated UTF-8 in stop", body=b'{"text": "x", "sampling_params": {"stop": "\xc3"}}'),
    Case("lone surrogate escape", body=b'{"text": "\\ud800"}'),
    Case("chat: invalid UTF-8 content", path="/v1/chat/completions",
         body=b'{"messages": [{"role": "user", "content": "\xc0\xaf"}]}'),
    # --- sizes
    Case("33 MB body", body=b'{"text": "' + b"a" * (33 * MB) + b'"}', expect=(413,)),
    Case("100 MB body", body=b'{"text": "' + b"a" * (100 * MB) + b'"}', expect=(413,)),
    Case("prompt beyond the context", body={"text": "word " * 20000}),
    Case("input_ids beyond the context", body={"input_ids": [42] * 20000}),
    Case("max_new_tokens beyond the context", body=gen({"max_new_tokens": 10 ** 6})),
    Case("completions: max_tokens beyond the context", path="/v1/completions",
         body={"prompt": "x", "max_tokens": 10 ** 6}),
    Case("chat: max_tokens beyond the context", path="/v1/chat/completions",
         body=chat(max_tokens=10 ** 6)),
    Case("5000 prompts", body={"text": ["x"] * 5000, "sampling_params": {"max_new_tokens": 1}}),
    Case("n 2000", body=gen({"n": 2000})),
    Case("1000 stop strings", body=gen({"stop": [f"s{i}" for i in range(1000)]})),
    Case("100 KB stop string", body=gen({"stop": "z" * 100000})),
    Case("empty stop string", body=gen({"stop": [""]})),
    Case("empty text list", body={"text": []}),
    Case("empty input_ids", body={"input_ids": []}),
    # --- nesting
    Case("body nested 100000 deep", body=b'{"text": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
    Case("body nested 70 deep", body=b'{"x": ' + b"[" * 70 + b"]" * 70 + b', "text": "x"}'),
    Case("json_schema string nested 5000 deep", body=gen({"json_schema": nested_schema_text(5000)})),
    Case("json_schema nested 200 deep", body=gen({"json_schema": json.dumps(nested_schema(200))})),
    Case("json_schema recursive $ref", body=gen({"json_schema": json.dumps(
        {"$ref": "#/$defs/a", "$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}}}}),
        "max_new_tokens": 8}), expect=(200, 400)),
    Case("json_schema self $ref", body=gen({"json_schema": '{"$ref": "#"}'}), expect=(200, 400)),
    Case("json_schema not JSON", body=gen({"json_schema": "{nope"})),
    Case("json_schema huge maxLength", body=gen({"json_schema": json.dumps(
        {"type": "string", "minLength": 10 ** 9})})),
    Case("chat: json_schema object 80 levels deep", path="/v1/chat/completions",
         body=chat(response_format={"type": "json_schema", "json_schema": {
             "name": "x", "schema": nested_schema(40)}})),
    # --- catastrophic regexes: valid ones must generate normally, hostile ones be refused
    regex_case("regex (a*)*b", r"(a*)*b"),
    regex_case("regex (a|a)* x20", r"(a|a)*" * 20 + "b"),
    regex_case("regex ((a*)*)* nested 50", "(" * 50 + "a*" + ")*" * 50),
    regex_case("regex (x+x+)+y", r"(x+x+)+y"),
    regex_case("regex (a|b)*a(a|b){20} (DFA blow-up)", r"(a|b)*a(a|b){20}"),
    regex_case("regex (a{1,100}){1,100}", r"(a{1,100}){1,100}"),
    regex_case("regex a{10000}{10000}", r"(a{10000}){10000}"),
    regex_case("regex (((a{0,100}){0,100}){0,100})", r"(((a{0,100}){0,100}){0,100})"),
    regex_case("regex nested groups 1000 deep", "(" * 1000 + "a" + ")" * 1000),
    regex_case("regex [^\\x00-\\x{10FFFF}]", r"[^\x00-\x{10FFFF}]"),
    regex_case("regex unclosed class", r"[abc", expect=(400,)),
    regex_case("regex backreference", r"(a)\1", expect=(400,)),
    Case("ebnf left recursion", body=gen({"ebnf": 'root ::= root "a" | "a"', "max_new_tokens": 8}),
         expect=(200, 400)),
    Case("ebnf undefined rule", body=gen({"ebnf": "root ::= missing"})),
    # --- path-like fields (no request names a file on the server)
    Case("lora_path", body=gen(lora_path="/etc/passwd")),
    Case("completions: model is a path", path="/v1/completions",
         body={"prompt": "x", "model": "/etc/passwd"}, expect=(404,)),
    Case("model card of a path", path="/v1/models/%2Fetc%2Fpasswd", method="GET", expect=(404,)),
    Case("weights from disk route", path="/update_weights_from_disk",
         body={"model_path": "/etc"}, expect=(404,)),
    # --- protocol
    Case("DELETE /generate", method="DELETE", body=gen(), expect=(405,)),
    Case("GET /generate", method="GET", expect=(405,)),
    Case("unknown route", path="/nope", method="GET", expect=(404,)),
    Case("100 KB header", method="GET", path="/get_model_info",
         headers={"X-Big": "a" * 100000}, expect=(431,)),
    Case("garbage request line", raw=b"GARBAGE\r\n\r\n"),
    Case("bad chunk size", raw=b"POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                b"\r\n\r\nZZZ\r\n"),
    Case("negative Content-Length", raw=b"POST /generate HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: -5\r\n\r\n"),
    Case("Content-Length over the limit", raw=b"POST /generate HTTP/1.1\r\nHost: x\r\n"
                                              b"Content-Length: 999999999999\r\n\r\n",
         expect=(413,)),
    Case("abort_request without rid", path="/abort_request", body={}),
]


def _raw(base_url, data, timeout):
    u = urllib.parse.urlparse(base_url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
    resp = b"".join(chunks)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    status = int(m.group(1)) if m else None
    body = resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""
    return status, body


def run_case(base_url, case, headers=None, timeout=60):
    """Sends one case. Returns (status or None, response body bytes, seconds, problem or None)."""
    headers = dict(headers or {}, **case.headers)
    t0 = time.time()
    try:
        if case.raw is not None:
            status, body = _raw(base_url, case.raw, timeout)
        else:
            kw = {"headers": headers, "timeout": timeout}
            if isinstance(case.body, bytes):
                kw["data"] = case.body
                kw["headers"] = dict(headers, **{"Content-Type": "application/json"})
            elif case.body is not None:
                kw["json"] = case.body
            r = requests.request(case.method, base_url + case.path, **kw)
            status, body = r.status_code, r.content
    except requests.RequestException as e:
        return None, b"", time.time() - t0, f"no answer: {type(e).__name__}: {e}"
    dt = time.time() - t0
    problem = None
    if status not in case.expect:
        problem = f"status {status}, expected {sorted(case.expect)}: {body[:200]!r}"
    elif status >= 400 and case.raw is None and case.method != "HEAD":
        try:
            j = json.loads(body)
            if j.get("object") != "error" or j.get("code") != status or not j.get("message"):
                problem = f"error body is not the OpenAI-style error: {body[:200]!r}"
        except ValueError:
            problem = f"error body is not JSON: {body[:200]!r}"
    elif status == 200 and case.check:
        problem = case.check(json.loads(body))
    return status, body, dt, problem


def health_ok(base_url, headers=None):
    try:
        return requests.get(base_url + "/health_generate", headers=headers or {},
                            timeout=30).status_code == 200
    except requests.RequestException:
        return False


def message_head(body):
    try:
        return json.loads(body).get("message", "")[:90]
    except (ValueError, AttributeError):
        return body[:60].decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--api-key")
    ap.add_argument("--bin-dir", default=str(ROOT / "build" / "bin"))
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    proc = None
    url = args.url
    if not url:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([os.path.join(args.bin_dir, "sgl-server"), "--model-path",
                                 args.model, "--port", str(port), "--log-level", "warning"])
        for _ in range(600):
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    bad = 0
    worst = 0.0
    try:
        for case in CASES:
            status, body, dt, problem = run_case(url, case, headers, args.timeout)
            healthy = health_ok(url, headers)
            worst = max(worst, dt)
            ok = problem is None and healthy
            bad += not ok
            print(f"{'ok ' if ok else 'BAD'} {str(status):>4} {dt:7.3f}s  {case.name:<45} "
                  f"{message_head(body)}" + ("" if ok else f"\n      -> {problem or 'unhealthy'}"),
                  flush=True)
    finally:
        if proc:
            proc.terminate()
            rc = proc.wait(30)
            print(f"server exit status {rc}")
            bad += rc != 0
    print(f"\n{len(CASES)} cases, {bad} bad, slowest answer {worst:.2f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
