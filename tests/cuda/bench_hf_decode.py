#!/usr/bin/env python3
"""Peer for the CUDA decode figures: Hugging Face transformers (eager PyTorch, bf16, SDPA
attention, its dynamic KV cache) on the same Llama-3.1-8B shape with random weights, timed the way
`sgl-bench model` times ours: one prefill of --input tokens per sequence, then greedy decode steps
with all B sequences in one batch, the median step time by host clock around synchronized steps.
Prints one JSON object.

    python3 tests/cuda/bench_hf_decode.py --config tests/data/configs/llama-3.1-8b.json
"""
import argparse
import json
import statistics
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--input", type=int, default=1024)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--batches", default="1,64")
    a = ap.parse_args()
    cfg = transformers.AutoConfig.from_pretrained(a.config)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.eval()
    out = {"transformers": transformers.__version__, "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(), "input_len": a.input, "decode": []}
    with torch.no_grad():
        for b in [int(x) for x in a.batches.split(",")]:
            ids = torch.randint(100, cfg.vocab_size - 100, (b, a.input), device="cuda")
            res = model(ids, use_cache=True, logits_to_keep=1)
            past = res.past_key_values
            nxt = res.logits[:, -1].argmax(-1, keepdim=True)
            steps = []
            for _ in range(a.decode):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                res = model(nxt, past_key_values=past, use_cache=True)
                past = res.past_key_values
                nxt = res.logits[:, -1].argmax(-1, keepdim=True)
                torch.cuda.synchronize()
                steps.append(time.perf_counter() - t0)
            med = statistics.median(steps[4:])
            out["decode"].append({"batch": b, "median_step_ms": med * 1e3,
                                  "tokens_per_s": b / med})
            del past, res
            torch.cuda.empty_cache()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
