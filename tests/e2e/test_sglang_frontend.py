"""The upstream SGLang frontend language (the `sglang` package from PyPI) against sgl-server.

`sglang.RuntimeEndpoint` talks to our native API (/get_model_info, /generate with text, lists,
logprobs and streaming, /flush_cache, /get_server_info). The programs below use `gen`, `select`,
roles, `fork`/`join`, `run_batch` and streaming. The default model is tiny: the tests assert
structure and determinism at temperature 0, never world knowledge.

The package is installed by scripts/setup.sh (`pip install --no-deps sglang==0.5.10.post1`, the
last release whose `import sglang` pulls in no torch/transformers; its pure-Python imports are
pinned in requirements-test.txt). The module is skipped when it is missing.
"""
import re

import pytest

sgl = pytest.importorskip("sglang", reason="the sglang frontend is not installed (scripts/setup.sh)")
from sglang.lang.chat_template import get_chat_template, get_chat_template_by_model_path  # noqa: E402

CHATML = get_chat_template("chatml")


@pytest.fixture(scope="module")
def backend(server):
    # Upstream guesses the chat template from the model path; it knows no "SmolLM2" and would fall
    # back to "default" (SYSTEM:/USER:/ASSISTANT:). SmolLM2-Instruct is ChatML, so name it.
    be = sgl.RuntimeEndpoint(server.base_url, chat_template_name="chatml")
    previous = sgl.global_config.default_backend
    sgl.set_default_backend(be)
    yield be
    sgl.global_config.default_backend = previous


def check(state):
    """A finished program state without error; returns its text."""
    err = state.error()
    assert err is None, f"program failed: {err!r}"
    text = state.text()
    assert isinstance(text, str)
    return text


# ------------------------------------------------------------------------------------------------
# Programs


@sgl.function
def counting(s):
    s += "1, 2, 3, 4, 5,"
    s += sgl.gen("first", max_tokens=12, stop=",")
    s += ","
    s += sgl.gen("rest", max_tokens=8)


@sgl.function
def pick_color(s, question):
    s += question + " Answer: "
    s += sgl.select("color", choices=["blue", "green", "red"])


@sgl.function
def chat(s, question):
    s += sgl.system("You are a helpful assistant. Answer briefly.")
    s += sgl.user(question)
    s += sgl.assistant(sgl.gen("answer", max_tokens=24))
    s += sgl.user("Thank you. Now say it again in other words.")
    s += sgl.assistant(sgl.gen("again", max_tokens=16))


TIP_HEADS = ["Eat", "Sleep", "Drink"]


@sgl.function
def tips(s, topic):
    s += f"Here are three tips about {topic}.\n"
    forks = s.fork(3)
    for i, f in enumerate(forks):
        f += f"{i + 1}. {TIP_HEADS[i]}" + sgl.gen("tip", max_tokens=12, stop="\n")
    forks.join()
    for i in range(3):
        s += f"{i + 1}. {TIP_HEADS[i]}" + forks[i]["tip"] + "\n"
    s += "In short," + sgl.gen("summary", max_tokens=12, stop="\n")


@sgl.function
def one_tip(s, head):
    s += head + sgl.gen("tip", max_tokens=12, stop="\n")


@sgl.function
def qa(s, question):
    s += sgl.user(question)
    s += sgl.assistant(sgl.gen("answer", max_tokens=16))


@sgl.function
def story(s):
    s += "Once upon a time"
    s += sgl.gen("story", max_tokens=24)


@sgl.function
def mixed(s):
    s += sgl.system("You are a helpful assistant.")
    s += sgl.user("Is the sky blue? Answer yes or no.")
    s += sgl.assistant(sgl.select("yn", choices=["yes", "no"]))
    s += sgl.user("Write one short sentence about the sky.")
    s += sgl.assistant(sgl.gen("sentence", max_tokens=20))
    s += sgl.user("Give a four-digit year.")
    s += sgl.assistant(sgl.gen("year", max_tokens=8, regex=r"[0-9]{4}"))


# ------------------------------------------------------------------------------------------------
# Tests


def test_endpoint_model_info_and_template(backend, server):
    assert backend.model_info["model_path"]
    assert backend.get_model_name() == backend.model_info["model_path"]
    assert backend.get_chat_template() is CHATML
    # Without a name, upstream guesses by the model path: no rule matches SmolLM2 -> "default".
    assert get_chat_template_by_model_path(backend.model_info["model_path"]).name == "default"
    info = sgl.get_server_info()
    assert isinstance(info, dict) and "max_total_num_tokens" in info
    backend.flush_cache()  # GET /flush_cache, idle server: 200


