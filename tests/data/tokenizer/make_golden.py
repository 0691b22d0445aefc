#!/usr/bin/env python3
"""Golden tokenizations of the default model's vocabulary, made by llama.cpp (llama-cpp-python).

Usage: python3 tests/data/tokenizer/make_golden.py [MODEL.gguf]
Writes tests/data/tokenizer/smollm2_golden.json next to this script.

For every text of a fixed corpus (hand-written cases plus seeded random strings, some of them
invalid UTF-8) it records llama.cpp's
  - llama_tokenize(add_special=False, parse_special=False)   -> "raw"
  - llama_tokenize(add_special=True,  parse_special=True)    -> "special"
  - llama_detokenize(special ids, remove_special=False, unparse_special=True)  -> "decoded"
  - llama_detokenize(special ids, remove_special=False, unparse_special=False) -> "decoded_skip"
plus the vocabulary's special ids and end-of-generation set. Texts and decoded strings are stored
as hex when they are not valid UTF-8.
"""

import ctypes
import json
import os
import random
import sys

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "..", "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

CORPUS = [
    "",
    " ",
    "  ",
    "\n",
    "Hello world",
    "Hello, world! How are you today?",
    " Hello world",
    "hello   world",
    "Hello\n\nworld\n",
    "tab\tseparated\tvalues\t\t",
    "line one\r\nline two\r\n\r\n",
    "trailing spaces   ",
    "   leading spaces",
    "many                                spaces",
    "\n\n\n\n",
    " \n \n ",
    "I'm sure you're right, he's said they'll've done it, we'd I've",
    "I'M SURE YOU'RE RIGHT, HE'S SAID THEY'LL'VE DONE IT",
    "don't can't won't isn't 'quoted' ''double''",
    "The year 2024 had 365 days; pi is 3.14159265358979.",
    "1234567890 12 123 1234 12345 123456",
    "phone: +1 (555) 123-4567, price $1,299.99",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00c5ngstr\u00f6m",
    "\u00e9t\u00e9 d\u00e9j\u00e0 vu, \u00e7a va? \u00bfQu\u00e9 tal? \u00a1Hola!",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
    "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5",
    "emoji \U0001f600\U0001f389\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f",
    "\U0001f680\U0001f680\U0001f680 rockets",
    "math: \u2200x\u2208\u211d, x\u00b2 \u2265 0; \u221e \u2260 \u2211 \u222b\u2202",
    "arrows \u2190 \u2192 \u2191 \u2193 \u21d2 bullets \u2022 \u2023",
    "fullwidth \uff21\uff22\uff23\uff11\uff12\uff13",
    "roman \u2160\u2161\u2162 fractions \u00bd\u00be superscript \u00b9\u00b2\u00b3 circled \u2460\u2461",
    "arabic-indic digits \u0661\u0662\u0663 devanagari \u0967\u0968\u0969",
    "nbsp\u00a0here and\u2003em\u2009thin\u3000ideographic",
    "zero\u200bwidth\u200cjoiner\u200dhere\ufeffbom",
    "combining e\u0301 a\u0300 n\u0303 o\u0308",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "int main(int argc, char** argv) {\n\tprintf(\"%d\\n\", argc);\n\treturn 0;\n}\n",
    "for (auto& x : v) { x += 1; }  // increment\n",
    "<html><body class=\"main\">Hello &amp; welcome</body></html>",
    "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%smith%';",
    "https://example.com/path?query=1&other=two#frag",
    "user@example.com, first.last+tag@sub.domain.org",
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
    "!!!???...,,,;;;:::---___===+++***",
    "((()))[[[]]]{{{}}}<<<>>>",
    "~`@#$%^&*|\\/",
    "a",
    "A",
    "ab",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>",
    "text<|endoftext|>more text",
    "<|im_end|><|im_end|><|im_start|>",
    "<|im_start|",
    "<|im_start|><|im_start|>x",
    "<repo_name>owner/repo<file_sep>main.py<filename>x<gh_stars>100",
    "<|endoftext|>",
    "half special <|im_",
    "Mixed: English, \u4e2d\u6587, \u0440\u0443\u0441\u0441\u043a\u0438\u0439, \u0627\u0644\u0639\u0631\u0628\u064a\u0629, and emoji \U0001f30d!",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX. 0123456789",
    "ALLCAPS lowercase MiXeD",
    "'s 's 'S 't 're 've 'm 'll 'd",
    "x's y'S z'Ll w'VE",
    "  \t  \n  \t\n",
    "end with newline\n",
    "\r\r\n\n\r",
    "\u0000null\u0001control\u007fdel",
    "\u2028line sep\u2029para sep\u0085nel",
    "   1   2   3   ",
    "1.5e-10 -42 +7 0x1F 0b1010 1_000_000",
]

