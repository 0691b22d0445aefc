#!/usr/bin/env python3
"""A tiny SentencePiece ("llama") GGUF vocabulary and llama.cpp's tokenization of it.

Usage: python3 tests/data/tokenizer/make_spm_gguf.py   (after make_hf_golden.py; needs the `gguf`
package and llama-cpp-python)

Writes spm_tiny.gguf (vocabulary only, no tensors; llama.cpp loads it with vocab_only=True) and
spm_tiny_golden.json. The vocabulary is hf_spm_llama2's: <unk> (type unknown), <s>, </s> (control),
<0x00>..<0xFF> (byte), then the trained pieces (normal) with score -rank, the shape of a
SentencePiece BPE model. Golden fields as in make_golden.py.
"""

import ctypes
import json
import os
import sys

import gguf
import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import CORPUS, INVALID, encode_field, random_texts  # noqa: E402

GGUF_PATH = os.path.join(HERE, "spm_tiny.gguf")


def write_gguf():
    with open(os.path.join(HERE, "hf_spm_llama2", "tokenizer.json"), encoding="utf-8") as f:
        model = json.load(f)["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    tokens, scores, types = [], [], []
    for i, (text, tid) in enumerate(vocab):
        assert i == tid
        tokens.append(text)
        if text == "<unk>":
            types.append(gguf.TokenType.UNKNOWN)
            scores.append(0.0)
        elif text in ("<s>", "</s>"):
            types.append(gguf.TokenType.CONTROL)
            scores.append(0.0)
        elif len(text) == 6 and text.startswith("<0x"):
            types.append(gguf.TokenType.BYTE)
            scores.append(0.0)
        else:
            types.append(gguf.TokenType.NORMAL)
            scores.append(-float(i))
    tokens.append("<|user|>")  # a user-defined token
    types.append(gguf.TokenType.USER_DEFINED)
    scores.append(0.0)
    w = gguf.GGUFWriter(GGUF_PATH, "llama")
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_rope_dimension_count(8)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    write_gguf()
    llm = llama_cpp.Llama(model_path=GGUF_PATH, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    def detok(ids, unparse):
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        cap = 64 + 64 * len(ids)
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, unparse)
        assert n >= 0, n
        return buf.raw[:n]

    rand_texts, rand_bytes = random_texts(4321)
    extra = ["<s>text</s>", "a<|user|>b <|user|> c", " <s> x", "\u2581already marked"]
    cases = []
    for b in [t.encode() for t in CORPUS + rand_texts + extra] + INVALID + rand_bytes:
        raw = llm.tokenize(b, add_bos=False, special=False)
        special = llm.tokenize(b, add_bos=True, special=True)
        cases.append({"input": encode_field(b), "raw": raw, "special": special,
                      "decoded": encode_field(detok(special, True)),
                      "decoded_skip": encode_field(detok(special, False)),
                      "decoded_raw": encode_field(detok(raw, False))})
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    meta = {"generator": "llama-cpp-python %s (llama.cpp)" % llama_cpp.__version__,
            "n_tokens": n, "bos": llama_cpp.llama_vocab_bos(vocab),
            "eos": llama_cpp.llama_vocab_eos(vocab),
            "eog": [i for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i)]}
    with open(os.path.join(HERE, "spm_tiny_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print("wrote spm_tiny.gguf (%d tokens) and %d cases" % (n, len(cases)))


if __name__ == "__main__":
    main()
