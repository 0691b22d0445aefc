"""Reliability of sgl-server under hostile or heavy use: overload gets a quick 503 and the server
recovers; slow clients (slowloris) and idle connections are cut by timeouts; the connection cap;
the bad-input sweep (bench/bad_input_sweep.py); KV usage returns to zero after aborts and
disconnects; SIGTERM under load ends every stream properly and a restarted server serves again;
--disable-jump-forward keeps constrained outputs valid."""
import concurrent.futures as cf
import json
import pathlib
import re
import signal
import socket
import sys
import threading
import time

import jsonschema
import pytest
import requests

import conftest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import bad_input_sweep  # noqa: E402

LONG = {"text": "Count slowly to one thousand:", "stream": True,
        "sampling_params": {"max_new_tokens": 4000, "ignore_eos": True, "temperature": 0}}


def info(server):
    return requests.get(server.url("/get_server_info"), headers=server.headers(),
                        timeout=30).json()["internal_states"][0]


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_idle(server, timeout=30):
    """Until nothing runs, waits or is admitted, and no KV slot is held outside the cache."""
    def idle():
        s = info(server)
        return (s["num_running_reqs"] == 0 and s["num_queue_reqs"] == 0 and
                s["kv_request_tokens"] == 0 and s["admitted_sequences"] == 0) and s
    return wait_for(idle, timeout, "the server to become idle")


class OpenStream:
    """A streaming /generate held open until close() (the response headers come back when the
    request is admitted); with first_event, also waits for its first event (it runs)."""

    def __init__(self, server, body=LONG, first_event=False):
        self.r = requests.post(server.url("/generate"), json=body, stream=True, timeout=60,
                               headers=server.headers())
        self.status = self.r.status_code
        self.lines = self.r.iter_lines(decode_unicode=True)
        if self.status == 200 and first_event:
            next(line for line in self.lines if line)

    def close(self):
        self.r.close()