# Byte strings that are not valid UTF-8 (llama.cpp decodes them leniently).
INVALID = [
    b"\xff\xfe",
    b"a\xc0\xafb",
    b"\xed\xa0\x80 surrogate",
    b"trunc\xe4\xb8",
    b"\xe4\xb8trunc start",
    b"lone \x80 continuation",
    b"\xf0\x9f\x98 cut emoji",
    b"mix \xc3\xa9\xc3 \xa9",
    b"\xe0\x80\x80 overlong nul",
    b"\xfe\xfe\xff\xff",
]


def lenient_cpts_ok(b):
    """False if llama.cpp's decoder would produce a code point > U+10FFFF (it aborts then)."""
    i = 0
    while i < len(b):
        c = b[i]
        if c < 0x80 or not (c & 0x40):
            i += 1
            continue
        need = 1 if not (c & 0x20) else 2 if not (c & 0x10) else 3 if not (c & 0x08) else -1
        if need < 0 or i + need >= len(b) or any((x & 0xC0) != 0x80 for x in b[i + 1:i + 1 + need]):
            i += 1
            continue
        cp = c & (0x1F if need == 1 else 0x0F if need == 2 else 0x07)
        for x in b[i + 1:i + 1 + need]:
            cp = (cp << 6) | (x & 0x3F)
        if cp > 0x10FFFF:
            return False
        i += need + 1
    return True


def random_texts(seed):
    rng = random.Random(seed)
    out = []
    # Random code points from a mix of scripts and classes (all assigned in Unicode 14).
    pools = [
        list(range(0x20, 0x7F)), list(range(0xA0, 0x250)), list(range(0x370, 0x3FF)),
        list(range(0x400, 0x4FF)), list(range(0x600, 0x6FF)), list(range(0x900, 0x97F)),
        list(range(0x3040, 0x30FF)), list(range(0x4E00, 0x4F00)), list(range(0xAC00, 0xAD00)),
        list(range(0x2000, 0x206F)), list(range(0x1F300, 0x1F64F)), [0x9, 0xA, 0xD, 0x20] * 8,
        list(range(0x30, 0x3A)) * 4, list(range(0x660, 0x66A)), list(range(0xFF00, 0xFF5F)),
    ]
    for _ in range(40):
        n = rng.randint(1, 40)
        s = "".join(chr(rng.choice(rng.choice(pools))) for _ in range(n))
        out.append(s)
    # Random bytes (often invalid UTF-8).
    rbytes = []
    while len(rbytes) < 25:
        b = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 24)))
        if lenient_cpts_ok(b):
            rbytes.append(b)
    return out, rbytes


def encode_field(b):
    try:
        return {"text": b.decode("utf-8")}
    except UnicodeDecodeError:
        return {"hex": b.hex()}


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    def detok(ids, unparse):
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        cap = 64 + 64 * len(ids)
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, unparse)
        assert n >= 0, n
        return buf.raw[:n]

    def piece(i):
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(vocab, i, buf, 256, 0, True)
        assert n >= 0
        return buf.raw[:n]

    rand_texts, rand_bytes = random_texts(1234)
    cases = [t.encode("utf-8") for t in CORPUS + rand_texts] + INVALID + rand_bytes
    out_cases = []
    for b in cases:
        raw = llm.tokenize(b, add_bos=False, special=False)
        special = llm.tokenize(b, add_bos=True, special=True)
        case = {"input": encode_field(b), "raw": raw, "special": special,
                "decoded": encode_field(detok(special, True)),
                "decoded_skip": encode_field(detok(special, False))}
        out_cases.append(case)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    meta = {
        "generator": "llama-cpp-python %s (llama.cpp) on %s" % (llama_cpp.__version__,
                                                              os.path.basename(model)),
        "n_tokens": n,
        "bos": llama_cpp.llama_vocab_bos(vocab),
        "eos": llama_cpp.llama_vocab_eos(vocab),
        "eot": llama_cpp.llama_vocab_eot(vocab),
        "eog": [i for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "control": [i for i in range(n) if llama_cpp.llama_vocab_is_control(vocab, i)],
        "pieces": {str(i): encode_field(piece(i))
                   for i in list(range(0, 40)) + list(range(180, 260)) + [24211, 49151]},
    }
    path = os.path.join(HERE, "smollm2_golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": out_cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print("wrote %s: %d cases" % (path, len(out_cases)))


if __name__ == "__main__":
    main()
