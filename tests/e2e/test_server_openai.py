"""End-to-end tests of sgl-server's OpenAI-compatible API with the official `openai` package."""
import pytest
import requests

openai = pytest.importorskip("openai")

MESSAGES = [{"role": "user", "content": "What is 2 + 2? Answer with a number."}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def test_models(client, server, model):
    models = client.models.list().data
    assert len(models) == 1 and models[0].object == "model" and models[0].owned_by
    card = client.models.retrieve(model)
    assert card.id == model
    raw = requests.get(server.url("/v1/models")).json()["data"][0]
    assert raw["root"] and raw["max_model_len"] > 0
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_completion(client, model):
    r = client.completions.create(model=model, prompt="The capital of France is", max_tokens=6,
                                  temperature=0)
    assert r.object == "text_completion" and len(r.choices) == 1
    c = r.choices[0]
    assert c.text and c.finish_reason == "length"
    assert r.usage.completion_tokens == 6 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + 6
    assert r.usage.prompt_tokens_details.cached_tokens >= 0


def test_completion_n_logprobs_echo(client, model):
    r = client.completions.create(model=model, prompt=["Once upon a time", "In a galaxy"],
                                  max_tokens=4, temperature=0.7, n=2, logprobs=2, seed=7)
    assert sorted(c.index for c in r.choices) == [0, 1, 2, 3]
    for c in r.choices:
        lp = c.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
        if c.text.isascii():  # token pieces may split a multi-byte character
            assert "".join(lp.tokens) == c.text
        assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert r.usage.completion_tokens == 16
    e = client.completions.create(model=model, prompt="Once upon a time", max_tokens=3,
                                  temperature=0, echo=True, logprobs=1)
    c = e.choices[0]
    assert c.text.startswith("Once upon a time")
    assert c.logprobs.token_logprobs[0] is None  # the first prompt token has no logprob
    assert "".join(c.logprobs.tokens) == c.text


def test_completion_stream_matches_non_stream(client, model):
    args = dict(model=model, prompt="List three colors:", max_tokens=8, temperature=0.9, seed=42)
    whole = client.completions.create(**args).choices[0].text
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True},
                                            **args))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == whole
    finals = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finals) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8


def test_chat(client, model):
    r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=16,
                                       temperature=0)
    assert r.object == "chat.completion"
    m = r.choices[0].message
    assert m.role == "assistant" and m.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10


def test_chat_n_logprobs_and_cached_tokens(client, model):
    r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=5,
                                       temperature=0, n=2, logprobs=True, top_logprobs=3)
    assert len(r.choices) == 2
    for c in r.choices:
        content = c.logprobs.content
        assert len(content) == 5
        if c.message.content.isascii():
            assert "".join(t.token for t in content) == c.message.content
        for t in content:
            assert len(t.top_logprobs) == 3
            assert t.top_logprobs[0].token == t.token  # greedy
    # The same conversation again reuses the cached prompt.
    again = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1)
    assert again.usage.prompt_tokens_details.cached_tokens >= again.usage.prompt_tokens - 1


def test_chat_stream(client, model):
    args = dict(model=model, messages=MESSAGES, max_tokens=8, temperature=0.8, seed=3, n=2)
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                 **args))
    texts = {0: "", 1: ""}
    first_delta = {}
    finish_count = {0: 0, 1: 0}
    for ch in chunks:
        for c in ch.choices:
            first_delta.setdefault(c.index, c.delta)
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finish_count[c.index] += 1
    assert all(d.role == "assistant" for d in first_delta.values())
    assert finish_count == {0: 1, 1: 1}
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens == whole.usage.completion_tokens


def test_stop_sequences(client, model):
    r = client.completions.create(model=model, prompt="1, 2, 3, 4,", max_tokens=20, temperature=0,
                                  stop=[" 7"])
    c = r.choices[0]
    if c.finish_reason == "stop":
        assert " 7" not in c.text


def test_errors_raise_the_right_types(client, model, server):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="not-the-model", prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model, prompt="x", max_tokens=1, temperature=-2)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model, prompt="x", max_tokens=1, top_p=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[], max_tokens=1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=100000)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1,
                                       response_format={"type": "xml"})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1,
                                       response_format={"type": "json_schema"})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1,
                                       extra_body={"regex": "a", "ebnf": "root ::= \"a\""})
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model, prompt="x", max_tokens=1, extra_body={"top_k": 0})
    assert requests.get(server.url("/health")).status_code == 200


def test_response_format_constrains_or_is_refused(client, model):
    """response_format json_schema yields schema-valid JSON or a clear 400, never ignored."""
    import json
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}
    try:
        r = client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=40, temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    except openai.BadRequestError as e:
        assert "not supported" in str(e)
        return
    c = r.choices[0]
    if c.finish_reason == "stop":
        out = json.loads(c.message.content)
        assert isinstance(out["answer"], int) and set(out) == {"answer"}
