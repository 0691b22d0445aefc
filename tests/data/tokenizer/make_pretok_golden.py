#!/usr/bin/env python3
"""Pre-tokenizer splits computed with the Python `regex` module (an independent regex engine).

Usage: python3 tests/data/tokenizer/make_pretok_golden.py     (pip install regex)
Writes pretok_golden.json: for hand-picked and seeded random strings, the words each pipeline
produces, splitting like llama.cpp's unicode_regex_split: every pattern of a pipeline is applied to
each chunk left by the previous one, and both the matches and the text between them become chunks.
Random characters are drawn from long-assigned code points so that the Unicode versions of
`regex` and of our tables agree.
"""

import json
import os
import random

import regex

HERE = os.path.dirname(os.path.abspath(__file__))

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|"
          r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
PUNCT = r"[\p{P}\$\+<=>\^~\|]+"

# Pipelines by GGUF tokenizer.ggml.pre name.
PIPELINES = {
    "gpt-2": [GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "smollm": [r"\p{N}", GPT2],
    "default": [PUNCT, GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "falcon": [PUNCT, GPT2, r"[0-9][0-9][0-9]"],
}

HAND = [
    "Hello world", "a  b", "a   ", "I'm fine, they'LL go", " 123 456", "$$$ x", "\tx", "a \n b",
    "x\u00a0y", "abc1234567", "\n\n  x", "I'M HERE", "hi!!\n\nthere", "  ?!\r\n", ".abc",
    "x  \t\ny", "12345", "a1b22", "don't 'tis ''", "  ", " ", "\n", "\r\n\r\n", "a\u2028b\u0085c",
    "\u00bd\u00b2\u2160 \u0661\u0662", "e\u0301t\u00e9", "\u4f60\u597d\uff0c\u4e16\u754c",
    "$1,000.50 +5 <=> ^~|", "x\ty\n\tz", "     leading", "trailing     ", "'s's's", "'", "''s",
    "\U0001f600\U0001f600 ok", "end.\n", "a\u3000b", "1.5e-10", "x's y'S z'Ll w'VE",
]


def split(pipeline, text):
    chunks = [text]
    for pattern in pipeline:
        out = []
        for chunk in chunks:
            pos = 0
            for m in regex.finditer(pattern, chunk):
                if m.start() > pos:
                    out.append(chunk[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(chunk):
                out.append(chunk[pos:])
        chunks = out
    return chunks


def random_strings(seed, n):
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", "   \t\n\r",
        "'''sStTmMdDlLrReEvV", "!\"#%&()*,-./:;?@[]_{}", "$+<=>^`|~", "\u00e9\u00fc\u00df\u00c5",
        "\u4e2d\u6587\u65e5\u672c", "\u0661\u0662\u00bd\u00b2\u2160", "\u0301\u0308",
        "\u00a0\u3000\u2028\u0085\u2003", "\U0001f600\U0001f44d\u2764", "\u00a9\u00ae\u2122",
        "\u200b\u200d\ufeff", "\u0000\u0001\u007f",
    ]
    out = []
    for _ in range(n):
        length = rng.randint(1, 32)
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    return out


def main():
    cases = []
    for text in HAND + random_strings(7, 300):
        cases.append({"text": text, "words": {name: split(p, text) for name, p in PIPELINES.items()}})
    with open(os.path.join(HERE, "pretok_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "python regex %s" % regex.__version__, "cases": cases}, f,
                  ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %d cases" % len(cases))


if __name__ == "__main__":
    main()
