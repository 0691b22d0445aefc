#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz harnesses into corpus/<target>/seed_*.

Seeds come from tests/data (model files, tokenizer golden texts, chat templates and their golden
message lists, regex / JSON Schema / GBNF cases) plus hand-written edge cases. Run from anywhere;
existing seed_NNN files are replaced; fuzz findings kept as seed_crash_* and the minimized corpus
entries (SHA-1 names) are left alone.
"""
import json
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "data"
SEP = b"\n#--\n"


def write(target, seeds):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed_[0-9]*"):  # seed_crash_* (fuzz findings) stay
        old.unlink()
    for i, s in enumerate(seeds):
        (d / f"seed_{i:03d}").write_bytes(s if isinstance(s, bytes) else s.encode())


def gguf_seeds():
    seeds = [(DATA / "model" / "tiny.gguf").read_bytes(),
             (DATA / "tokenizer" / "spm_tiny.gguf").read_bytes()]
    # A header-only v3 file with one string key and one array key.
    kv = b""
    key = b"general.architecture"
    kv += struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", 5) + b"llama"
    key = b"a.arr"
    kv += struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 4, 3) + struct.pack("<3I", 1, 2, 3)
    seeds.append(b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv)
    seeds.append(b"GGUF" + struct.pack("<IQQ", 2, 0, 0))
    return seeds


def safetensors_seeds():
    seeds = [(DATA / "model" / "tiny.safetensors").read_bytes()]

    def st(header, data):
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + data

    seeds.append(st({"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]},
                     "__metadata__": {"format": "pt"}}, bytes(range(8))))
    seeds.append(st({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                     "s": {"dtype": "I64", "shape": [], "data_offsets": [6, 14]}}, bytes(14)))
    seeds.append(st({}, b""))
    return seeds


def tokenizer_seeds():
    cases = json.loads((DATA / "tokenizer" / "smollm2_golden.json").read_text())["cases"]
    texts = [c["input"]["text"] for c in cases if "text" in c["input"]]
    seeds = []
    for i, t in enumerate(texts[::6][:24]):
        seeds.append(bytes([i % 16]) + t.encode("utf-8", "surrogatepass")[:400])
    seeds.append(b"\x02<|im_start|>user\nHi<|im_end|>\n")
    seeds.append(b"\x00\xff\xfe\xc3(\xe2\x82 \xf0\x9f\x98")
    return seeds


def chat_template_seeds():
    cases = json.loads((DATA / "chat_templates" / "golden.json").read_text())["cases"]
    seeds, seen = [], set()
    for c in cases:
        if c["template"] in seen:
            continue
        seen.add(c["template"])
        src = (DATA / "chat_templates" / f"{c['template']}.jinja").read_bytes()
        extra = c.get("extra_context") or {}
        seeds.append(src + SEP + json.dumps(c["messages"]).encode() + SEP + json.dumps(extra).encode())
    seeds.append(SEP + b'[{"role":"user","content":[{"type":"text","text":"hi"}]}]')
    seeds.append(b"{% for m in messages %}{{ m.role|upper }}: {{ m.content|trim }}\n{% endfor %}"
                 b"{% set ns = namespace(x=0) %}{{ range(3)|list|tojson }}" + SEP + b"hello")
    seeds.append(b"{% macro f(a, b=2) %}{{ a ~ b }}{% endmacro %}{{ f(1) }}{{ raise_exception('no') }}")
    return seeds


def protocol_seeds():
    return [
        b'{"text": "Hello", "sampling_params": {"max_new_tokens": 8, "temperature": 0}}',
        b'{"text": ["a", "b"], "sampling_params": [{"n": 2}, {"stop": ["x"], "regex": "[0-9]+"}],'
        b' "rid": ["r1", "r2"], "return_logprob": true, "top_logprobs_num": 2, "stream": true}',
        b'{"input_ids": [[1, 2, 3], [4]], "sampling_params": {"json_schema": "{\\"type\\":\\"integer\\"}"}}',
        b'{"model": "m", "prompt": "Say", "max_tokens": 5, "logprobs": 2, "echo": true, "n": 2,'
        b' "stop": "\\n", "logit_bias": {"50": -100}, "seed": 7}',
        b'{"prompt": [[1, 2], [3]], "stream": true, "stream_options": {"include_usage": true}}',
        b'{"model": "m", "messages": [{"role": "system", "content": "Be brief."},'
        b' {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 4,'
        b' "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema":'
        b' {"type": "object"}}}, "logprobs": true, "top_logprobs": 3}',
        b'{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function",'
        b' "function": {"name": "f", "parameters": {}}}], "chat_template_kwargs": {"a": 1},'
        b' "response_format": {"type": "json_object"}}',
        b'{"text": ["a", "b"], "add_special_tokens": false, "tokens": [[1, 2]], "rid": "x",'
        b' "abort_all": true, "skip_special_tokens": false}',
        b'{"text": "x", "sampling_params": {"ebnf": "root ::= \\"a\\"", "top_k": 5.0,'
        b' "min_p": 0.1, "repetition_penalty": 1.2, "stop_token_ids": [2]}}',
    ]


def grammar_texts():
    regexes = [c["pattern"] for c in json.loads((DATA / "grammar" / "regex_cases.json").read_text())["cases"]]
    schemas = [c["schema"] for c in json.loads((DATA / "grammar" / "schema_cases.json").read_text())["cases"]]
    gbnf = [(DATA / "grammar" / "json.gbnf").read_text(),
            'root ::= "a" rule | [0-9]+ ( "x" | "y" )? other{2,4}\nrule ::= [a-z]*\nother ::= "o"\n',
            'root ::= expr\nexpr ::= term ("+" term)*\nterm ::= [0-9]+ | "(" expr ")"\n']
    picked = []
    picked += [(0, r) for r in regexes[::8][:20]]
    picked += [(1, g) for g in gbnf]
    picked += [(2, s) for s in schemas[::10][:20]]
    return picked


def grammar_compile_seeds():
    return [bytes([k]) + t.encode() for k, t in grammar_texts()]


def matcher_seeds():
    seeds = []
    ops = bytes([2, 0, 2, 1, 4, 9, 3, 5, 0, 2, 200, 6, 1, 3, 7, 2, 2, 9, 1, 40, 1, 4, 30, 5, 3, 120,
                 6, 3, 2, 11, 0, 99, 1, 4, 20, 2, 3, 3, 4, 3, 8, 2, 1, 3, 2])
    for k, t in grammar_texts():
        b = t.encode()
        seeds.append(bytes([k]) + struct.pack("<H", len(b)) + b + ops)
    return seeds


if __name__ == "__main__":
    write("fuzz_gguf", gguf_seeds())
    write("fuzz_safetensors", safetensors_seeds())
    write("fuzz_tokenizer", tokenizer_seeds())
    write("fuzz_chat_template", chat_template_seeds())
    write("fuzz_protocol", protocol_seeds())
    write("fuzz_grammar_compile", grammar_compile_seeds())
    write("fuzz_matcher", matcher_seeds())
