"""End-to-end tests of sgl-server's native SGLang API (/generate and friends) with `requests`."""
import json
import math
import socket
import time

import pytest
import requests

PROMPT = "The capital of France is"
GREEDY = {"max_new_tokens": 8, "temperature": 0}


def gen(server, body, **kw):
    return requests.post(server.url("/generate"), json=body, timeout=120, **kw)


def sse_events(resp):
    """Parses an SSE body: returns (list of JSON events, saw_done)."""
    events, done = [], False
    for line in resp.iter_lines(decode_unicode=True):
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        assert not done, "event after [DONE]"
        events.append(json.loads(data))
    return events, done


def wait_idle(server, timeout=15):
    """Waits until no request runs or waits and no KV slot is held by a request."""
    deadline = time.time() + timeout
    while True:
        st = requests.get(server.url("/get_server_info"), timeout=10).json()["internal_states"][0]
        if st["num_running_reqs"] == 0 and st["num_queue_reqs"] == 0 and st["kv_request_tokens"] == 0:
            return st
        if time.time() > deadline:
            raise AssertionError(f"server not idle: {st}")
        time.sleep(0.05)


def test_health_and_info(server):
    assert requests.get(server.url("/health")).status_code == 200
    assert requests.get(server.url("/health_generate"), timeout=60).status_code == 200
    info = requests.get(server.url("/get_model_info")).json()
    assert info["is_generation"] is True
    assert "SmolLM2" in info["model_path"] and info["tokenizer_path"]
    si = requests.get(server.url("/get_server_info")).json()
    assert si["max_total_num_tokens"] > 0 and si["max_req_input_len"] > 0
    assert isinstance(si["version"], str) and si["port"] == server.port
    assert si["schedule_policy"] == "fcfs" and si["random_seed"] == 1234


def test_generate_single_shape(server):
    r = gen(server, {"text": PROMPT, "sampling_params": GREEDY})
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out, dict) and isinstance(out["text"], str) and out["text"]
    m = out["meta_info"]
    assert m["finish_reason"] == {"type": "length", "length": 8}
    assert m["completion_tokens"] == 8 == len(out["output_ids"])
    assert m["prompt_tokens"] > 0 and m["cached_tokens"] >= 0 and m["e2e_latency"] > 0
    assert isinstance(m["id"], str) and len(m["id"]) >= 16
    # Greedy is deterministic and the same prompt as token ids gives the same output.
    ids = requests.post(server.url("/tokenize"), json={"text": PROMPT}).json()["tokens"]
    out2 = gen(server, {"input_ids": ids, "sampling_params": GREEDY, "rid": "my-rid"}).json()
    assert out2["text"] == out["text"] and out2["meta_info"]["id"] == "my-rid"


def test_generate_stop_string_and_ids(server):
    out = gen(server, {"text": "Count: 1, 2, 3, 4,", "sampling_params": {
        "max_new_tokens": 16, "temperature": 0, "stop": [" 6"]}}).json()
    fr = out["meta_info"]["finish_reason"]
    if fr["type"] == "stop":
        assert fr["matched"] == " 6" and not out["text"].endswith(" 6")
    out = gen(server, {"text": "Count: 1, 2, 3, 4,", "sampling_params": {
        "max_new_tokens": 16, "temperature": 0, "stop": [" 6"], "no_stop_trim": True}}).json()
    if out["meta_info"]["finish_reason"]["type"] == "stop":
        assert out["text"].endswith(" 6")


