#!/usr/bin/env python3
"""Golden logits of the default model, made by llama.cpp (llama-cpp-python), not by this code.

Usage: python3 tests/data/logits/make_golden.py [MODEL.gguf]
       (default: models/SmolLM2-135M-Instruct.Q4_1.gguf; writes next to this script)
       python3 tests/data/logits/make_golden.py --check-f64 [MODEL.gguf]
       (writes nothing: measures how far the stored llama.cpp logits are from an exact float64
       numpy forward over the same weights, dequantized by gguf-py; this is the noise floor the
       C++ test's tolerances are set against)

For each of 8 varied prompts (prose, code, a ChatML conversation with special tokens, numbers,
French, Chinese/Russian/Japanese, a long instruction, JSON), llama.cpp tokenizes the text
(add_special=True; parse_special only for the chat prompt), keeps the first MAX_TOKENS tokens,
and evaluates them in ONE llama_decode (n_batch = n_ubatch = 512, 2 threads, KV cache f16, no
flash attention, logits for every position). Then it generates GREEDY_STEPS tokens greedily
(argmax of the logits, one token per eval), recording at each step the gap between its top-2
logits (a small gap means the choice is decided by numerical noise).

Files (all little-endian):
  golden.json  - index: model, llama.cpp version, settings, and per prompt: name, token ids,
                 offset of its first position in topk.bin, its full-row positions and their
                 index in full_rows.f16, and the greedy continuation with its top-2 gaps.
  topk.bin     - one 272-byte record per prompt position, prompts in order:
                 int32 ids[32], float32 logits[32] (the 32 largest logits, descending),
                 float64 sum(logits), float64 sum(logits^2) over the whole vocabulary row.
  full_rows.f16 - the full logit rows (n_vocab float16 each) of the positions p with
                 p % 16 == 15 or p == last, prompts in order.

tests/unit/models/golden_logits_test.cpp reads them.
"""

import hashlib
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "..", "..", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

MAX_TOKENS = 128
TOP_K = 32
GREEDY_STEPS = 32
FULL_ROW_EVERY = 16

