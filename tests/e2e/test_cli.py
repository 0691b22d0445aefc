"""End-to-end tests of sgl-cli on the real default model."""
import json
import struct

import pytest


def test_inspect_json_describes_the_default_model(cli, model_path):
    info = json.loads(cli("inspect", "-m", model_path, "--json").stdout)
    c = info["config"]
    assert info["format"] == "gguf"
    assert (c["n_layer"], c["n_embd"], c["n_head"], c["n_head_kv"]) == (30, 576, 9, 3)
    assert info["n_tensors"] == 272
    assert set(info["tensor_types"]) == {"f32", "q4_1", "q8_0"}
    t = info["tokenizer"]
    assert t["kind"] == "gpt2" and t["pre"] == "smollm" and t["vocab_size"] == 49152
    assert t["chat_template"] is True
    assert t["eos"]["text"] == "<|im_end|>" or t["eos"]["id"] == 2


def test_inspect_text(cli, model_path):
    out = cli("inspect", "-m", model_path).stdout.decode()
    assert "architecture llama" in out and "chat template present" in out


def test_tokenize_detokenize_round_trip(cli, model_path):
    text = "Hello, world! Ünïcödé 日本語 🎉  12345\n\tcode()"
    ids = json.loads(cli("tokenize", "-m", model_path, text).stdout)
    assert all(isinstance(i, int) for i in ids) and len(ids) > 5
    back = cli("detokenize", "-m", model_path, *map(str, ids)).stdout.decode()
    assert back == text + "\n"


def test_special_tokens_only_with_flag(cli, model_path):
    text = "<|im_start|>user"
    plain = json.loads(cli("tokenize", "-m", model_path, text).stdout)
    special = json.loads(cli("tokenize", "-m", model_path, "--special", text).stdout)
    assert special[0] == 1 and 1 not in plain
    assert len(plain) > len(special)


@pytest.mark.parametrize("args", [
    ["inspect"],                                   # no model
    ["inspect", "-m", "/nonexistent/model.gguf"],  # missing file
    ["tokenize", "-m", "MODEL"],                   # no text
    ["detokenize", "-m", "MODEL", "abc"],          # not an id
    ["detokenize", "-m", "MODEL", "99999999"],     # id out of range
    ["inspect", "-m", "MODEL", "--bogus"],         # unknown option
    ["frobnicate"],                                # unknown command
])
def test_bad_arguments_fail_cleanly(cli, model_path, args):
    args = [model_path if a == "MODEL" else a for a in args]
    p = cli(*args, check=False)
    assert p.returncode != 0
    assert p.stderr, "an error message is expected on stderr"
    assert p.returncode < 128, "must not die from a signal"


def test_corrupt_model_file_is_a_clear_error(cli, model_path, tmp_path):
    data = open(model_path, "rb").read(4096)
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(data)
    p = cli("inspect", "-m", str(bad), check=False)
    assert p.returncode == 1 and b"gguf" in p.stderr.lower()
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\xff" * 64)
    p = cli("inspect", "-m", str(junk), check=False)
    assert p.returncode == 1 and p.stderr


def test_generate_greedy_is_deterministic(cli, model_path):
    args = ["generate", "-m", model_path, "-p", "The capital of France is", "-n", "12"]
    a = cli(*args).stdout
    b = cli(*args).stdout
    assert a == b and len(a.strip()) > 0


def test_generate_chat_answers(cli, model_path):
    out = cli("generate", "-m", model_path, "--chat", "-p", "What is 2 + 2? Answer with a number.",
              "-n", "24").stdout.decode()
    assert out.strip(), "the model should say something"
    assert "<|im_start|>" not in out and "<|im_end|>" not in out


def test_generate_seeded_sampling_reproducible(cli, model_path):
    args = ["generate", "-m", model_path, "-p", "Once upon a time", "-n", "16",
            "--temperature", "0.9", "--top-p", "0.95", "--seed", "1234"]
    assert cli(*args).stdout == cli(*args).stdout


def test_generate_rejects_bad_sampling(cli, model_path):
    p = cli("generate", "-m", model_path, "-p", "x", "--top-p", "0", check=False)
    assert p.returncode != 0 and b"top_p" in p.stderr
