"""Security defaults of sgl-server (docs/security.md): loopback bind by default, --api-key on every
route but /health, request limits from flags, no request field naming a server path, and a chat
template sandbox without file access."""
import pathlib
import subprocess

import pytest
import requests

import conftest

# Every route the server has (and some it does not), with the methods to try.
ROUTES = [
    ("GET", "/health_generate"), ("POST", "/health_generate"),
    ("GET", "/get_model_info"), ("GET", "/model_info"),
    ("GET", "/get_server_info"), ("GET", "/server_info"),
    ("GET", "/flush_cache"), ("POST", "/flush_cache"),
    ("POST", "/abort_request"), ("POST", "/tokenize"), ("POST", "/detokenize"),
    ("GET", "/metrics"), ("POST", "/generate"), ("PUT", "/generate"),
    ("GET", "/v1/models"), ("GET", "/v1/models/smol"),
    ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
    ("HEAD", "/get_model_info"), ("DELETE", "/generate"),
    ("GET", "/nope"), ("POST", "/update_weights_from_disk"), ("GET", "/health/../generate"),
    ("GET", "/v1/../generate"),
]
BODIES = {
    "/abort_request": {"abort_all": True},
    "/tokenize": {"text": "hi"},
    "/detokenize": {"tokens": [1, 2]},
    "/generate": {"text": "hi", "sampling_params": {"max_new_tokens": 1}},
    "/v1/completions": {"prompt": "hi", "max_tokens": 1},
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
}