def test_batch_lists_and_n(server):
    r = gen(server, {"text": ["Hello", "One plus one is"], "sampling_params": GREEDY})
    out = r.json()
    assert isinstance(out, list) and len(out) == 2
    single = gen(server, {"text": "One plus one is", "sampling_params": GREEDY}).json()
    assert out[1]["text"] == single["text"]
    # Per-prompt sampling params.
    out = gen(server, {"text": ["a", "b"], "sampling_params": [
        {"max_new_tokens": 2, "temperature": 0}, {"max_new_tokens": 3, "temperature": 0}]}).json()
    assert [o["meta_info"]["completion_tokens"] for o in out] == [2, 3]
    # input_ids batch
    out = gen(server, {"input_ids": [[1, 2, 3], [4, 5]], "sampling_params": GREEDY}).json()
    assert [o["meta_info"]["prompt_tokens"] for o in out] == [3, 2]
    # n > 1 on one prompt gives a list
    out = gen(server, {"text": PROMPT, "sampling_params": {"max_new_tokens": 4, "n": 3,
                                                            "temperature": 0.8}}).json()
    assert isinstance(out, list) and len(out) == 3
    assert all(o["meta_info"]["completion_tokens"] == 4 for o in out)


def test_logprob_invariants(server):
    for start in (0, 2):
        out = gen(server, {"text": PROMPT, "sampling_params": GREEDY, "return_logprob": True,
                           "logprob_start_len": start, "top_logprobs_num": 3,
                           "return_text_in_logprobs": True}).json()
        m = out["meta_info"]
        assert len(m["input_token_logprobs"]) + start == m["prompt_tokens"]
        assert m["input_token_logprobs"][0][0] is None
        assert m["input_top_logprobs"][0] is None
        assert all(e[0] <= 0 for e in m["input_token_logprobs"][1:])
        assert len(m["output_token_logprobs"]) == m["completion_tokens"]
        assert [e[1] for e in m["output_token_logprobs"]] == out["output_ids"]
        assert "".join(e[2] for e in m["output_token_logprobs"]) == out["text"]
        for i, top in enumerate(m["output_top_logprobs"]):
            assert len(top) == 3
            assert top[0][1] == out["output_ids"][i]  # greedy: the chosen token is the best
            assert top[0][0] >= top[1][0] >= top[2][0]
            assert math.isclose(top[0][0], m["output_token_logprobs"][i][0], abs_tol=1e-5)
    # Without return_text_in_logprobs the text slot is null; token_ids_logprob is honoured.
    out = gen(server, {"text": PROMPT, "sampling_params": GREEDY, "return_logprob": True,
                       "token_ids_logprob": [11, 12]}).json()
    m = out["meta_info"]
    assert m["output_token_logprobs"][0][2] is None
    assert [e[1] for e in m["output_token_ids_logprobs"][0]] == [11, 12]
    assert m["input_token_logprobs"] == []  # logprob_start_len -1: output only


def test_cached_tokens_after_flush(server):
    wait_idle(server)
    assert requests.post(server.url("/flush_cache")).status_code == 200
    body = {"text": "A completely fresh prompt about lighthouses and the sea", "sampling_params":
            {"max_new_tokens": 2, "temperature": 0}}
    first = gen(server, body).json()["meta_info"]
    assert first["cached_tokens"] == 0
    second = gen(server, body).json()["meta_info"]
    assert second["cached_tokens"] == second["prompt_tokens"] - 1
    assert requests.get(server.url("/flush_cache")).status_code == 200
    third = gen(server, body).json()["meta_info"]
    assert third["cached_tokens"] == 0
    si = requests.get(server.url("/get_server_info")).json()["internal_states"][0]
    assert 0 < si["cache_hit_rate"] <= 1