PROMPTS = [
    ("prose", False,
     "The lighthouse keeper had lived alone on the island for almost eleven years when the "
     "letter arrived. It came on the supply boat, tucked between a crate of tinned peaches and a "
     "sack of flour, and it was addressed in a hand he had not seen since he was a boy. He did "
     "not open it at once. Instead he carried it up the hundred and twelve steps of the tower, "
     "set it on the table beside the great lamp, and went about his evening duties as if nothing "
     "had changed: he trimmed the wick, polished the brass, wound the clockwork that turned the "
     "lens, and wrote the weather in the log. Only when the beam was sweeping the dark water did "
     "he sit down, break the seal, and begin to read. The first line made him laugh out loud."),
    ("code", False,
     "import heapq\nfrom typing import Dict, List, Tuple\n\n\n"
     "def dijkstra(graph: Dict[str, List[Tuple[str, int]]], source: str) -> Dict[str, int]:\n"
     "    \"\"\"Shortest distances from source to every reachable node.\"\"\"\n"
     "    dist = {source: 0}\n"
     "    queue = [(0, source)]\n"
     "    while queue:\n"
     "        d, node = heapq.heappop(queue)\n"
     "        if d > dist.get(node, float('inf')):\n"
     "            continue\n"
     "        for neighbour, weight in graph.get(node, []):\n"
     "            nd = d + weight\n"
     "            if nd < dist.get(neighbour, float('inf')):\n"
     "                dist[neighbour] = nd\n"
     "                heapq.heappush(queue, (nd, neighbour))\n"
     "    return dist\n\n\n"
     "if __name__ == \"__main__\":\n"
     "    g = {\"a\": [(\"b\", 4), (\"c\", 1)], \"c\": [(\"b\", 2)], \"b\": [(\"d\", 5)]}\n"
     "    print(dijkstra(g, \"a\"))\n"),
    ("chat", True,
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
     "<|im_start|>assistant\nThe capital of France is Paris. It is also the largest city in "
     "the country, known for the Eiffel Tower, the Louvre and its cafés.<|im_end|>\n"
     "<|im_start|>user\nGreat. I am going there next spring with two friends. Can you give me "
     "three tips for visiting Paris on a budget, in a short numbered "
     "list? Please mention public transport, free museums and where to find cheap food."
     "<|im_end|>\n<|im_start|>assistant\n"),
    ("numbers", False,
     "Prime numbers below 200: 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, "
     "61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, "
     "163, 167, 173, 179, 181, 191, 193, 197, 199.\nSquares: 1, 4, 9, 16, 25, 36, 49, 64, 81, "
     "100, 121, 144, 169, 196, 225, 256, 289, 324, 361, 400.\nPowers of two: 1, 2, 4, 8, 16, 32, "
     "64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536.\nFibonacci: 1, 1, 2, 3, 5, "
     "8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597"),
    ("french", False,
     "La ville de Lyon, située au confluent du Rhône et de la Saône, est depuis l'Antiquité un "
     "carrefour commercial et culturel. Fondée par les Romains sous le nom de Lugdunum, elle fut "
     "la capitale des Gaules. Au Moyen Âge, ses foires attiraient des marchands de toute "
     "l'Europe, et à la Renaissance, l'imprimerie y connut un essor remarquable. Plus tard, "
     "l'industrie de la soie fit sa richesse : les canuts, ouvriers tisserands de la Croix-"
     "Rousse, se révoltèrent à plusieurs reprises au XIXe siècle pour obtenir de meilleures "
     "conditions de travail. Aujourd'hui, Lyon est réputée pour sa gastronomie, ses bouchons et "
     "son festival des lumières, qui illumine chaque année la ville au mois de décembre."),
    ("multilingual", False,
     "Русский: Москва — столица России, крупнейший по численности населения город страны. "
     "中文：北京是中华人民共和国的首都，也是全国的政治和文化中心。 "
     "日本語：東京は日本の首都であり、世界有数の大都市です。 "
     "Deutsch: Die Straße führt über die Brücke zum Bahnhof, wo der Zug um acht Uhr abfährt. "
     "Español: ¿Dónde está la biblioteca? Está al lado del ayuntamiento. "
     "Ελληνικά: Η Αθήνα είναι η πρωτεύουσα της Ελλάδας."),
    ("instruction", False,
     "You are given a CSV file with the columns date, store_id, product, units_sold and "
     "unit_price. Write a short report for the regional manager. First, compute the total "
     "revenue per store and rank the stores from highest to lowest. Second, find the three "
     "products whose sales grew the most between the first and the last month of the data, "
     "measured in units, and explain in one sentence each why this might have happened. Third, "
     "point out any days on which a store sold nothing at all, since these may indicate that the "
     "store was closed or that the data is missing. Keep the report under three hundred words, "
     "use plain language, avoid jargon, and end with two concrete recommendations."),
    ("json", False,
     "{\n  \"id\": \"order-20931\",\n  \"customer\": {\"name\": \"Ada Lovelace\", \"email\": "
     "\"ada@example.com\", \"vip\": true},\n  \"items\": [\n    {\"sku\": \"KB-101\", \"name\": "
     "\"Mechanical keyboard\", \"qty\": 1, \"price\": 89.90},\n    {\"sku\": \"MS-220\", "
     "\"name\": \"Wireless mouse\", \"qty\": 2, \"price\": 24.50},\n    {\"sku\": \"CB-007\", "
     "\"name\": \"USB-C cable\", \"qty\": 3, \"price\": 7.99}\n  ],\n  \"shipping\": "
     "{\"method\": \"express\", \"address\": {\"street\": \"12 Analytical Row\", \"city\": "
     "\"London\", \"postcode\": \"NW1 2AB\"}},\n  \"notes\": \"Leave the parcel with the "
     "neighbour if nobody is home"),
]