def test_overload_is_503_with_retry_after_and_recovers(server_factory):
    s = server_factory("--max-queued-requests", "4", "--max-running-requests", "2",
                       "--max-total-tokens", "16384")
    held = [OpenStream(s) for _ in range(4)]
    assert [h.status for h in held] == [200] * 4
    assert info(s)["admitted_sequences"] == 4
    for path, body in [("/generate", {"text": "x", "sampling_params": {"max_new_tokens": 1}}),
                       ("/v1/completions", {"prompt": "x", "max_tokens": 1}),
                       ("/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1})]:
        r = requests.post(s.url(path), json=body, timeout=30)
        assert r.status_code == 503, (path, r.text)
        assert r.headers["Retry-After"] == "1"
        err = r.json()
        assert err["object"] == "error" and err["code"] == 503
        assert "--max-queued-requests" in err["message"]
    # A request larger than the whole queue can never be served: 400, not 503.
    r = requests.post(s.url("/generate"), json={"text": "x", "sampling_params": {"n": 5}})
    assert r.status_code == 400 and "--max-queued-requests" in r.json()["message"]
    # Recovery: the streams are dropped (their requests aborted); everything is served again.
    for h in held:
        h.close()
    st = wait_idle(s)
    assert st["overload_rejections"] == 3
    with cf.ThreadPoolExecutor(4) as ex:
        rs = list(ex.map(lambda i: requests.post(
            s.url("/generate"), json={"text": f"Hi {i}", "sampling_params": {"max_new_tokens": 2}},
            timeout=60), range(4)))
    assert [r.status_code for r in rs] == [200] * 4
    assert requests.get(s.url("/health_generate"), timeout=60).status_code == 200
    metrics_off = requests.get(s.url("/metrics"))
    assert metrics_off.status_code == 404


def _closed_by_server(sock, trickle=None, within=15):
    """Reads until the server closes `sock` (True) or `within` seconds pass (False); sends one
    byte of `trickle` every 0.2 s meanwhile."""
    sock.settimeout(0.2)
    deadline = time.time() + within
    i = 0
    while time.time() < deadline:
        if trickle and i < len(trickle):
            try:
                sock.sendall(trickle[i:i + 1])
            except OSError:
                return True
            i += 1
        try:
            data = sock.recv(4096)
            if not data:
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def test_slow_and_idle_connections_are_cut_and_connections_capped(server_factory):
    s = server_factory("--header-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1",
                       "--max-connections", "4")
    addr = ("127.0.0.1", s.port)
    # Slowloris: headers trickled a byte at a time never complete; the connection is closed.
    with socket.create_connection(addr) as c:
        c.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\n")
        assert _closed_by_server(c, trickle=b"X-Slow: " + b"a" * 200)
    # A body that never arrives.
    with socket.create_connection(addr) as c:
        c.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\"")
        assert _closed_by_server(c)
    # An idle keep-alive connection after a complete request.
    with socket.create_connection(addr) as c:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(10)
        assert c.recv(4096).startswith(b"HTTP/1.1 200")
        assert _closed_by_server(c)
    # The connection cap: 4 open connections, the 5th is answered 503 and closed.
    wait_for(lambda: info(s)["open_connections"] == 1, 10, "earlier connections to close")
    time.sleep(0.3)  # the connection that asked closes too
    held = [socket.create_connection(addr) for _ in range(4)]
    r = requests.get(s.url("/get_model_info"), timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert "--max-connections" in r.json()["message"]
    for c in held:
        c.close()
    wait_for(lambda: _get_ok(s.url("/get_model_info")), 10, "a free connection slot")
    st = wait_for(lambda: (lambda i: i["open_connections"] == 1 and i)(info(s)), 10,
                  "the held connections to be released")
    assert st["rejected_connections"] >= 1
    assert requests.get(s.url("/health_generate"), timeout=60).status_code == 200


def _get_ok(url):
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("chunk", range(4))
def test_bad_input_sweep(server, chunk):
    cases = bad_input_sweep.CASES[chunk::4]
    problems = []
    for case in cases:
        status, body, _, problem = bad_input_sweep.run_case(server.base_url, case,
                                                            server.headers(), timeout=120)
        if problem:
            problems.append(f"{case.name}: {problem}")
    assert bad_input_sweep.health_ok(server.base_url, server.headers())
    assert not problems, "\n".join(problems)


def test_looping_chat_template_is_a_bounded_400(server_factory, tmp_path):
    tpl = tmp_path / "loop.jinja"
    tpl.write_text("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}"
                   "{% endfor %}{% for m in messages %}{{ m.content }}{% endfor %}")
    s = server_factory("--chat-template", str(tpl), "--max-total-tokens", "4096")
    r = requests.post(s.url("/v1/chat/completions"), timeout=120,
                      json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("chat template:")
    assert requests.get(s.url("/health_generate"), timeout=60).status_code == 200
    rec = tmp_path / "recurse.jinja"
    rec.write_text("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
    s2 = server_factory("--chat-template", str(rec), "--max-total-tokens", "4096")
    r = requests.post(s2.url("/v1/chat/completions"), timeout=120,
                      json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert r.status_code == 400 and "macro" in r.json()["message"], r.text
    assert requests.get(s2.url("/health_generate"), timeout=60).status_code == 200


def test_kv_returns_to_zero_after_aborts_and_disconnects(server):
    base = wait_idle(server)
    # Streams dropped mid-generation, requests aborted by rid, non-streaming requests whose client
    # goes away, and ones that complete.
    body = dict(LONG, sampling_params=dict(LONG["sampling_params"], max_new_tokens=1000))
    aborted = OpenStream(server, dict(body, rid="kv-abort-me"), first_event=True)
    dropped = [OpenStream(server, body, first_event=(i == 0)) for i in range(3)]
    r = requests.post(server.url("/abort_request"), json={"rid": "kv-abort-me"},
                      headers=server.headers(), timeout=30)
    assert r.status_code == 200 and r.json()["aborted"] == 1
    events = [json.loads(l[6:]) for l in aborted.lines if l and l != "data: [DONE]"]
    assert events[-1]["meta_info"]["finish_reason"]["type"] == "abort"
    for d in dropped:
        d.close()
    for _ in range(3):
        body = json.dumps({"text": "Tell a long story.",
                           "sampling_params": {"max_new_tokens": 2000, "ignore_eos": True}})
        with socket.create_connection(("127.0.0.1", server.port)) as c:
            c.sendall(f"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
            time.sleep(0.2)
    done = requests.post(server.url("/generate"), timeout=60, headers=server.headers(),
                         json={"text": "Hello", "sampling_params": {"max_new_tokens": 8}})
    assert done.status_code == 200
    st = wait_idle(server)
    assert st["kv_used_tokens"] == st["kv_cache_tokens"]
    assert st["finished_requests"] >= base["finished_requests"] + 8
    m = requests.get(server.url("/metrics"), headers=server.headers(), timeout=30).text
    assert re.search(r"^sglang:kv_request_tokens\{[^}]*\} 0$", m, re.M), m
    assert re.search(r"^sglang:num_admitted_sequences\{[^}]*\} 0$", m, re.M)


def test_sigterm_under_load_then_restart_on_the_same_port(server_factory, monkeypatch):
    s = server_factory("--max-total-tokens", "16384", "--max-running-requests", "8")
    results = [None] * 12

    def client(i):
        try:
            body = dict(LONG, text=f"Client {i} counts:",
                        sampling_params=dict(LONG["sampling_params"], max_new_tokens=1500))
            with requests.post(s.url("/generate"), json=body, stream=True, timeout=60) as r:
                if r.status_code != 200:
                    results[i] = ("status", r.status_code)
                    return
                lines = [l for l in r.iter_lines(decode_unicode=True) if l]
            results[i] = ("stream", lines)
        except requests.RequestException as e:
            results[i] = ("error", repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    wait_for(lambda: info(s)["admitted_sequences"] == 12, 30, "all 12 requests admitted")
    wait_for(lambda: info(s)["num_running_reqs"] == 8, 30, "8 running")
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=30) == 0
    for t in threads:
        t.join(30)
    for kind, payload in results:
        assert kind == "stream", payload
        assert payload[-1] == "data: [DONE]"
        last = json.loads(payload[-2][6:])
        assert last["meta_info"]["finish_reason"]["type"] == "abort"
    assert "stopped" in s.output()
    # A new server on the same port serves.
    monkeypatch.setattr(conftest, "free_port", lambda: s.port)
    s2 = server_factory("--max-total-tokens", "4096")
    assert s2.port == s.port
    r = requests.post(s2.url("/generate"), json={"text": "Hi", "sampling_params": {"max_new_tokens": 2}},
                      timeout=60)
    assert r.status_code == 200 and r.json()["meta_info"]["completion_tokens"] == 2


SCHEMA = {"type": "object",
          "properties": {"person_name": {"type": "string", "maxLength": 12},
                         "home_city": {"enum": ["Paris", "London", "Rome"]},
                         "age_in_years": {"type": "integer", "minimum": 0, "maximum": 99}},
          "required": ["person_name", "home_city", "age_in_years"],
          "additionalProperties": False}
REGEX = r"(yes|no), because [a-z ]{1,20}\."
PROMPT = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n"


def _constrained(server, seed, **c):
    r = requests.post(server.url("/generate"), timeout=120, headers=server.headers(),
                      json={"text": PROMPT, "sampling_params": {"max_new_tokens": 80, "temperature": 0.7,
                                                                "sampling_seed": seed, **c}})
    assert r.status_code == 200, r.text
    return r.json()


def test_disable_jump_forward_keeps_outputs_valid(server, server_factory):
    off = server_factory("--disable-jump-forward", "--max-total-tokens", "8192")
    assert requests.get(off.url("/get_server_info")).json()["disable_jump_forward"] is True
    jf_before = info(server)["jump_forward_tokens"]
    for srv in (off, server):
        for seed in range(3):
            out = _constrained(srv, seed, json_schema=json.dumps(SCHEMA))
            if out["meta_info"]["finish_reason"]["type"] == "stop":
                jsonschema.validate(json.loads(out["text"]), SCHEMA)
            out = _constrained(srv, seed, regex=REGEX)
            if out["meta_info"]["finish_reason"]["type"] == "stop":
                assert re.fullmatch(REGEX, out["text"]), out["text"]
    assert info(off)["jump_forward_tokens"] == 0
    # With jump-forward on, the schema's fixed keys were appended without decoding.
    assert info(server)["jump_forward_tokens"] > jf_before