def test_gen_max_tokens_and_stop(backend):
    state = counting.run(temperature=0)
    text = check(state)
    first, rest = state["first"], state["rest"]
    assert isinstance(first, str) and isinstance(rest, str)
    assert "," not in first  # the stop string is trimmed
    assert text == "1, 2, 3, 4, 5," + first + "," + rest
    meta = state.get_meta_info("first")
    assert meta["completion_tokens"] <= 12
    if meta["finish_reason"]["type"] == "stop":
        assert meta["finish_reason"]["matched"] == ","
    else:
        assert meta["finish_reason"] == {"type": "length", "length": 12}
    meta = state.get_meta_info("rest")
    assert 1 <= meta["completion_tokens"] <= 8
    assert meta["finish_reason"]["type"] in ("length", "stop")


def test_select_within_choices(backend):
    choices = ["blue", "green", "red"]
    states = [pick_color.run(question=q, temperature=0) for q in
              ("What color is the sky on a clear day?", "What color is fresh grass?")]
    for state in states:
        text = check(state)
        assert state["color"] in choices
        assert text.endswith(" Answer: " + state["color"])
        meta = state.get_meta_info("color")
        assert len(meta["normalized_prompt_logprobs"]) == len(choices)
        assert all(isinstance(x, float) and x <= 0 for x in meta["normalized_prompt_logprobs"])
    again = pick_color.run(question="What color is the sky on a clear day?", temperature=0)
    assert again["color"] == states[0]["color"]


def test_roles_system_user_assistant(backend):
    state = chat.run(question="What is the capital of France?", temperature=0)
    text = check(state)
    answer, again = state["answer"], state["again"]
    for a in (answer, again):
        assert isinstance(a, str) and a.strip()
        assert "<|im_start|>" not in a and "<|im_end|>" not in a
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant. Answer briefly.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        f"<|im_start|>assistant\n{answer}<|im_end|>\n"
        "<|im_start|>user\nThank you. Now say it again in other words.<|im_end|>\n"
        f"<|im_start|>assistant\n{again}<|im_end|>\n"
    )
    msgs = state.messages()
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[2]["content"] == answer and msgs[4]["content"] == again


def test_fork_join(backend):
    state = tips.run(topic="staying healthy", temperature=0)
    text = check(state)
    prefix = "Here are three tips about staying healthy.\n"
    # join() gathers the branches' variable into a list, one entry per branch, in order
    branch_tips = state["tip"]
    assert isinstance(branch_tips, list) and len(branch_tips) == 3
    for t in branch_tips:
        assert isinstance(t, str) and "\n" not in t
    assert any(t.strip() for t in branch_tips)
    body = "".join(f"{i + 1}. {TIP_HEADS[i]}{t}\n" for i, t in enumerate(branch_tips))
    assert text == prefix + body + "In short," + state["summary"]
    assert "\n" not in state["summary"]
    # at temperature 0 each branch equals its prompt run alone
    for i in range(3):
        alone = one_tip.run(head=prefix + f"{i + 1}. {TIP_HEADS[i]}", temperature=0)
        check(alone)
        assert alone["tip"] == branch_tips[i]


def test_run_batch(backend):
    questions = ["What is 2 + 2?", "Name a fruit.", "Name a color.", "Say hi.", "Count to 3."]
    batch = qa.run_batch([{"question": q} for q in questions], temperature=0, num_threads=4)
    assert len(batch) == len(questions)
    for q, state in zip(questions, batch):
        text = check(state)
        assert text == (f"<|im_start|>user\n{q}<|im_end|>\n"
                        f"<|im_start|>assistant\n{state['answer']}<|im_end|>\n")
        assert state.get_meta_info("answer")["completion_tokens"] <= 16
    serial = qa.run_batch([{"question": q} for q in questions], temperature=0, num_threads=1)
    assert [s["answer"] for s in serial] == [s["answer"] for s in batch]
    # the default ("auto") thread count and a progress bar work too
    auto = qa.run_batch([{"question": q} for q in questions[:2]], temperature=0, progress_bar=True)
    assert [s["answer"] for s in auto] == [s["answer"] for s in batch[:2]]


def test_streaming_text_iter(backend):
    plain = story.run(temperature=0)
    check(plain)
    state = story.run(temperature=0, stream=True)
    chunks = list(state.text_iter())
    assert "".join(chunks) == check(state)
    assert len(chunks) >= 3  # the prompt, then the generation in several pieces
    assert state.text() == plain.text()  # streamed equals not streamed at temperature 0
    # streaming one variable
    state = story.run(temperature=0, stream=True)
    pieces = list(state.text_iter("story"))
    assert "".join(pieces) == state["story"] == plain["story"]
    assert len(pieces) >= 2


def test_determinism_temperature_zero(backend):
    runs = [mixed.run(temperature=0) for _ in range(2)]
    texts = [check(r) for r in runs]
    assert texts[0] == texts[1]
    for r in runs:
        assert r["yn"] in ("yes", "no")
        assert re.fullmatch(r"[0-9]{4}", r["year"])
        assert isinstance(r["sentence"], str) and r["sentence"].strip()
    assert {k: runs[0][k] for k in ("yn", "sentence", "year")} == \
           {k: runs[1][k] for k in ("yn", "sentence", "year")}
