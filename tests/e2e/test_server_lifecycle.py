"""End-to-end tests of sgl-server as a process: API keys, self-consistency under load and with the
cache on/off, many concurrent streams, graceful shutdown."""
import concurrent.futures as cf
import json
import signal
import threading
import time

import pytest
import requests

openai = pytest.importorskip("openai")

SEEDED = {"text": "Write a short poem about the ocean.",
          "sampling_params": {"max_new_tokens": 12, "temperature": 0.8, "top_p": 0.95,
                              "sampling_seed": 77, "ignore_eos": True}}


def generate(server, body, stream=False):
    body = dict(body, stream=stream)
    r = requests.post(server.url("/generate"), json=body, stream=stream, timeout=300,
                      headers=server.headers())
    assert r.status_code == 200, r.text
    if not stream:
        return r.json()["text"]
    text, done = None, False
    for line in r.iter_lines(decode_unicode=True):
        if not line:
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
        else:
            text = json.loads(data)["text"]
    assert done
    return text


def test_api_key(server_factory):
    s = server_factory("--max-total-tokens", "2048", api_key="sekret")
    assert requests.get(s.url("/health")).status_code == 200  # public
    for path in ["/get_model_info", "/v1/models", "/get_server_info", "/health_generate"]:
        r = requests.get(s.url(path))
        assert r.status_code == 401, path
        assert r.json()["object"] == "error" and r.json()["code"] == 401
        assert requests.get(s.url(path), headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert requests.get(s.url("/v1/models"), headers={"Authorization": "Bearer sekret"}).status_code == 200
    r = requests.post(s.url("/generate"), json={"text": "x", "sampling_params": {"max_new_tokens": 1}})
    assert r.status_code == 401
    bad = openai.OpenAI(base_url=s.url("/v1"), api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    good = openai.OpenAI(base_url=s.url("/v1"), api_key="sekret", max_retries=0)
    model = good.models.list().data[0].id
    assert good.completions.create(model=model, prompt="Hi", max_tokens=2).choices[0].text is not None


def test_same_seed_same_output_everywhere(server, server_factory):
    alone = generate(server, SEEDED)
    assert alone
    assert generate(server, SEEDED, stream=True) == alone
    # Cache hit (the prompt is cached now) and after a flush (computed from scratch).
    assert generate(server, SEEDED) == alone
    assert requests.post(server.url("/flush_cache")).status_code == 200
    assert generate(server, SEEDED, stream=True) == alone
    # Among 16 concurrent requests (other prompts, seeds and lengths), streamed and not.
    others = [{"text": f"Request number {i}: tell me something.",
               "sampling_params": {"max_new_tokens": 6 + i % 5, "temperature": 1.0,
                                   "sampling_seed": i}} for i in range(14)]
    with cf.ThreadPoolExecutor(16) as ex:
        futs = [ex.submit(generate, server, b, i % 2 == 0) for i, b in enumerate(others[:7])]
        mine = [ex.submit(generate, server, SEEDED, False), ex.submit(generate, server, SEEDED, True)]
        futs += [ex.submit(generate, server, b, i % 2 == 1) for i, b in enumerate(others[7:])]
        assert [f.result() for f in mine] == [alone, alone]
        for f in futs:
            f.result()
    # With the radix cache disabled.
    nocache = server_factory("--disable-radix-cache", "--max-total-tokens", "4096")
    assert generate(nocache, SEEDED) == alone
    assert generate(nocache, SEEDED, stream=True) == alone
    info = requests.get(nocache.url("/get_server_info")).json()
    assert info["disable_radix_cache"] is True


def test_many_concurrent_streams(server):
    n = 200
    body = {"text": "Hi", "stream": True, "sampling_params": {"max_new_tokens": 3, "temperature": 0}}

    def one(_):
        with requests.post(server.url("/generate"), json=body, stream=True, timeout=300) as r:
            lines = [l for l in r.iter_lines(decode_unicode=True) if l]
        assert lines[-1] == "data: [DONE]"
        return json.loads(lines[-2][6:])["text"]

    with cf.ThreadPoolExecutor(n) as ex:
        texts = list(ex.map(one, range(n)))
    assert len(set(texts)) == 1


def test_sigterm_aborts_in_flight_and_exits_zero(server_factory):
    s = server_factory("--max-total-tokens", "4096")
    got = {}

    def stream():
        body = {"text": "Go on forever", "stream": True,
                "sampling_params": {"max_new_tokens": 3000, "ignore_eos": True}}
        with requests.post(s.url("/generate"), json=body, stream=True, timeout=60) as r:
            events = [l for l in r.iter_lines(decode_unicode=True) if l]
        got["events"] = events

    t = threading.Thread(target=stream)
    t.start()
    deadline = time.time() + 10
    while requests.get(s.url("/get_server_info")).json()["internal_states"][0]["num_running_reqs"] == 0:
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(0.2)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=30) == 0
    t.join(30)
    events = got["events"]
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][6:])
    assert last["meta_info"]["finish_reason"]["type"] == "abort"


def test_stream_interval_and_context_length(server_factory):
    s = server_factory("--stream-interval", "3", "--context-length", "64", "--served-model-name",
                       "smol")
    body = {"text": "Hello", "stream": True,
            "sampling_params": {"max_new_tokens": 7, "temperature": 0, "ignore_eos": True}}
    with requests.post(s.url("/generate"), json=body, stream=True, timeout=60) as r:
        events = [json.loads(l[6:]) for l in r.iter_lines(decode_unicode=True)
                  if l and l != "data: [DONE]"]
    # An event after at least 3 new tokens (after 3 and 6 unless merged), then the finish (7).
    counts = [0] + [e["meta_info"]["completion_tokens"] for e in events]
    assert 1 <= len(events) <= 3 and counts[-1] == 7
    assert all(b - a >= 3 for a, b in zip(counts[:-2], counts[1:-1]))
    r = requests.post(s.url("/generate"), json={"text": "word " * 80})
    assert r.status_code == 400 and "context length of 64" in r.json()["message"]
    assert requests.get(s.url("/v1/models")).json()["data"][0] == {**requests.get(
        s.url("/v1/models/smol")).json()}
    card = requests.get(s.url("/v1/models/smol")).json()
    assert card["id"] == "smol" and card["max_model_len"] == 64
    client = openai.OpenAI(base_url=s.url("/v1"), api_key="x", max_retries=0)
    assert client.completions.create(model="smol", prompt="Hi", max_tokens=2).model == "smol"