def f64_forward(reader, tokens):
    """Logits [n, n_vocab] of a llama-arch GGUF in float64, straight from the model definition."""
    from gguf.quants import dequantize

    fields = {f.name: f for f in reader.fields.values()}

    def meta(key, default=None):
        if key not in fields:
            return default
        f = fields[key]
        return f.parts[f.data[0]].tolist()[0]

    tensors = {t.name: t for t in reader.tensors}

    def weight(name):
        t = tensors[name]
        return dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
            [int(x) for x in reversed(t.shape)])

    n_head = meta("llama.attention.head_count")
    n_head_kv = meta("llama.attention.head_count_kv", n_head)
    n_embd = meta("llama.embedding_length")
    head_dim = n_embd // n_head
    base = meta("llama.rope.freq_base", 10000.0)
    eps = meta("llama.attention.layer_norm_rms_epsilon")
    n = len(tokens)
    emb = weight("token_embd.weight")
    x = emb[tokens].copy()

    def rms(v, w):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w

    theta = np.arange(n)[:, None] * base ** (-2.0 * np.arange(head_dim // 2)[None, :] / head_dim)
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]

    def rope(v, heads):  # llama-arch GGUF: rotate adjacent pairs
        v = v.reshape(n, heads, head_dim // 2, 2)
        a, b = v[..., 0], v[..., 1]
        return np.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(n, heads, head_dim)

    mask = np.triu(np.full((n, n), -np.inf), 1)
    for layer in range(meta("llama.block_count")):
        p = f"blk.{layer}."
        h = rms(x, weight(p + "attn_norm.weight"))
        q = rope(h @ weight(p + "attn_q.weight").T, n_head)
        k = rope(h @ weight(p + "attn_k.weight").T, n_head_kv)
        v = (h @ weight(p + "attn_v.weight").T).reshape(n, n_head_kv, head_dim)
        out = np.zeros((n, n_head, head_dim))
        for hh in range(n_head):
            kh = hh // (n_head // n_head_kv)
            s = q[:, hh] @ k[:, kh].T / np.sqrt(head_dim) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            out[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, kh]
        x = x + out.reshape(n, -1) @ weight(p + "attn_output.weight").T
        h = rms(x, weight(p + "ffn_norm.weight"))
        g = h @ weight(p + "ffn_gate.weight").T
        x = x + (g / (1 + np.exp(-g)) * (h @ weight(p + "ffn_up.weight").T)) @ weight(
            p + "ffn_down.weight").T
    out_w = weight("output.weight") if "output.weight" in tensors else emb
    return rms(x, weight("output_norm.weight")) @ out_w.T


def check_f64(model_path):
    import gguf

    with open(os.path.join(HERE, "golden.json"), encoding="utf-8") as f:
        index = json.load(f)
    n_vocab = index["n_vocab"]
    rec = np.dtype([("ids", "<i4", TOP_K), ("logits", "<f4", TOP_K), ("sum", "<f8"),
                    ("sumsq", "<f8")])
    topk = np.fromfile(os.path.join(HERE, "topk.bin"), dtype=rec)
    full = np.fromfile(os.path.join(HERE, "full_rows.f16"), dtype="<f2").reshape(-1, n_vocab)
    reader = gguf.GGUFReader(model_path)
    agree, total, nmse, gap_err, miss_gaps = 0, 0, [], [], []
    for p in index["prompts"]:
        logits = f64_forward(reader, p["tokens"])
        for t in range(len(p["tokens"])):
            r = topk[p["topk_offset"] + t]
            ids, ref = r["ids"], r["logits"].astype(np.float64)
            total += 1
            if int(np.argmax(logits[t])) == ids[0]:
                agree += 1
            else:
                miss_gaps.append(float(ref[0] - ref[1]))
            gap_err.append(abs((logits[t][ids[0]] - logits[t][ids[1]]) - (ref[0] - ref[1])))
        for j, pos in enumerate(p["full_row_positions"]):
            b = full[p["full_row_offset"] + j].astype(np.float64)
            nmse.append(float(((logits[pos] - b) ** 2).sum() / (b * b).sum()))
        print(f"{p['name']}: done")
    print(f"llama.cpp vs float64: top-1 agreement {100.0 * agree / total:.2f}% ({agree}/{total}); "
          f"full-row NMSE mean {np.mean(nmse):.2e} max {np.max(nmse):.2e}; top-2 gap error "
          f"p50 {np.quantile(gap_err, 0.5):.3f} p99 {np.quantile(gap_err, 0.99):.3f} "
          f"max {np.max(gap_err):.3f}; largest llama.cpp gap with a top-1 miss "
          f"{max(miss_gaps) if miss_gaps else 0:.3f}")


def main():
    if "--check-f64" in sys.argv[1:]:
        args = [a for a in sys.argv[1:] if a != "--check-f64"]
        check_f64(os.path.abspath(args[0] if args else DEFAULT_MODEL))
        return
    model_path = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL)
    with open(model_path, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    llm = Llama(model_path=model_path, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                n_threads_batch=2, logits_all=True, flash_attn=False, verbose=False)
    n_vocab = llm.n_vocab()

    index = {
        "generator": "tests/data/logits/make_golden.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model": os.path.basename(model_path),
        "model_sha256": sha256,
        "settings": {"n_threads": 2, "n_batch": 512, "kv_type": "f16", "flash_attn": False,
                     "one_decode_per_prompt": True},
        "n_vocab": n_vocab,
        "top_k": TOP_K,
        "topk_record_bytes": TOP_K * 8 + 16,
        "full_row_every": FULL_ROW_EVERY,
        "prompts": [],
    }
    topk = bytearray()
    rows = []
    n_positions = 0
    for name, parse_special, text in PROMPTS:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=parse_special)
        tokens = tokens[:MAX_TOKENS]
        n = len(tokens)
        assert n + GREEDY_STEPS <= 512 and n <= 512, "prompt must fit one batch"
        llm.reset()
        llm.eval(tokens)  # one llama_decode: n <= n_batch
        logits = np.array(llm.scores[:n, :], dtype=np.float32)

        full_positions = []
        for p in range(n):
            row = logits[p]
            order = np.argsort(-row, kind="stable")[:TOP_K]
            rec = np.zeros(1, dtype=[("ids", "<i4", TOP_K), ("logits", "<f4", TOP_K),
                                     ("sum", "<f8"), ("sumsq", "<f8")])
            rec["ids"][0] = order
            rec["logits"][0] = row[order]
            rec["sum"][0] = float(np.sum(row.astype(np.float64)))
            rec["sumsq"][0] = float(np.sum(row.astype(np.float64) ** 2))
            topk += rec.tobytes()
            if p % FULL_ROW_EVERY == FULL_ROW_EVERY - 1 or p == n - 1:
                full_positions.append(p)
                rows.append(row.astype("<f2"))

        greedy, gaps = [], []
        last = logits[n - 1]
        for _ in range(GREEDY_STEPS):
            order = np.argsort(-last, kind="stable")[:2]
            tok = int(order[0])
            greedy.append(tok)
            gaps.append(float(last[order[0]] - last[order[1]]))
            llm.eval([tok])
            last = np.array(llm.scores[llm.n_tokens - 1, :], dtype=np.float32)

        index["prompts"].append({
            "name": name,
            "parse_special": parse_special,
            "text": text,
            "tokens": [int(t) for t in tokens],
            "topk_offset": n_positions,
            "full_row_positions": full_positions,
            "full_row_offset": len(rows) - len(full_positions),
            "greedy_tokens": greedy,
            "greedy_top2_gaps": [round(g, 5) for g in gaps],
            "greedy_text": llm.detokenize(greedy).decode("utf-8", errors="replace"),
        })
        n_positions += n
        print(f"{name}: {n} tokens, {len(full_positions)} full rows, greedy "
              f"{llm.detokenize(greedy)[:60]!r}, min gap {min(gaps):.3f}")

    index["n_positions"] = n_positions
    index["n_full_rows"] = len(rows)
    with open(os.path.join(HERE, "topk.bin"), "wb") as f:
        f.write(bytes(topk))
    with open(os.path.join(HERE, "full_rows.f16"), "wb") as f:
        for r in rows:
            f.write(r.tobytes())
    with open(os.path.join(HERE, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{n_positions} positions, {len(rows)} full rows")


if __name__ == "__main__":
    main()