def test_streaming_framing(server):
    body = {"text": PROMPT, "sampling_params": GREEDY, "stream": True}
    with gen(server, body, stream=True) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events, done = sse_events(r)
    # One event per token (--stream-interval 1), merged when the server runs ahead of the reader;
    # the finish may come as one more event repeating the last token's text.
    assert done and 1 <= len(events) <= 9
    counts = [e["meta_info"]["completion_tokens"] for e in events]
    assert counts == sorted(counts) and counts[-1] == 8 and len(set(counts)) >= len(counts) - 1
    texts = [e["text"] for e in events]
    for a, b in zip(texts, texts[1:]):
        assert b.startswith(a)  # cumulative
    assert all(e["meta_info"]["finish_reason"] is None for e in events[:-1])
    assert events[-1]["meta_info"]["finish_reason"]["type"] == "length"
    whole = gen(server, {"text": PROMPT, "sampling_params": GREEDY}).json()
    assert texts[-1] == whole["text"] and events[-1]["output_ids"] == whole["output_ids"]
    # Batch streaming tags events with their index.
    with gen(server, {"text": ["x", "y"], "sampling_params": {"max_new_tokens": 3, "temperature": 0},
                      "stream": True}, stream=True) as r:
        events, done = sse_events(r)
    assert done and sorted({e["index"] for e in events}) == [0, 1]


def test_tokenize_detokenize(server):
    t = requests.post(server.url("/tokenize"), json={"text": "Hello world"}).json()
    assert t["count"] == len(t["tokens"]) > 0
    d = requests.post(server.url("/detokenize"), json={"tokens": t["tokens"]}).json()
    assert d["text"] == "Hello world"
    b = requests.post(server.url("/tokenize"), json={"text": ["a", "b c"]}).json()
    assert isinstance(b["tokens"], list) and len(b["tokens"]) == 2


