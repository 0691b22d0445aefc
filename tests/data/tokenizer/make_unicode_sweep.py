#!/usr/bin/env python3
"""Every code point, tokenized by llama.cpp with the default model's vocabulary.

Usage: python3 tests/data/tokenizer/make_unicode_sweep.py [OUT] [MODEL.gguf]
   then SGL_UNICODE_SWEEP=OUT build/bin/test_tokenizer --gtest_filter='*Sweep*'

Each output line is one block of 16 consecutive code points (surrogates included, encoded as
llama.cpp would decode them), every code point placed in several contexts (after a space, next to
letters and digits, doubled, before a tab and a contraction, before spaces and a newline), as
"<hex of the UTF-8 text> <comma-separated token ids>". This pins the code point classes of
src/tokenizer/unicode_tables.cpp to llama.cpp's (the output is ~200 MB: not committed).
"""

import os
import sys

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/sgl_unicode_sweep.txt"
    model = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        HERE, "..", "..", "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    with open(out_path, "w") as out:
        for start in range(0, 0x110000, 16):
            parts = []
            for cp in range(start, start + 16):
                c = chr(cp)
                parts.append(" " + c + "a" + c + c + "1" + c + "\t" + c + "'s" + c + "  " + c + "\n")
            b = "".join(parts).encode("utf-8", "surrogatepass")
            ids = llm.tokenize(b, add_bos=False, special=False)
            out.write(b.hex() + " " + ",".join(map(str, ids)) + "\n")
    print("wrote", out_path)


if __name__ == "__main__":
    main()
