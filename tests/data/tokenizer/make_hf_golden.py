#!/usr/bin/env python3
"""Small synthetic Hugging Face tokenizers and their golden encodings, made by HF `tokenizers`.

Usage: python3 tests/data/tokenizer/make_hf_golden.py      (pip install tokenizers)

No other real model can be downloaded here, so each pre-tokenizer family and the
SentencePiece-style BPE is covered by a tiny BPE vocabulary trained (deterministically) on Python
standard-library docstrings plus some non-ASCII text, saved as hf_<name>/tokenizer.json (+
tokenizer_config.json), with `tokenizers`' own encodings of a test corpus in
hf_<name>/golden.json:
  - "special":     encode(text, add_special_tokens=False)          (added tokens recognized)
  - "raw":         same with encode_special_tokens=True            (special tokens split as text)
  - "with_bos":    encode(text, add_special_tokens=True)
  - "decoded":     decode("special" ids, skip_special_tokens=False)
  - "decoded_skip": decode("special" ids, skip_special_tokens=True)
The C++ loader (Tokenizer::from_hf_json) must reproduce all of them.
"""

import inspect
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import CORPUS, random_texts  # noqa: E402

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
             r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
            r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

EXTRA_TEXT = """
Le caf\u00e9 est d\u00e9j\u00e0 pr\u00eat. \u00c0 bient\u00f4t! Stra\u00dfe, \u00fcber, sch\u00f6n.
\u4f60\u597d\u4e16\u754c\uff0c\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002
\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5.
I'm sure you're right; they'll have done it. Don't worry, we've got 12345 items.
"""


def training_corpus():
    import collections, difflib, json as _json, os as _os, random as _random, string, textwrap
    texts = []
    for mod in (collections, difflib, _json, _os, _random, string, textwrap, inspect):
        src = inspect.getsource(mod)
        texts.append(src[:60000])
    texts.append(EXTRA_TEXT * 20)
    return texts


def with_bos(tok):
    # What transformers does for add_bos_token=True: a template that prepends BOS.
    tok.post_processor = processors.TemplateProcessing(single="<|im_start|> $A",
                                                       special_tokens=[("<|im_start|>", 1)])
    return tok


def byte_level_tokenizer(pre, ignore_merges):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    tok.add_tokens([AddedToken("<user_tag>", special=False, normalized=False)])
    return tok


def spm_tokenizer(style):
    """SentencePiece-style BPE with byte fallback: <unk>, <s>, </s>, <0x00>..<0xFF>, trained."""
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                            normalizers.Replace(" ", "\u2581")])
    trainer = trainers.BpeTrainer(vocab_size=900, min_frequency=2, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>"])
    base.train_from_iterator(training_corpus(), trainer=trainer)
    model = json.loads(base.to_str())["model"]
    trained = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for text, _ in trained:
        if text not in vocab:
            vocab[text] = len(vocab)
    merges = model["merges"]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) if isinstance(m, list) else
                                                   tuple(m.split(" ", 1)) for m in merges],
                               unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if style == "llama2":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                               normalizers.Replace(" ", "\u2581")])
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first",
                                                     split=False)
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken("<unk>", special=True), AddedToken("<s>", special=True),
                            AddedToken("</s>", special=True)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def configs():
    byte_level_cfg = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                      "clean_up_tokenization_spaces": False,
                      "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}
    return {
        "llama3": (lambda: with_bos(byte_level_tokenizer(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
            True)), dict(byte_level_cfg, add_bos_token=True)),
        "qwen2": (lambda: byte_level_tokenizer(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]),
            False), byte_level_cfg),
        "starcoder": (lambda: byte_level_tokenizer(pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]),
            False), byte_level_cfg),
        "gpt2": (lambda: byte_level_tokenizer(
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            False), byte_level_cfg),
        "spm_llama2": (lambda: spm_tokenizer("llama2"),
                       {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                        "add_bos_token": True, "add_eos_token": False,
                        "clean_up_tokenization_spaces": False}),
        "spm_metaspace": (lambda: spm_tokenizer("metaspace"),
                          {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                           "clean_up_tokenization_spaces": False}),
    }


def test_texts():
    rand_texts, _ = random_texts(99)
    texts = [t for t in CORPUS if t] + rand_texts
    texts += ["<s>hello</s> <unk>", "a<user_tag>b <user_tag> c", "<|im_start|>user\nhi<|im_end|>"]
    return texts


def main():
    for name, (make, cfg) in configs().items():
        tok = make()
        d = os.path.join(HERE, "hf_" + name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tok.to_str())
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=1)
        cases = []
        for text in test_texts():
            tok.encode_special_tokens = False
            special = tok.encode(text, add_special_tokens=False).ids
            with_bos = tok.encode(text, add_special_tokens=True).ids
            tok.encode_special_tokens = True
            raw = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = False
            cases.append({"text": text, "special": special, "raw": raw, "with_bos": with_bos,
                          "decoded": tok.decode(special, skip_special_tokens=False),
                          "decoded_skip": tok.decode(special, skip_special_tokens=True)})
        meta = {"generator": "tokenizers %s" % __import__("tokenizers").__version__,
                "vocab_size": tok.get_vocab_size(with_added_tokens=True)}
        with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "cases": cases}, f, ensure_ascii=False, indent=0)
            f.write("\n")
        print("%s: vocab %d, %d cases" % (name, meta["vocab_size"], len(cases)))


if __name__ == "__main__":
    main()