def test_metrics(server):
    gen(server, {"text": "metrics", "sampling_params": {"max_new_tokens": 2}})
    r = requests.get(server.url("/metrics"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ["sglang:num_requests_total", "sglang:prompt_tokens_total",
                 "sglang:generation_tokens_total", "sglang:num_running_reqs",
                 "sglang:num_queue_reqs", "sglang:token_usage", "sglang:cache_hit_rate",
                 "sglang:time_to_first_token_seconds_bucket", "sglang:inter_token_latency_seconds_count"]:
        assert name in text, name
    line = next(l for l in text.splitlines() if l.startswith("sglang:num_requests_total{"))
    assert float(line.split()[-1]) >= 1
    assert 'le="+Inf"' in text


def raw_request(server, body):
    s = socket.create_connection(("127.0.0.1", server.port))
    data = json.dumps(body).encode()
    s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return s


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_aborts(server, stream):
    wait_idle(server)
    body = {"text": "Tell me a very long story.", "stream": stream,
            "sampling_params": {"max_new_tokens": 4000, "ignore_eos": True}}
    s = raw_request(server, body)
    # Wait until it runs (and, streaming, until a token arrived).
    deadline = time.time() + 10
    if stream:
        s.settimeout(10)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    while requests.get(server.url("/get_server_info")).json()["internal_states"][0]["num_running_reqs"] == 0:
        assert time.time() < deadline
        time.sleep(0.02)
    s.close()
    t0 = time.time()
    st = wait_idle(server, timeout=10)
    assert time.time() - t0 < 10 and st["kv_request_tokens"] == 0
    assert requests.get(server.url("/health")).status_code == 200


def test_abort_request_route(server):
    import threading
    result = {}

    def run():
        result["r"] = gen(server, {"text": "abort me", "rid": "to-abort",
                                   "sampling_params": {"max_new_tokens": 4000, "ignore_eos": True}}).json()

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 10
    while requests.get(server.url("/get_server_info")).json()["internal_states"][0]["num_running_reqs"] == 0:
        assert time.time() < deadline
        time.sleep(0.02)
    assert requests.post(server.url("/abort_request"), json={"rid": "to-abort"}).status_code == 200
    t.join(30)
    assert result["r"]["meta_info"]["finish_reason"]["type"] == "abort"
    wait_idle(server)


BAD = [
    ("not json", "raw"),
    ([1, 2], None),
    ({}, None),
    ({"text": "x", "input_ids": [1]}, None),
    ({"text": 5}, None),
    ({"text": "x", "sampling_params": {"temperature": "hot"}}, "temperature"),
    ({"text": "x", "sampling_params": {"temperature": -1}}, "temperature"),
    ({"text": "x", "sampling_params": {"top_p": 0}}, "top_p"),
    ({"text": "x", "sampling_params": {"max_new_tokens": -1}}, "max_new_tokens"),
    ({"text": "x", "sampling_params": {"max_new_tokens": 1.5}}, "max_new_tokens"),
    ({"text": "x", "sampling_params": {"n": 0}}, "n"),
    ({"text": "x", "sampling_params": {"stop": 3}}, "stop"),
    ({"text": "x", "sampling_params": [{}, {}]}, "sampling_params"),
    ({"text": "x", "sampling_params": {"regex": "a", "ebnf": "root ::= \"a\""}}, "Only one"),
    ({"text": "x", "sampling_params": {"json_schema": "{not json"}}, "json_schema"),
    ({"text": "x", "return_logprob": "yes"}, "return_logprob"),
    ({"text": "x", "return_logprob": True, "logprob_start_len": 99}, "logprob_start_len"),
    ({"input_ids": [1, 99999999]}, "input_ids"),
    ({"input_ids": []}, None),
    ({"text": "word " * 9000, "sampling_params": {"max_new_tokens": 1}}, "context"),
    ({"text": "x", "image_data": "http://x/y.png"}, "image_data"),
]


@pytest.mark.parametrize("body,needle", BAD)
def test_bad_inputs_are_4xx(server, body, needle):
    if needle == "raw":
        r = requests.post(server.url("/generate"), data=body, timeout=30)
    else:
        r = gen(server, body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["object"] == "error" and err["code"] == 400 and err["type"] == "Bad Request"
    assert isinstance(err["message"], str) and err["message"]
    if needle and needle != "raw":
        assert needle in err["message"], err["message"]
    assert requests.get(server.url("/health")).status_code == 200


def test_invalid_utf8_oversized_and_unknown_route(server):
    r = requests.post(server.url("/generate"), data=b'{"text": "\xff\xfe"}',
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["message"]
    r = requests.post(server.url("/generate"), data=b'{"text": "' + b"a" * (33 << 20) + b'"}')
    assert r.status_code == 413 and r.json()["code"] == 413
    r = requests.get(server.url("/no/such/route"))
    assert r.status_code == 404 and r.json()["object"] == "error"
    r = requests.get(server.url("/generate"))
    assert r.status_code == 405
    r = requests.post(server.url("/generate"), data=b"[" * 100000)
    assert r.status_code == 400
    assert requests.get(server.url("/health")).status_code == 200


def test_expect_continue_pipelining_and_http10(server):
    body = json.dumps({"text": "hi", "sampling_params": {"max_new_tokens": 2}}).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(30)
    s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
    # The body plus two pipelined requests in one write: three answers, in order.
    s.sendall(body + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
    data = b""
    while data.count(b"HTTP/1.1 200") < 3:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    assert data.index(b"meta_info") < data.rindex(b"HTTP/1.1 200")
    s.close()
    # HTTP/1.0 streaming: no chunked encoding, connection closed at the end.
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(30)
    stream_body = json.dumps({"text": "hi", "stream": True,
                              "sampling_params": {"max_new_tokens": 2}}).encode()
    s.sendall(b"POST /generate HTTP/1.0\r\nContent-Length: " + str(len(stream_body)).encode() +
              b"\r\n\r\n" + stream_body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.0 200") and b"chunked" not in data.lower()
    assert data.endswith(b"data: [DONE]\n\n")


def test_constraints_are_never_silently_ignored(server):
    """regex either constrains the output or is refused with a clear 400."""
    import re
    r = gen(server, {"text": "My favourite number is", "sampling_params": {
        "max_new_tokens": 8, "temperature": 0, "regex": "[0-9]{3}"}})
    if r.status_code == 400:
        assert "not supported" in r.json()["message"]
    else:
        assert r.status_code == 200, r.text
        assert re.fullmatch("[0-9]{3}", r.json()["text"]), r.json()["text"]