def listening_addresses(port):
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp{,6})."""
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        p = pathlib.Path(name)
        if not p.exists():
            continue
        for line in p.read_text().splitlines()[1:]:
            f = line.split()
            addr, hex_port = f[1].split(":")
            if int(hex_port, 16) == port and f[3] == "0A":
                out.append(addr)
    return out


def test_api_key_guards_every_route_but_health(server_factory):
    s = server_factory("--enable-metrics", "--served-model-name", "smol", api_key="k3y")
    # Bound to loopback only (the default --host).
    assert listening_addresses(s.port) == ["0100007F"]
    assert requests.get(s.url("/health")).status_code == 200
    assert requests.get(s.url("/health"), headers={"Authorization": "Bearer wrong"}).status_code == 200
    for method, path in ROUTES:
        body = BODIES.get(path)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k3y"},
                        {"Authorization": "Basic k3y"}, {"X-API-Key": "k3y"}):
            r = requests.request(method, s.url(path), json=body, headers=headers, timeout=30)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            if method != "HEAD":
                assert r.json()["code"] == 401
        r = requests.request(method, s.url(path), json=body, timeout=60,
                             headers={"Authorization": "Bearer k3y"})
        assert r.status_code != 401, (method, path)
        assert r.status_code < 500, (method, path, r.text)
    # The key never comes back in the server's own description.
    i = requests.get(s.url("/get_server_info"), headers={"Authorization": "Bearer k3y"}).json()
    assert i["api_key"] == "<set>" and "k3y" not in requests.get(
        s.url("/get_server_info"), headers={"Authorization": "Bearer k3y"}).text
    assert i["host"] == "127.0.0.1"


def test_limits_are_configurable(server_factory):
    s = server_factory("--max-body-bytes", "65536", "--max-n", "2", "--max-new-tokens-limit", "8",
                       "--max-total-tokens", "4096")
    r = requests.post(s.url("/generate"), data=b'{"text": "' + b"a" * 70000 + b'"}')
    assert r.status_code == 413 and "65536" in r.json()["message"]
    r = requests.post(s.url("/generate"), json={"text": "x", "sampling_params": {"n": 3}})
    assert r.status_code == 400 and "--max-n" in r.json()["message"]
    r = requests.post(s.url("/v1/completions"), json={"prompt": ["a", "b"], "n": 2, "max_tokens": 1})
    assert r.status_code == 400 and "--max-n" in r.json()["message"]
    r = requests.post(s.url("/generate"), json={"text": "x", "sampling_params": {"n": 2,
                                                                             "max_new_tokens": 2}})
    assert r.status_code == 200 and len(r.json()) == 2
    r = requests.post(s.url("/generate"), json={"text": "x", "sampling_params": {"max_new_tokens": 9}})
    assert r.status_code == 400 and "--max-new-tokens-limit" in r.json()["message"]
    r = requests.post(s.url("/v1/chat/completions"), json={"messages": [{"role": "user", "content": "x"}],
                                                           "max_tokens": 9})
    assert r.status_code == 400
    # Chat without max_tokens fills the context, capped by the limit.
    r = requests.post(s.url("/v1/chat/completions"), timeout=60,
                      json={"messages": [{"role": "user", "content": "Tell me a story."}],
                            "ignore_eos": True})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 8
    i = requests.get(s.url("/get_server_info")).json()
    assert (i["max_body_bytes"], i["max_n"], i["max_new_tokens_limit"]) == (65536, 2, 8)


def test_no_request_field_names_a_server_path(server):
    h = server.headers()
    r = requests.post(server.url("/generate"), headers=h,
                      json={"text": "x", "lora_path": "/etc/passwd"})
    assert r.status_code == 400 and "lora_path" in r.json()["message"]
    r = requests.post(server.url("/v1/completions"), headers=h,
                      json={"prompt": "x", "model": "/etc/passwd", "max_tokens": 1})
    assert r.status_code == 404
    r = requests.get(server.url("/v1/models/..%2F..%2Fetc%2Fpasswd"), headers=h)
    assert r.status_code == 404
    # A chat_template field in the request is not a template source: the reply is the same as
    # without it.
    msgs = [{"role": "user", "content": "Say hi."}]
    base = {"messages": msgs, "max_tokens": 6, "temperature": 0}
    a = requests.post(server.url("/v1/chat/completions"), json=base, headers=h, timeout=60).json()
    b = requests.post(server.url("/v1/chat/completions"), headers=h, timeout=60,
                      json=dict(base, chat_template="/etc/passwd",
                                chat_template_kwargs={"path": "/etc/passwd"})).json()
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    assert a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]


def test_chat_template_sandbox(server_factory, model_path, tmp_path):
    # File-loading tags are refused when the template is parsed: the server does not start.
    for tag in ('{% include "/etc/passwd" %}', '{% import "/etc/passwd" as x %}',
                '{% extends "/etc/passwd" %}', '{% from "/etc/passwd" import x %}'):
        t = tmp_path / "bad.jinja"
        t.write_text(tag)
        p = subprocess.run([str(conftest.SERVER_BIN), "--model-path", model_path, "--port", "0",
                            "--chat-template", str(t)], capture_output=True, timeout=120)
        assert p.returncode == 1, p.stderr
        assert b"is not supported in chat templates" in p.stderr, p.stderr
    # Python internals and environment lookups are not reachable from a template: each either
    # fails the render (400) or prints nothing; the server stays healthy.
    probes = ["{{ messages.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ range.__globals__ }}",
              "{{ self }}{{ config }}{{ environ }}{{ os }}{{ request }}",
              "{{ cycler.__init__.__globals__.os.environ }}", "{{ lipsum.__globals__ }}",
              "{{ namespace.__init__ }}", "{{ raise_exception.__code__ }}"]
    t = tmp_path / "probe.jinja"
    t.write_text("{% for m in messages %}{{ m.content }}{% endfor %}|"
                 "{% if probe is defined %}{{ probe }}{% endif %}"
                 + "".join("{% if messages[0].content == '" + str(i) + "' %}" + p + "{% endif %}"
                           for i, p in enumerate(probes)))
    s = server_factory("--chat-template", str(t), "--max-total-tokens", "4096")
    plain = requests.post(s.url("/v1/chat/completions"), timeout=60,
                          json={"messages": [{"role": "user", "content": "zz"}], "max_tokens": 1})
    assert plain.status_code == 200
    n_plain = plain.json()["usage"]["prompt_tokens"]
    for i in range(len(probes)):
        r = requests.post(s.url("/v1/chat/completions"), timeout=60,
                          json={"messages": [{"role": "user", "content": str(i)}], "max_tokens": 1})
        assert r.status_code in (200, 400), (probes[i], r.text)
        if r.status_code == 200:  # rendered to (almost) nothing: the probe printed nothing
            assert r.json()["usage"]["prompt_tokens"] <= n_plain + 1, probes[i]
    assert requests.get(s.url("/health_generate"), timeout=60).status_code == 200
